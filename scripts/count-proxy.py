#!/usr/bin/env python3
"""Counting HTTP proxy: how many requests a gateway sends to each subgraph.

Listens on one loopback port per subgraph and forwards every request, unchanged, to that
subgraph; GET /counts on any of the ports (not forwarded) answers the counts so far as JSON
and GET /reset zeroes them. Point the gateway's supergraph (or its URL overrides) at the
proxy ports, send client requests, read /counts.

Usage: scripts/count-proxy.py NAME=LISTEN_PORT=UPSTREAM_URL ...
  e.g. scripts/count-proxy.py accounts=5001=http://127.0.0.1:4001 products=5002=http://127.0.0.1:4002
"""
import http.client
import http.server
import json
import sys
import threading
import urllib.parse

COUNTS = {}
LOCK = threading.Lock()


def handler(name, upstream):
    target = urllib.parse.urlsplit(upstream)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _answer(self, code, body, ctype="application/json"):
            self.send_response(code)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/counts":
                with LOCK:
                    return self._answer(200, json.dumps(COUNTS, sort_keys=True).encode())
            if self.path == "/reset":
                with LOCK:
                    for k in COUNTS:
                        COUNTS[k] = 0
                return self._answer(200, b"{}")
            self._forward()

        def do_POST(self):
            self._forward()

        def _forward(self):
            length = int(self.headers.get("content-length", 0))
            body = self.rfile.read(length) if length else None
            with LOCK:
                COUNTS[name] += 1
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("host", "connection", "content-length", "accept-encoding")}
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            conn.request(self.command, self.path, body, headers)
            r = conn.getresponse()
            data = r.read()
            conn.close()
            self.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in ("connection", "content-length", "transfer-encoding", "content-encoding"):
                    self.send_header(k, v)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    servers = []
    for spec in sys.argv[1:]:
        name, port, upstream = spec.split("=", 2)
        COUNTS[name] = 0
        server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), handler(name, upstream))
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
