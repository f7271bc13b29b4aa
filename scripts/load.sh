#!/usr/bin/env bash
# Load test of the Switchyard gateway over the 4-subgraph demo workload, on loopback only.
#
# Builds the release binaries, starts the demo subgraphs (pinned to CPU $SG_CPU) and the gateway
# (pinned to CPU $GW_CPU) on free ports, checks their answers, then drives them with wrk (pinned to
# CPU $LOAD_CPU, beside the subgraphs, so the gateway has a core to itself):
#   one_subgraph (products only) through the gateway and straight at products, 1 and 4 conns;
#   nested (all four subgraphs, 7 fetches, ~93 KB) through the gateway, 4 and 50 conns, and at
#   4 conns through a second gateway with de-duplication off (SWITCHYARD_DEDUPE=off): with it on,
#   identical in-flight subgraph fetches are collapsed, so the subgraphs do less work per request.
# Prints rps, latency percentiles, CPU µs per request of the gateway and of the subgraphs (from
# /proc/PID/stat utime+stime) and their ratio, the gateway's peak RSS (VmHWM), and the latency
# the gateway adds.
#
# Usage: scripts/load.sh
# Env:   DUR=10      measured seconds per run        WARM=2   unmeasured warm-up seconds per run
#        BUILD=1     0 = reuse target/release         GATEWAY=auto  0 = direct-subgraph half only
#        SG_CPU=0 GW_CPU=1 LOAD_CPU=0  CPU pinning    KEEP=0   1 = keep the work dir (logs, bodies)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUR=${DUR:-10}
WARM=${WARM:-2}
BUILD=${BUILD:-1}
GATEWAY=${GATEWAY:-auto}
SG_CPU=${SG_CPU:-0}
GW_CPU=${GW_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
KEEP=${KEEP:-0}
QUERIES=$ROOT/schema/demo/queries
LUA=$ROOT/scripts/wrk/graphql.lua
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
TCK=$(getconf CLK_TCK)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-load.XXXXXX")
PIDS=()

say() { printf '%s\n' "$*" >&2; }

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    # Each child was started with setsid, so its pid is its process group: stop the whole group.
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$KEEP" = 1 ]; then say "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools and binaries -------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  say "installing wrk (Debian package)..."
  { apt-get update -qq && apt-get install -y -qq wrk; } >/dev/null
fi
for tool in curl python3 taskset; do
  command -v "$tool" >/dev/null || { say "missing tool: $tool"; exit 1; }
done

if [ "$BUILD" = 1 ]; then
  say "building release binaries..."
  if ! (cd "$ROOT" && cargo build --release --no-default-features -p switchyard -p switchyard-demo-subgraphs --bin switchyard --bin switchyard-demo-subgraphs) >"$WORK/build.log" 2>&1; then
    say "the gateway binary does not build (see below); building the subgraphs only"
    grep -E '^error' -A5 "$WORK/build.log" | head -20 >&2 || true
    (cd "$ROOT" && cargo build --release -p switchyard-demo-subgraphs) >"$WORK/build.log" 2>&1 \
      || { tail -30 "$WORK/build.log" >&2; exit 1; }
    GATEWAY=0
  fi
fi
[ -x "$BIN/switchyard-demo-subgraphs" ] || { say "no $BIN/switchyard-demo-subgraphs (BUILD=1?)"; exit 1; }
[ -x "$BIN/switchyard" ] || GATEWAY=0

# --- processes ----------------------------------------------------------------------------------
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start CPU LOG CMD... : runs CMD in its own session pinned to CPU; sets STARTED to its pid.
start() {
  local cpu=$1 log=$2; shift 2
  setsid taskset -c "$cpu" "$@" >"$log" 2>&1 </dev/null &
  STARTED=$!
  PIDS+=("$STARTED")
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
peak_rss_mb() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo NA; }

post() { # URL BODY_FILE -> response body on stdout
  curl -sS -m 10 -X POST -H 'Content-Type: application/json' --data-binary @"$2" "$1"
}

# All four subgraphs in one process, each on a port the OS picks; the binary prints
# "NAME http://ADDR/graphql" per subgraph.
start "$SG_CPU" "$WORK/subgraphs.log" "$BIN/switchyard-demo-subgraphs" --port 0
SG_PID=$STARTED
for _ in $(seq 100); do
  [ "$(grep -c '^[a-z]* http://' "$WORK/subgraphs.log" 2>/dev/null)" = 4 ] && break
  kill -0 "$SG_PID" 2>/dev/null || { cat "$WORK/subgraphs.log" >&2; exit 1; }
  sleep 0.1
done
url_of() { awk -v n="$1" '$1 == n {print $2}' "$WORK/subgraphs.log"; }
ACCOUNTS=$(url_of accounts); PRODUCTS=$(url_of products)
INVENTORY=$(url_of inventory); REVIEWS=$(url_of reviews)
[ -n "$REVIEWS" ] || { say "subgraphs did not start:"; cat "$WORK/subgraphs.log" >&2; exit 1; }
say "subgraphs: accounts $ACCOUNTS products $PRODUCTS inventory $INVENTORY reviews $REVIEWS"

GW_PID=""
GW_URL=""
if [ "$GATEWAY" != 0 ]; then
  # The committed supergraph routes to 4001..4004; point it at this run's ports instead.
  sed -e "s#http://127.0.0.1:4001/graphql#$ACCOUNTS#" -e "s#http://127.0.0.1:4002/graphql#$PRODUCTS#" \
      -e "s#http://127.0.0.1:4003/graphql#$INVENTORY#" -e "s#http://127.0.0.1:4004/graphql#$REVIEWS#" \
      "$ROOT/schema/demo/supergraph.graphql" >"$WORK/supergraph.graphql"
  GW_PORT=$(free_port)
  GW_URL=http://127.0.0.1:$GW_PORT/graphql
  start "$GW_CPU" "$WORK/gateway.log" env RUST_LOG="${RUST_LOG:-warn}" "$BIN/switchyard" gateway \
    --supergraph "$WORK/supergraph.graphql" --listen "127.0.0.1:$GW_PORT"
  GW_PID=$STARTED
  ready=0
  for _ in $(seq 150); do
    if post "$GW_URL" "$QUERIES/one_subgraph.json" 2>/dev/null | grep -q '"data"'; then ready=1; break; fi
    kill -0 "$GW_PID" 2>/dev/null || break
    sleep 0.2
  done
  if [ "$ready" = 0 ]; then
    say "gateway did not become ready; running the direct-subgraph half only. Its log:"
    tail -15 "$WORK/gateway.log" >&2
    kill -TERM -- "-$GW_PID" 2>/dev/null || true
    GW_PID=""
    GW_URL=""
  else
    say "gateway:   $GW_URL (pid $GW_PID)"
  fi
fi

# A second gateway with subgraph-request de-duplication off: every client request then sends all
# of its own fetches, so its subgraph CPU per request is the full cost of answering the query.
GW2_PID=""
GW2_URL=""
if [ -n "$GW_URL" ]; then
  GW2_PORT=$(free_port)
  start "$GW_CPU" "$WORK/gateway-nodedupe.log" env RUST_LOG="${RUST_LOG:-warn}" SWITCHYARD_DEDUPE=off \
    "$BIN/switchyard" gateway --supergraph "$WORK/supergraph.graphql" --listen "127.0.0.1:$GW2_PORT"
  for _ in $(seq 150); do
    if post "http://127.0.0.1:$GW2_PORT/graphql" "$QUERIES/one_subgraph.json" 2>/dev/null | grep -q '"data"'; then
      GW2_PID=$STARTED
      GW2_URL=http://127.0.0.1:$GW2_PORT/graphql
      break
    fi
    sleep 0.2
  done
  [ -n "$GW2_URL" ] || say "the no-dedupe gateway did not become ready; skipping its run"
fi

# --- correctness before speed -------------------------------------------------------------------
same_json() { python3 -c 'import json, sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); sys.exit(0 if a == b else 1)' "$1" "$2"; }
no_errors() { python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); sys.exit(0 if r.get("data") and not r.get("errors") else 1)' "$1"; }

declare -A CHECK
post "$PRODUCTS" "$QUERIES/one_subgraph.json" >"$WORK/direct-one.json"
if no_errors "$WORK/direct-one.json"; then CHECK[direct]=ok; else CHECK[direct]=ERRORS; fi
python3 "$ROOT/scripts/nested_reference.py" "$ACCOUNTS" "$PRODUCTS" "$INVENTORY" "$REVIEWS" >"$WORK/nested-reference.json"
say "nested reference response: $(wc -c <"$WORK/nested-reference.json") bytes"
if [ -n "$GW_URL" ]; then
  post "$GW_URL" "$QUERIES/one_subgraph.json" >"$WORK/gateway-one.json" || true
  post "$GW_URL" "$QUERIES/nested.json" >"$WORK/gateway-nested.json" || true
  if same_json "$WORK/gateway-one.json" "$WORK/direct-one.json"; then CHECK[gw_one]=ok; else CHECK[gw_one]=MISMATCH; fi
  if same_json "$WORK/gateway-nested.json" "$WORK/nested-reference.json"; then CHECK[gw_nested]=ok; else CHECK[gw_nested]=MISMATCH; fi
  if [ -n "$GW2_URL" ]; then
    post "$GW2_URL" "$QUERIES/nested.json" >"$WORK/gateway2-nested.json" || true
    if same_json "$WORK/gateway2-nested.json" "$WORK/nested-reference.json"; then CHECK[gw2_nested]=ok; else CHECK[gw2_nested]=MISMATCH; fi
  fi
  say "gateway nested response: $(wc -c <"$WORK/gateway-nested.json") bytes (${CHECK[gw_nested]})"
  [ "${CHECK[gw_nested]}" = ok ] || say "  first bytes: $(head -c 300 "$WORK/gateway-nested.json")"
fi

# --- load ---------------------------------------------------------------------------------------
wrk_run() { # URL BODY CONNS SECONDS -> RESULT line
  local threads=$(( $3 < 2 ? $3 : 2 ))
  BODY_FILE=$2 taskset -c "$LOAD_CPU" wrk -t"$threads" -c"$3" -d"$4"s --timeout 10s -s "$LUA" "$1" 2>&1 \
    | grep '^RESULT' || echo "RESULT requests=0"
}
kv() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }
per_request_us() { # TICKS_BEFORE TICKS_AFTER REQUESTS
  awk -v a="$1" -v b="$2" -v hz="$TCK" -v n="$3" 'BEGIN { if (n > 0) printf "%.0f", (b - a) / hz / n * 1e6; else print "NA" }'
}

