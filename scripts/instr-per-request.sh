#!/usr/bin/env bash
# Gateway CPU per request as an instruction count, which (unlike CPU time) does not depend on how
# loaded the machine is: runs a gateway command under `valgrind --tool=callgrind` twice, once
# sending WARM requests and once sending WARM + N, each time stopping it with SIGTERM, and prints
# (Ir of the second run - Ir of the first) / N. Startup, warm-up (plan cache, connection pools)
# and shutdown cancel out. Requests go one after another on one kept-alive connection; every
# response must be HTTP 200 with "data", no "errors", and the same length as the first.
#
# Usage: scripts/instr-per-request.sh QUERY.json N -- [env VAR=VALUE...] COMMAND [ARGS...]
#   COMMAND must serve GraphQL at $URL (the subgraphs it needs must already be running).
# Env:   URL=http://127.0.0.1:4000/graphql   WARM=20   OUT=<dir for the callgrind files (kept)>
#        LABEL=<name printed in the result line>
# Prints: LABEL n=N warm=WARM ir_base=... ir_run=... ir_per_request=...
# Example (see ARCHITECTURE.md, "Performance"):
#   scripts/instr-per-request.sh schema/demo/queries/nested.json 300 -- \
#     target/release/switchyard gateway --supergraph /tmp/sg.graphql --listen 127.0.0.1:4000
set -euo pipefail

[ $# -ge 4 ] && [ "$3" = -- ] || { sed -n '2,16p' "$0" >&2; exit 2; }
BODY=$(realpath "$1"); N=$2; shift 3
URL=${URL:-http://127.0.0.1:4000/graphql}
WARM=${WARM:-20}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/instr.XXXXXX")}
LABEL=${LABEL:-$(basename "$1")}
mkdir -p "$OUT"
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

# One client for both runs: waits for the port, then sends the requests on one connection.
send() { # COUNT
  python3 - "$URL" "$BODY" "$1" <<'PY'
import http.client, socket, sys, time, urllib.parse
url, body_file, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
u = urllib.parse.urlsplit(url)
body = open(body_file, "rb").read()
deadline = time.time() + 600
while True:  # a bare TCP connect: costs the gateway (almost) nothing, unlike a polling request
    try:
        socket.create_connection((u.hostname, u.port), timeout=1).close()
        break
    except OSError:
        if time.time() > deadline:
            sys.exit("gateway did not listen within 600 s")
        time.sleep(0.5)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
first = None
for i in range(count):
    conn.request("POST", u.path, body, {"content-type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200 or b'"data"' not in data or b'"errors"' in data:
        sys.exit(f"request {i}: HTTP {r.status}: {data[:300]!r}")
    if first is None:
        first = len(data)
    elif len(data) != first:
        sys.exit(f"request {i}: {len(data)} bytes, the first had {first}")
print(f"{count} requests ok, {first} bytes each", file=sys.stderr)
PY
}

run() { # COUNT COMMAND... -> prints total Ir
  local count=$1 file="$OUT/callgrind.$LABEL.$1" pid
  shift
  rm -f "$file"
  # `env A=1 prog` would have valgrind measure env (it does not follow exec): set them outside.
  local vars=()
  if [ "$1" = env ]; then shift; while [[ "$1" == *=* ]]; do vars+=("$1"); shift; done; fi
  setsid env "${vars[@]}" valgrind --tool=callgrind --callgrind-out-file="$file" "$@" \
    2>"$OUT/valgrind.$LABEL.$count.log" &
  pid=$!
  if ! send "$count" >&2; then kill -KILL -- "-$pid" 2>/dev/null; wait "$pid" 2>/dev/null; exit 1; fi
  kill -TERM "$pid"
  for _ in $(seq 1200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { echo "$LABEL did not exit within 120 s of SIGTERM" >&2; kill -KILL -- "-$pid"; }
  wait "$pid" 2>/dev/null || true
  # Children (if any) write their own files; the gateway process's is $file.
  awk '/^(summary|totals):/ {print $2; exit}' "$file"
}

CMD=("$@")
base=$(run "$WARM" "${CMD[@]}" | tail -1)
with=$(run "$((WARM + N))" "${CMD[@]}" | tail -1)
[ -n "$base" ] && [ -n "$with" ] || { echo "no callgrind totals (see $OUT)" >&2; exit 1; }
echo "$LABEL n=$N warm=$WARM ir_base=$base ir_run=$with ir_per_request=$(( (with - base) / N ))"
