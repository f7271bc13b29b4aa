# Sourced, not run: starts the four demo subgraphs for a measuring script and points the committed
# demo supergraph at them. `start_demo_subgraphs BIN_DIR WORK_DIR` runs BIN_DIR's release
# `switchyard-demo-subgraphs` on CPU 0 on free ports (log: WORK_DIR/subgraphs.log), sets SG to its
# PID, waits for all four, and writes WORK_DIR/supergraph.graphql; it exits the script when they
# do not start. The caller kills $SG (e.g. in its EXIT trap). Needs ROOT (the repository).
start_demo_subgraphs() {
  local bin=$1 dir=$2
  taskset -c 0 "$bin/switchyard-demo-subgraphs" --port 0 >"$dir/subgraphs.log" 2>&1 &
  SG=$!
  for _ in $(seq 100); do [ "$(grep -c '^[a-z]* http://' "$dir/subgraphs.log")" = 4 ] && break; sleep 0.2; done
  url() { awk -v n="$1" '$1 == n {print $2}' "$dir/subgraphs.log"; }
  [ -n "$(url reviews)" ] || { echo "subgraphs did not start:" >&2; cat "$dir/subgraphs.log" >&2; exit 1; }
  sed -e "s#http://127.0.0.1:4001/graphql#$(url accounts)#" -e "s#http://127.0.0.1:4002/graphql#$(url products)#" \
      -e "s#http://127.0.0.1:4003/graphql#$(url inventory)#" -e "s#http://127.0.0.1:4004/graphql#$(url reviews)#" \
      "$ROOT/schema/demo/supergraph.graphql" >"$dir/supergraph.graphql"
}