declare -A P50 CPU_RATIO
ROWS=()
scenario() { # NAME TARGET(gateway|direct) BODY CONNS
  local name=$1 target=$2 body=$3 conns=$4 url pid="" gw0=0 gw1=0 sg0 sg1 r n gw_us sg_us rss check
  case $target in
    gateway) url=$GW_URL; pid=$GW_PID ;;
    gateway-nodedupe) url=$GW2_URL; pid=$GW2_PID ;;
    *) url=$PRODUCTS ;;
  esac
  if [ -z "$url" ]; then
    ROWS+=("$(printf '%-22s %5s %9s %8s %8s %8s %11s %11s %8s %s' "$name" "$conns" - - - - - - - skipped)")
    return
  fi
  say "running $name at $conns conns (${WARM}s warm-up + ${DUR}s)..."
  if [ "$WARM" -gt 0 ]; then wrk_run "$url" "$body" "$conns" "$WARM" >/dev/null; fi
  if [ -n "$pid" ]; then gw0=$(cpu_ticks "$pid"); fi
  sg0=$(cpu_ticks "$SG_PID")
  r=$(wrk_run "$url" "$body" "$conns" "$DUR")
  if [ -n "$pid" ]; then gw1=$(cpu_ticks "$pid"); fi
  sg1=$(cpu_ticks "$SG_PID")
  n=$(kv "$r" requests)
  if [ -n "$pid" ]; then gw_us=$(per_request_us "$gw0" "$gw1" "$n"); rss=$(peak_rss_mb "$pid"); else gw_us=-; rss=-; fi
  sg_us=$(per_request_us "$sg0" "$sg1" "$n")
  case $name in
    one_subgraph/gateway) check=${CHECK[gw_one]} ;;
    nested/gateway) check=${CHECK[gw_nested]} ;;
    nested/gateway-nodedupe) check=${CHECK[gw2_nested]:-NA} ;;
    *) check=${CHECK[direct]} ;;
  esac
  if [ -n "$pid" ]; then
    CPU_RATIO[$name/$conns]=$(awk -v g="$gw_us" -v s="$sg_us" 'BEGIN { if (s > 0) printf "%.2f", g / s; else print "NA" }')
  fi
  local errors non2xx
  errors=$(kv "$r" errors); non2xx=$(kv "$r" non2xx)
  local bad=$(( ${errors:-0} + ${non2xx:-0} ))
  [ "$bad" -eq 0 ] || check="$check,${bad}_failed"
  P50[$name/$conns]=$(kv "$r" p50_ms)
  ROWS+=("$(printf '%-22s %5s %9s %8s %8s %8s %11s %11s %8s %s' "$name" "$conns" "$(kv "$r" rps)" \
    "$(kv "$r" p50_ms)" "$(kv "$r" p95_ms)" "$(kv "$r" p99_ms)" "$gw_us" \
    "$sg_us" "$rss" "$check")")
}

