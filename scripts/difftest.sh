#!/usr/bin/env bash
# Differential testing for a bounded time: generated Federation 2 shapes (switchyard_testkit::generate)
# composed by Switchyard's composer (cross-checked with Apollo's when available), served by fixture
# subgraphs, every generated operation sent through Switchyard and Hive Router and compared with each
# other and with the generated world. Each disagreement is minimized and written as a ready-to-run
# .case file (gateway/tests/federation/README.md) plus a .md note; summary.md lists the run.
#
# Usage: scripts/difftest.sh [SECONDS=60] [SEED=0]
# Env:
#   OUT                  findings directory (default ${TMPDIR:-/tmp}/switchyard-difftest)
#   HIVE_ROUTER_BIN      Hive Router binary (default $PEERS/bin/hive_router, PEERS=~/.cache/switchyard-peers;
#                        install: cargo install hive-router --locked --root "$PEERS"). Without it the run
#                        compares Switchyard with the generated world only (no minimizing).
#   APOLLO_NODE_MODULES  a node_modules holding @apollo/composition and graphql (default
#                        $PEERS/apollo-composition/node_modules; install outside the repo:
#                        npm install --prefix "$PEERS/apollo-composition" @apollo/composition graphql).
#                        Apollo's composition is Elastic-licensed: it is only run, never part of the repo.
#   DIFFTEST_ARGS        extra flags, e.g. "--minimize-seconds 120 --max-per-kind 5 --verbose"
#   DIFFTEST_SHARE_EVERY_RESPONSE=1  Switchyard reads every subgraph response the way it reads one
#                        shared by collapsed requests (in place, copy-on-write), as under load;
#                        each query is also sent to it three times at once (the copies reuse
#                        each other's derived results, which the gateway then checks against a
#                        fresh derivation), and a copy answering otherwise than the query sent
#                        alone is a disagreement
set -eu
cd "$(dirname "$0")/.."
DURATION=${1:-60}
SEED=${2:-0}
PEERS=${PEERS:-$HOME/.cache/switchyard-peers}
HIVE=${HIVE_ROUTER_BIN:-$PEERS/bin/hive_router}
NM=${APOLLO_NODE_MODULES:-$PEERS/apollo-composition/node_modules}
args=(--seconds "$DURATION" --seed "$SEED" --out "${OUT:-${TMPDIR:-/tmp}/switchyard-difftest}")
if [ -x "$HIVE" ]; then
  args+=(--hive-router "$HIVE")
else
  echo "difftest: no Hive Router at $HIVE: comparing with the generated world only" >&2
  # The binary reads HIVE_ROUTER_BIN itself too.
  unset HIVE_ROUTER_BIN
fi
if [ -d "$NM/@apollo/composition" ] && command -v node >/dev/null; then
  args+=(--apollo-node-modules "$NM")
else
  echo "difftest: no @apollo/composition in $NM: Switchyard's composer only" >&2
fi
cargo build --quiet -p switchyard-difftest
# shellcheck disable=SC2086 # DIFFTEST_ARGS is a list of flags
exec "${CARGO_TARGET_DIR:-target}/debug/switchyard-difftest" "${args[@]}" ${DIFFTEST_ARGS:-}
