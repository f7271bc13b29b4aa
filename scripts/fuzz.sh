#!/usr/bin/env bash
# Runs each cargo-fuzz target in fuzz/ for a bounded time: the executor's JSON reader against
# serde_json (json_reader), the HTTP POST body parser (request_body), the GET query-string
# parser (get_query), and parse -> limits -> validate -> plan on the demo supergraph (operation). Starts from the committed seeds
# (fuzz/seeds/<target>) and keeps what it finds in fuzz/corpus/<target> (not committed); a crash,
# a failed check or an input slower than FUZZ_TIMEOUT is saved under fuzz/artifacts/<target>/.
# Runs every target even when one fails; exits non-zero if any did.
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Usage: scripts/fuzz.sh [TARGET...]        (default: all four)
# Env:   FUZZ_SECONDS=60   per target        FUZZ_TIMEOUT=10   seconds one input may take
#        TOOLCHAIN=nightly                   FUZZ_TARGET_DIR   build dir (default fuzz/target)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

TARGETS=("$@"); [ ${#TARGETS[@]} -gt 0 ] || TARGETS=(json_reader request_body get_query operation)
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
TOOLCHAIN=${TOOLCHAIN:-nightly}
BUILD=()
[ -z "${FUZZ_TARGET_DIR:-}" ] || BUILD=(--target-dir "$FUZZ_TARGET_DIR")

cargo "+$TOOLCHAIN" fuzz build "${BUILD[@]}"
failed=()
for target in "${TARGETS[@]}"; do
  echo "== $target: ${FUZZ_SECONDS}s"
  mkdir -p "corpus/$target"
  if ! cargo "+$TOOLCHAIN" fuzz run "${BUILD[@]}" "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" -dict="dicts/$target.dict" \
    -print_final_stats=1; then
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "all targets ran ${FUZZ_SECONDS}s without a failure"
