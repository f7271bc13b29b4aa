#!/usr/bin/env bash
# Gateway CPU per request of several builds, alternated on one machine: for A/B checks of a change
# whose effect is smaller than this machine's run-to-run noise (single runs move by +-20% here;
# alternating and taking the median of many runs is what shows a 5-15% change). Starts the demo
# subgraphs (from the first build) on CPU 0, then per round each gateway build in turn on CPU 1,
# warms it for 3 s and loads it with wrk (CPU 0, 50 connections) for DUR seconds; prints each
# run's user and system CPU per request (/proc/PID/stat) and, at the end, each build's median and
# mean. Callgrind counts instructions but not the stalls this is for (store forwarding, cache).
# Usage: scripts/ab-cpu.sh BIN_DIR...    (each holds release `switchyard` and
#        `switchyard-demo-subgraphs`, e.g. the gateway-only build of two revisions)
# Env:   ROUNDS=6 DUR=8 Q=nested (schema/demo/queries/$Q.json) OURS_ENV="SWITCHYARD_DEDUPE=off"
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -gt 0 ] || { echo "usage: $0 BIN_DIR..." >&2; exit 2; }
ROUNDS=${ROUNDS:-6}; DUR=${DUR:-8}; Q=${Q:-nested}; OURS_ENV=${OURS_ENV:-SWITCHYARD_DEDUPE=off}
BODY=$ROOT/schema/demo/queries/$Q.json
LUA=$ROOT/scripts/wrk/graphql.lua
TCK=$(getconf CLK_TCK)
for b in "$@"; do [ -x "$b/switchyard" ] || { echo "no release switchyard in $b" >&2; exit 1; }; done
W=$(mktemp -d)
SG=
trap '[ -n "$SG" ] && { kill $SG 2>/dev/null; wait $SG 2>/dev/null; }; rm -rf "$W"' EXIT
. "$ROOT/scripts/demo-subgraphs.sh"
start_demo_subgraphs "$1" "$W"
PORT=${PORT:-4000}
URL=http://127.0.0.1:$PORT/graphql
for round in $(seq "$ROUNDS"); do
  for bin in "$@"; do
    (cd "$W" && exec setsid taskset -c 1 env SWITCHYARD_METRICS_LISTEN=off RUST_LOG=warn $OURS_ENV \
      "$bin/switchyard" gateway --supergraph "$W/supergraph.graphql" --listen "127.0.0.1:$PORT") >"$W/gw.log" 2>&1 &
    PID=$!
    for _ in $(seq 300); do curl -s -m 5 -X POST -H 'content-type: application/json' --data @"$BODY" "$URL" 2>/dev/null | grep -q '"data"' && break; sleep 0.2; done
    BODY_FILE=$BODY taskset -c 0 wrk -t2 -c50 -d3s -s "$LUA" "$URL" >/dev/null 2>&1
    before=$(awk '{print $14, $15}' "/proc/$PID/stat")
    result=$(BODY_FILE=$BODY taskset -c 0 wrk -t2 -c50 -d"${DUR}s" --timeout 10s -s "$LUA" "$URL" 2>&1 | grep '^RESULT')
    after=$(awk '{print $14, $15}' "/proc/$PID/stat")
    rps=$(echo "$result" | tr ' ' '\n' | awk -F= '$1 == "rps" {print $2}')
    awk -v bin="$bin" -v a="$before" -v b="$after" -v r="$rps" -v d="$DUR" -v hz="$TCK" 'BEGIN {
      split(a, x, " "); split(b, y, " "); n = r * d
      printf "%s rps=%s user_us=%.0f sys_us=%.0f cpu_us=%.0f\n", bin, r, (y[1]-x[1])/hz/n*1e6, (y[2]-x[2])/hz/n*1e6, (y[1]+y[2]-x[1]-x[2])/hz/n*1e6 }'
    kill -TERM -- "-$PID" 2>/dev/null; sleep 1; kill -KILL -- "-$PID" 2>/dev/null; wait "$PID" 2>/dev/null
  done
done | tee "$W/runs.txt"
awk '{ split($NF, c, "="); v[$1] = v[$1] " " c[2]; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
  END { for (i = 1; i <= n; i++) {
    k = split(substr(v[order[i]], 2), x, " "); s = 0
    for (a = 1; a <= k; a++) s += x[a]
    for (a = 1; a <= k; a++) for (b = a + 1; b <= k; b++) if (x[b] < x[a]) { t = x[a]; x[a] = x[b]; x[b] = t }
    med = (k % 2) ? x[(k + 1) / 2] : (x[k / 2] + x[k / 2 + 1]) / 2
    printf "%s: cpu us per request over %d runs: median %.0f, mean %.0f\n", order[i], k, med, s / k } }' "$W/runs.txt"