# Other work on the machine (builds, tests) shows up as tail latency and lower rps: say so.
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
awk -v l="$LOAD_BEFORE" 'BEGIN { exit !(l > 1.0) }' \
  && say "warning: load average is $LOAD_BEFORE before the runs: other processes will skew the numbers"

scenario one_subgraph/gateway gateway "$QUERIES/one_subgraph.json" 1
scenario one_subgraph/direct direct "$QUERIES/one_subgraph.json" 1
scenario one_subgraph/gateway gateway "$QUERIES/one_subgraph.json" 4
scenario one_subgraph/direct direct "$QUERIES/one_subgraph.json" 4
scenario nested/gateway gateway "$QUERIES/nested.json" 4
scenario nested/gateway-nodedupe gateway-nodedupe "$QUERIES/nested.json" 4
scenario nested/gateway gateway "$QUERIES/nested.json" 50

# Under load nothing checks bodies (a wrk response() hook would cost the shared core), so check
# concurrency afterwards: 200 nested requests, 50 in flight, each must equal the reference.
CONCURRENT=""
if [ -n "$GW_URL" ]; then
  CONCURRENT=$(python3 - "$GW_URL" "$QUERIES/nested.json" "$WORK/nested-reference.json" <<'PY'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
url, body, ref = sys.argv[1], open(sys.argv[2], "rb").read(), json.load(open(sys.argv[3]))
def one(_):
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp) == ref
    except Exception:
        return False
