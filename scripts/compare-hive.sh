#!/usr/bin/env bash
# Switchyard against Hive Router on the demo workload with ../shared/bench/compare.sh: starts the
# four demo subgraphs on CPU 0 (compare.sh pins the gateway to CPU 1 and wrk to CPU 0), points the
# committed demo supergraph at their ports, and runs compare.sh with the gateways given.
# Usage: scripts/compare-hive.sh [GATEWAY...]    (default: ours hive-router-nodedupe)
# Env:   Q=two_branches (schema/demo/queries/$Q.json)   OURS_ENV="SWITCHYARD_DEDUPE=off" (settings
#        for ours)   BIN (release binaries, default ${CARGO_TARGET_DIR:-target}/release; build with
#        `cargo build --release --no-default-features -p switchyard -p switchyard-demo-subgraphs`:
#        the gateway-only build, as deployed)   COMPARE (compare.sh)
#        DUR=20 WARM=5 CONNS=50, passed on to compare.sh. Hive Router: ../shared/bench/setup.sh.
#        RUNS=1: with more, compare.sh runs that many times (each run starts every gateway afresh,
#        in the order given) and a summary follows: per gateway and connection count, each run's
#        CPU per request as a ratio to the first gateway's in the same run, and their median (this
#        machine's load moves single runs by +-20%; ratios within one run move less).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
COMPARE=${COMPARE:-$ROOT/../shared/bench/compare.sh}
[ -x "$BIN/switchyard" ] && [ -x "$BIN/switchyard-demo-subgraphs" ] || { echo "no release binaries in $BIN" >&2; exit 1; }
[ -f "$COMPARE" ] || { echo "no compare.sh at $COMPARE" >&2; exit 1; }
[ $# -gt 0 ] || set -- ours hive-router-nodedupe
W=$(mktemp -d)
SG=
trap '[ -n "$SG" ] && { kill $SG 2>/dev/null; wait $SG 2>/dev/null; }; rm -rf "$W"' EXIT
. "$ROOT/scripts/demo-subgraphs.sh"
start_demo_subgraphs "$BIN" "$W"
OURS="env SWITCHYARD_METRICS_LISTEN=off RUST_LOG=warn ${OURS_ENV:-} $BIN/switchyard gateway --supergraph {supergraph} --listen 127.0.0.1:{port}"
for run in $(seq "${RUNS:-1}"); do
  [ "${RUNS:-1}" -gt 1 ] && echo "== run $run of $RUNS"
  DUR=${DUR:-20} WARM=${WARM:-5} CONNS=${CONNS:-50} bash "$COMPARE" "$W/supergraph.graphql" \
    "$ROOT/schema/demo/queries/${Q:-two_branches}.json" "$OURS" "$@"
done | tee "$W/runs.txt"
[ "${RUNS:-1}" -gt 1 ] || exit 0
# compare.sh rows: gateway conns rps p50 p95 cpu_us/req rss check; the first gateway named is the base.
awk -v base="$1" '
  /^== run/ { run++ }
  NF == 8 && $2 ~ /^[0-9]+$/ { cpu[run, $1, $2] = $6; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }; conns[$2] = 1 }
  END {
    for (c in conns) for (i = 2; i <= n; i++) {
      g = order[i]; k = 0; line = ""
      for (r = 1; r <= run; r++) if (cpu[r, g, c] > 0 && cpu[r, base, c] > 0) {
        v[++k] = cpu[r, base, c] / cpu[r, g, c]; line = line sprintf(" %.2f", v[k])
      }
      if (k == 0) continue
      for (a = 1; a <= k; a++) for (b = a + 1; b <= k; b++) if (v[b] < v[a]) { t = v[a]; v[a] = v[b]; v[b] = t }
      med = (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
      printf "cpu per request, %s / %s at %s connections, per run:%s; median %.2f\n", base, g, c, line, med
    }
  }' "$W/runs.txt"
