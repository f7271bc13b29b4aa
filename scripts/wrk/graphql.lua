-- wrk script: POST the GraphQL-over-HTTP JSON body in the file named by $BODY_FILE, and print one
-- machine-readable RESULT line when the run ends (scripts/load.sh parses it).
-- There is deliberately no response() callback: defining one makes wrk hand every body to Lua,
-- which would cost the load generator CPU that the subgraphs share (they run on the same core).
local path = assert(os.getenv("BODY_FILE"), "BODY_FILE is not set")
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/graphql-response+json, application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p95_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, e.status))
end