with ThreadPoolExecutor(50) as pool:
    ok = sum(pool.map(one, range(200)))
print(f"{ok}/200 concurrent nested responses (50 in flight) equal the reference")
PY
)
fi

# --- report -------------------------------------------------------------------------------------
echo
echo "Switchyard load test: DUR=${DUR}s per run, subgraphs on CPU $SG_CPU, gateway on CPU $GW_CPU, wrk on CPU $LOAD_CPU;" \
  "load average $LOAD_BEFORE before, $(cut -d' ' -f1 /proc/loadavg) after"
printf '%-22s %5s %9s %8s %8s %8s %11s %11s %8s %s\n' scenario conns rps p50_ms p95_ms p99_ms gw_cpu_us/rq sg_cpu_us/rq gw_rss_mb check
for row in "${ROWS[@]}"; do echo "$row"; done
[ -z "$CONCURRENT" ] || echo "$CONCURRENT"
for key in nested/gateway/4 nested/gateway-nodedupe/4 nested/gateway/50; do
  if [ -n "${CPU_RATIO[$key]:-}" ]; then
    echo "gateway CPU / subgraphs' CPU per request ($key conns): ${CPU_RATIO[$key]}"
  fi
done
for c in 1 4; do
  g=${P50[one_subgraph/gateway/$c]:-}; d=${P50[one_subgraph/direct/$c]:-}
  if [ -n "$g" ] && [ -n "$d" ]; then
    awk -v g="$g" -v d="$d" -v c="$c" 'BEGIN { printf "gateway added p50 latency (one_subgraph, %d conns): %.3f ms (%.3f - %.3f)\n", c, g - d, g, d }'
  fi
done
