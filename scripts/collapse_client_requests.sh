#!/usr/bin/env bash
# Client-request collapsing (collapse_client_requests) off vs on over the 4-subgraph demo
# workload: the nested query at 50 connections (wrk on CPU 0 with the subgraphs, the gateway on
# CPU 1). Prints rps and latency, gateway and subgraph CPU µs per client request, the subgraph
# requests actually sent per client request, and the collapsed-requests counter.
# Usage: scripts/collapse_client_requests.sh   Env: BIN (target/debug), DUR (15)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug}; DUR=${DUR:-15}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
setsid taskset -c 0 $BIN/switchyard-demo-subgraphs --port 0 >$W/sg.log 2>&1 & SG=$!
for _ in $(seq 100); do [ "$(grep -c '^[a-z]* http://' $W/sg.log)" = 4 ] && break; sleep 0.1; done
u() { awk -v n="$1" '$1==n {print $2}' $W/sg.log; }
sed -e "s#http://127.0.0.1:4001/graphql#$(u accounts)#" -e "s#http://127.0.0.1:4002/graphql#$(u products)#" \
    -e "s#http://127.0.0.1:4003/graphql#$(u inventory)#" -e "s#http://127.0.0.1:4004/graphql#$(u reviews)#" \
    $ROOT/schema/demo/supergraph.graphql > $W/supergraph.graphql
TCK=$(getconf CLK_TCK)
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
for collapse in off on; do
  P=$(free_port); M=$(free_port)
  setsid taskset -c 1 env RUST_LOG=warn SWITCHYARD_COLLAPSE_CLIENT_REQUESTS=$collapse SWITCHYARD_METRICS_LISTEN=127.0.0.1:$M \
    $BIN/switchyard gateway --supergraph $W/supergraph.graphql --listen 127.0.0.1:$P >$W/gw-$collapse.log 2>&1 & GW=$!
  for _ in $(seq 100); do curl -s -m 5 -X POST -H 'content-type: application/json' --data @$ROOT/schema/demo/queries/nested.json http://127.0.0.1:$P/graphql | grep -q '"data"' && break; sleep 0.2; done
  BODY_FILE=$ROOT/schema/demo/queries/nested.json taskset -c 0 wrk -t2 -c50 -d3s -s $ROOT/scripts/wrk/graphql.lua http://127.0.0.1:$P/graphql >/dev/null 2>&1
  sub0=$(curl -s http://127.0.0.1:$M/metrics | awk '/^switchyard_gateway_subgraph_requests_total/ {s+=$2} /^switchyard_gateway_subgraph_collapsed_fetches_total/ {s-=$2} END {print s+0}')
  g0=$(ticks $GW); s0=$(ticks $SG)
  r=$(BODY_FILE=$ROOT/schema/demo/queries/nested.json taskset -c 0 wrk -t2 -c50 -d${DUR}s --timeout 10s -s $ROOT/scripts/wrk/graphql.lua http://127.0.0.1:$P/graphql 2>&1 | grep '^RESULT')
  g1=$(ticks $GW); s1=$(ticks $SG)
  metrics=$(curl -s http://127.0.0.1:$M/metrics)
  sub1=$(echo "$metrics" | awk '/^switchyard_gateway_subgraph_requests_total/ {s+=$2} /^switchyard_gateway_subgraph_collapsed_fetches_total/ {s-=$2} END {print s+0}')
  collapsed=$(echo "$metrics" | awk '/^switchyard_gateway_collapsed_requests_total/ {print $2}')
  rps=$(echo "$r" | tr ' ' '\n' | awk -F= '$1=="rps" {print $2}')
  echo "collapse=$collapse $r gw_cpu_us/req=$(awk -v a=$g0 -v b=$g1 -v h=$TCK -v r=$rps -v d=$DUR 'BEGIN{printf "%.0f",(b-a)/h/(r*d)*1e6}') subgraph_cpu_us/req=$(awk -v a=$s0 -v b=$s1 -v h=$TCK -v r=$rps -v d=$DUR 'BEGIN{printf "%.0f",(b-a)/h/(r*d)*1e6}') subgraph_requests/req=$(awk -v a=$sub0 -v b=$sub1 -v r=$rps -v d=$DUR 'BEGIN{printf "%.2f",(b-a)/(r*d)}') collapsed_total=$collapsed"
  kill -TERM -- -$GW; wait $GW 2>/dev/null
done
kill -TERM -- -$SG; wait $SG 2>/dev/null
