#!/usr/bin/env bash
# Miri (undefined-behaviour checker) on the unit tests of the modules holding the workspace's
# documented `unsafe` blocks: the executor's JSON reader (`json::take_tail`, `execute/json.rs`),
# value type (`Str::as_str`, shared-response references and request-private nodes,
# `execute/data.rs`) and the merges through them (`execute/merge.rs`). The guard's block, the guard's `raise_fd_limit`
# (`guard/src/server.rs`), is a getrlimit/setrlimit FFI call, which Miri cannot execute ("unsupported
# operation: can't call foreign function `getrlimit` on OS `linux`"), so it is not run here.
#
# Needs a nightly toolchain with the miri and rust-src components
# (`rustup component add --toolchain nightly miri rust-src`); the first run builds Miri's sysroot.
# Usage: scripts/miri.sh [extra libtest args]
# Env:   TOOLCHAIN=nightly   MIRIFLAGS (default: -Zmiri-strict-provenance)
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLCHAIN=${TOOLCHAIN:-nightly}
export MIRIFLAGS=${MIRIFLAGS:--Zmiri-strict-provenance}
# Miri keeps its own build under $CARGO_TARGET_DIR/miri; incremental state only costs disk here.
export CARGO_INCREMENTAL=0

cargo "+$TOOLCHAIN" miri setup
cargo "+$TOOLCHAIN" miri test -p switchyard-gateway --lib -- execute::json:: execute::data:: execute::merge:: "$@"
