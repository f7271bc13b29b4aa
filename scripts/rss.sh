#!/usr/bin/env bash
# Peak RSS (VmHWM) of the gateway on the demo workload, split into its fixed cost and its cost
# under load: a fresh gateway per phase, so each high-water mark belongs to that phase alone.
#   idle   started, one one_subgraph and one nested request answered (every phase starts so)
#   c1     the nested query (4 subgraphs, 7 fetches, ~93 KB) from 1 connection for DUR seconds
#   c50    the same from 50 connections
# Each line also splits the resident memory at the end of the phase into anonymous memory (heap,
# stacks) and file pages (the binary's code and data that were touched), and shows transparent
# huge pages (AnonHugePages), from /proc/PID/status and smaps_rollup; under load, the gateway's
# CPU time per request (utime + stime from /proc/PID/stat; it moves with machine load) and minor
# page faults per request (/proc/PID/stat; the allocator returning memory to the kernel shows here).
# The subgraphs run in one process on CPU $SG_CPU with wrk; the gateway on CPU $GW_CPU, as in
# scripts/load.sh (taskset: the gateway's runtime then starts one worker thread).
#
# Usage: scripts/rss.sh [PHASE...]          (default: idle c1 c50)
# Env:   BIN (dir with switchyard and switchyard-demo-subgraphs; default $CARGO_TARGET_DIR/release
#        or target/release)  DUR=15  SG_CPU=0  GW_CPU=1  GW_ENV="VAR=VALUE ..." (extra gateway env)
#        LABEL (printed on each line)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
DUR=${DUR:-15}
SG_CPU=${SG_CPU:-0}
GW_CPU=${GW_CPU:-1}
LABEL=${LABEL:-gateway}
read -r -a EXTRA_ENV <<<"${GW_ENV:-}"
PHASES=("$@"); [ ${#PHASES[@]} -gt 0 ] || PHASES=(idle c1 c50)
QUERIES=$ROOT/schema/demo/queries
LUA=$ROOT/scripts/wrk/graphql.lua
WORK=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-rss.XXXXXX")
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in wrk curl python3 taskset; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
[ -x "$BIN/switchyard" ] && [ -x "$BIN/switchyard-demo-subgraphs" ] \
  || { echo "no switchyard / switchyard-demo-subgraphs in $BIN" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
post() { curl -sS -m 10 -X POST -H 'Content-Type: application/json' --data-binary @"$2" "$1"; }

setsid taskset -c "$SG_CPU" "$BIN/switchyard-demo-subgraphs" --port 0 >"$WORK/subgraphs.log" 2>&1 </dev/null &
PIDS+=($!)
for _ in $(seq 100); do
  [ "$(grep -c '^[a-z]* http://' "$WORK/subgraphs.log" 2>/dev/null)" = 4 ] && break
  sleep 0.1
done
SED=()
for name in accounts products inventory reviews; do
  url=$(awk -v n="$name" '$1 == n {print $2}' "$WORK/subgraphs.log")
  [ -n "$url" ] || { cat "$WORK/subgraphs.log" >&2; exit 1; }
  old=$(grep "join__graph(name: \"$name\"" "$ROOT/schema/demo/supergraph.graphql" | sed 's/.*url: "\([^"]*\)".*/\1/' | head -1)
  SED+=(-e "s#$old#$url#")
done
sed "${SED[@]}" "$ROOT/schema/demo/supergraph.graphql" >"$WORK/supergraph.graphql"

# memory PID -> "hwm=.. rss=.. anon=.. file=.. thp=.." (MB)
memory() {
  awk '/^VmHWM/ {h = $2} /^VmRSS/ {r = $2} /^RssAnon/ {a = $2} /^RssFile/ {f = $2}
       END {printf "hwm_mb=%.1f rss_mb=%.1f anon_mb=%.1f file_mb=%.1f", h/1024, r/1024, a/1024, f/1024}' \
    "/proc/$1/status"
  awk '/^AnonHugePages/ {printf " thp_mb=%.1f", $2/1024}' "/proc/$1/smaps_rollup" 2>/dev/null || true
  printf ' threads=%s' "$(awk '/^Threads/ {print $2}' "/proc/$1/status")"
}

for phase in "${PHASES[@]}"; do
  port=$(free_port)
  url=http://127.0.0.1:$port/graphql
  setsid taskset -c "$GW_CPU" env RUST_LOG=warn SWITCHYARD_METRICS_LISTEN=127.0.0.1:0 "${EXTRA_ENV[@]}" "$BIN/switchyard" gateway \
    --supergraph "$WORK/supergraph.graphql" --listen "127.0.0.1:$port" >"$WORK/gateway.log" 2>&1 </dev/null &
  gw=$!
  PIDS+=("$gw")
  ok=0
  for _ in $(seq 150); do
    if post "$url" "$QUERIES/one_subgraph.json" 2>/dev/null | grep -q '"data"'; then ok=1; break; fi
    kill -0 "$gw" 2>/dev/null || break
    sleep 0.2
  done
  [ "$ok" = 1 ] || { echo "gateway did not start:" >&2; cat "$WORK/gateway.log" >&2; exit 1; }
  post "$url" "$QUERIES/nested.json" | python3 -c 'import json, sys; r = json.load(sys.stdin); sys.exit(0 if r.get("data") and not r.get("errors") else 1)' \
    || { echo "the nested query failed" >&2; exit 1; }
  result=""
  ticks0=$(awk '{print $14 + $15}' "/proc/$gw/stat")
  faults0=$(awk '{print $10}' "/proc/$gw/stat")
  case $phase in
    idle) ;;
    c1 | c50)
      conns=${phase#c}
      threads=$(( conns < 2 ? conns : 2 ))
      result=$(BODY_FILE="$QUERIES/nested.json" taskset -c "$SG_CPU" wrk -t"$threads" -c"$conns" -d"$DUR"s \
        --timeout 10s -s "$LUA" "$url" 2>&1 | grep '^RESULT' | tr ' ' '\n' | grep -E '^(requests|rps|errors|non2xx)=' | tr '\n' ' ')
      ;;
    *) echo "unknown phase $phase" >&2; exit 2 ;;
  esac
  ticks1=$(awk '{print $14 + $15}' "/proc/$gw/stat")
  faults1=$(awk '{print $10}' "/proc/$gw/stat")
  n=$(tr ' ' '\n' <<<"$result" | awk -F= '$1 == "requests" {print $2}')
  [ -z "$n" ] || result="$result gw_cpu_us/rq=$(awk -v a="$ticks0" -v b="$ticks1" -v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN {printf "%.0f", (b - a) / hz / n * 1e6}') faults/rq=$(awk -v a="$faults0" -v b="$faults1" -v n="$n" 'BEGIN {printf "%.1f", (b - a) / n}')"
  echo "$LABEL $phase $(memory "$gw") $result"
  kill -TERM -- "-$gw" 2>/dev/null || true
  wait "$gw" 2>/dev/null || true
done
