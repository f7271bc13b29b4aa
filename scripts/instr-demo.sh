#!/usr/bin/env bash
# Gateway instructions per request on the demo workload (schema/demo/), for the settings whose cost
# issues #15, #16 and #19 ask about, with scripts/instr-per-request.sh (callgrind; independent of
# machine load). Starts the demo subgraphs on free ports (not under valgrind), then runs each
# scenario's gateway under callgrind and prints one line per scenario with its ratio to the first.
#
# Usage: scripts/instr-demo.sh [SCENARIO...]
#   scenarios (default: default no-metrics-listener traces tls nodedupe):
#     default               metrics recorded, metrics listener on, traces off
#     no-metrics-listener   metrics_listen=off (recording itself cannot be switched off)
#     traces                traces exported over OTLP/HTTP to a local sink that answers 200
#     tls                   gateway -> subgraph over TLS (socat terminates it in front of each subgraph)
#     nodedupe              SWITCHYARD_DEDUPE=off
#     hive-router           Hive Router ($HIVE_ROUTER_BIN), workers: 1, subgraph dedupe on
#     hive-router-nodedupe  the same with its dedupe off
# Env: BIN (dir with switchyard and switchyard-demo-subgraphs; default $CARGO_TARGET_DIR/release or
#      target/release), QUERY (schema/demo/queries/nested.json), N (300), WARM (20), PORT (4600),
#      HIVE_ROUTER_BIN (~/.cache/switchyard-peers/bin/hive_router), KEEP (dir to keep callgrind files)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
QUERY=$(realpath "${QUERY:-$ROOT/schema/demo/queries/nested.json}")
N=${N:-300}; WARM=${WARM:-20}; PORT=${PORT:-4600}
HIVE_ROUTER_BIN=${HIVE_ROUTER_BIN:-$HOME/.cache/switchyard-peers/bin/hive_router}
SCENARIOS=("$@"); [ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(default no-metrics-listener traces tls nodedupe)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/instr-demo.XXXXXX")
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp -r "$WORK"/. "$KEEP"/; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
bg() { setsid "$@" & PIDS+=($!); }

bg "$BIN/switchyard-demo-subgraphs" --port 0 >"$WORK/subgraphs.log" 2>&1
for _ in $(seq 100); do [ "$(grep -c '^[a-z]* http://' "$WORK/subgraphs.log")" = 4 ] && break; sleep 0.1; done
url_of() { awk -v n="$1" '$1 == n {print $2}' "$WORK/subgraphs.log"; }
SED=(); SED_TLS=()
for name in accounts products inventory reviews; do
  url=$(url_of $name); [ -n "$url" ] || { cat "$WORK/subgraphs.log" >&2; exit 1; }
  n=$(grep -n "join__graph(name: \"$name\"" "$ROOT/schema/demo/supergraph.graphql" | sed 's/.*url: "\([^"]*\)".*/\1/' | head -1)
  SED+=(-e "s#$n#$url#")
  if [[ " ${SCENARIOS[*]} " == *" tls "* ]]; then
    # TLS in front of the subgraph: a throw-away CA and a certificate for 127.0.0.1.
    if [ ! -f "$WORK/ca.pem" ]; then
      openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/ca.key" -out "$WORK/ca.pem" -days 1 -subj /CN=instr-demo-ca 2>/dev/null
      openssl req -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/leaf.csr" -subj /CN=127.0.0.1 2>/dev/null
      printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$WORK/ext.cnf"
      openssl x509 -req -in "$WORK/leaf.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
        -out "$WORK/cert.pem" -days 1 -extfile "$WORK/ext.cnf" 2>/dev/null
    fi
    tp=$(free_port); up=${url#http://}; up=${up%%/*}
    bg socat "OPENSSL-LISTEN:$tp,bind=127.0.0.1,reuseaddr,fork,cert=$WORK/cert.pem,key=$WORK/key.pem,verify=0" "TCP:$up"
    SED_TLS+=(-e "s#$n#https://127.0.0.1:$tp/graphql#")
  fi
done
sed "${SED[@]}" "$ROOT/schema/demo/supergraph.graphql" >"$WORK/supergraph.graphql"
[ ${#SED_TLS[@]} -eq 0 ] || sed "${SED_TLS[@]}" "$ROOT/schema/demo/supergraph.graphql" >"$WORK/supergraph-tls.graphql"

router_config() { # dedupe true|false
  printf 'supergraph: { source: file, path: %s }\nhttp: { host: 127.0.0.1, port: %s, workers: 1 }\nlog: { level: warn }\ntraffic_shaping: { all: { dedupe_enabled: %s } }\n' \
    "$WORK/supergraph.graphql" "$PORT" "$1" >"$WORK/router-$1.yaml"
  echo "$WORK/router-$1.yaml"
}

OURS=(env RUST_LOG=warn SWITCHYARD_METRICS_LISTEN=127.0.0.1:0)
GW=("$BIN/switchyard" gateway --listen "127.0.0.1:$PORT")
first=""
for s in "${SCENARIOS[@]}"; do
  case $s in
    default) cmd=("${OURS[@]}" "${GW[@]}" --supergraph "$WORK/supergraph.graphql") ;;
    no-metrics-listener) cmd=(env RUST_LOG=warn SWITCHYARD_METRICS_LISTEN=off "${GW[@]}" --supergraph "$WORK/supergraph.graphql") ;;
    traces)
      sp=$(free_port)
      bg python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
        print("export", self.path, flush=True)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()' "$sp" >"$WORK/sink.log" 2>&1
      cmd=("${OURS[@]}" SWITCHYARD_OTLP_ENDPOINT="http://127.0.0.1:$sp" "${GW[@]}" --supergraph "$WORK/supergraph.graphql") ;;
    tls) cmd=("${OURS[@]}" SWITCHYARD_SUBGRAPH_TLS_CA_FILE="$WORK/ca.pem" "${GW[@]}" --supergraph "$WORK/supergraph-tls.graphql") ;;
    nodedupe) cmd=("${OURS[@]}" SWITCHYARD_DEDUPE=off "${GW[@]}" --supergraph "$WORK/supergraph.graphql") ;;
    hive-router) cmd=(env ROUTER_CONFIG_FILE_PATH="$(router_config true)" "$HIVE_ROUTER_BIN") ;;
    hive-router-nodedupe) cmd=(env ROUTER_CONFIG_FILE_PATH="$(router_config false)" "$HIVE_ROUTER_BIN") ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
  line=$(cd "$WORK" && URL="http://127.0.0.1:$PORT/graphql" WARM=$WARM OUT="$WORK/cg" LABEL=$s \
    "$ROOT/scripts/instr-per-request.sh" "$QUERY" "$N" -- "${cmd[@]}") || { echo "$s: failed (logs: $WORK/cg)" >&2; continue; }
  per=${line##*ir_per_request=}
  [ -n "$first" ] || first=$per
  echo "$line ratio=$(awk -v a="$per" -v b="$first" 'BEGIN{printf "%.3f", a/b}')"
  [ "$s" != traces ] || echo "  otlp exports received: $(grep -c '^export' "$WORK/sink.log" || true)"
done
