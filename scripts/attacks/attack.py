#!/usr/bin/env python3
"""The attacks of issue #13 against a running `switchyard dev`, on loopback only, each bounded in
time and size; prints one figure line per attack, so a regression shows.

Starts `switchyard dev` itself (a fresh data directory, free ports) unless --gateway is given,
reads the gateway's and the services' URLs from its banner, runs the attacks, and stops it.
Memory figures are the dev process's resident set (/proc/PID/status), so they need the process
this script started (or --pid).

Usage:
  scripts/attacks/attack.py [--bin target/debug/switchyard] [attack ...]
  scripts/attacks/attack.py --gateway http://127.0.0.1:4000/graphql --auth URL --profile URL --pid PID
Attacks (default: all): fragment-bomb plan-cache half-open cross-user brute-force subgraph-guards small
Env: HALF_OPEN=10000 (connections held), PLAN_QUERIES=150, TIME_LIMIT=240 (seconds, whole run)
"""

import argparse
import http.client
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

TIME_LIMIT = float(os.environ.get("TIME_LIMIT", "240"))
STARTED = time.monotonic()


def out(name, **figures):
    parts = " ".join(f"{k}={v}" for k, v in figures.items())
    print(f"{name:<28} {parts}", flush=True)


def remaining():
    return TIME_LIMIT - (time.monotonic() - STARTED)


def loopback(url):
    host = urllib.parse.urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"refusing non-loopback target {url}")
    return url


def rss_mib(pid, field="VmRSS"):
    if not pid:
        return "n/a"
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return "n/a"


def post(url, body, headers=None, timeout=60, method="POST"):
    """POSTs `body` (bytes, or JSON-encoded); returns (status, body bytes, seconds)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    data = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
    hdrs = {"content-type": "application/json"}
    hdrs.update(headers or {})
    started = time.monotonic()
    path = parts.path + (("?" + parts.query) if parts.query else "")
    try:
        conn.request(method, path, body=data if method == "POST" else None, headers=hdrs)
        response = conn.getresponse()
        payload = response.read()
        return response.status, payload, time.monotonic() - started
    except (OSError, http.client.HTTPException) as e:
        return f"error({type(e).__name__})", b"", time.monotonic() - started
    finally:
        conn.close()


def codes(payload):
    try:
        body = json.loads(payload)
    except ValueError:
        return ["<not json>"]
    errors = body.get("errors") if isinstance(body, dict) else None
    return [((e.get("extensions") or {}).get("code") or "-") for e in errors or []]


# --- 1. fragments counted as written, not as executed ------------------------------------------


def fragment_bomb(t):
    text = "query { ...F0 }\n"
    for level in range(5):
        spreads = " ".join(f'a{i}: member(id: "x") {{ ...F{level + 1} }}' for i in range(10))
        on = "Query" if level == 0 else "Member"
        if level > 0:
            spreads = " ".join(f"c{i}: mutualConnections(with: \"x\") {{ ...F{level + 1} }}" for i in range(10))
        text += f"fragment F{level} on {on} {{ {spreads} }}\n"
    text += "fragment F5 on Member { id handle }\n"
    before = rss_mib(t.pid)
    status, payload, secs = post(t.gateway, {"query": text})
    out("fragment-bomb", query_bytes=len(text), status=status, ms=int(secs * 1000),
        response_bytes=len(payload), codes=",".join(sorted(set(codes(payload)))) or "-",
        rss_before=before, rss_after=rss_mib(t.pid))
    intro = "query { ...T0 }\nfragment T0 on Query { __schema { types { ...T1 } } }\n"
    for level in range(1, 5):
        spreads = " ".join(f"f{i}: fields {{ type {{ ...T{level + 1} }} }}" for i in range(10))
        intro += f"fragment T{level} on __Type {{ name {spreads} }}\n"
    intro += "fragment T5 on __Type { name kind }\n"
    status, payload, secs = post(t.gateway, {"query": intro})
    out("introspection-bomb", query_bytes=len(intro), status=status, ms=int(secs * 1000),
        response_bytes=len(payload), codes=",".join(sorted(set(codes(payload)))) or "-",
        rss_after=rss_mib(t.pid))


# --- 2. the plan cache ---------------------------------------------------------------------------


def plan_cache(t):
    n = int(os.environ.get("PLAN_QUERIES", "150"))
    pad = "#" + "x" * (1_900_000 - 100) + "\n"
    before = rss_mib(t.pid)
    statuses = {}
    started = time.monotonic()
    for i in range(n):
        if remaining() < 30:
            break
        status, _, _ = post(t.gateway, {"query": f"{pad}{{ a{i}: __typename }}"})
        statuses[status] = statuses.get(status, 0) + 1
    out("plan-cache-flood", queries=sum(statuses.values()), query_mib=1.9, statuses=statuses,
        secs=round(time.monotonic() - started, 1), rss_before=before, rss_after=rss_mib(t.pid),
        peak=rss_mib(t.pid, "VmHWM"))


# --- 3. half-open connections --------------------------------------------------------------------


def half_open(t):
    want = int(os.environ.get("HALF_OPEN", "10000"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    want = min(want, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 64)
    parts = urllib.parse.urlsplit(t.gateway)
    held = []
    for _ in range(want):
        if remaining() < 40:
            break
        try:
            s = socket.create_connection((parts.hostname, parts.port), timeout=2)
            s.sendall(b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Ty")
            held.append(s)
        except OSError:
            break
    status, payload, secs = post(t.gateway, {"query": "{ __typename }"}, timeout=10)
    out("half-open:fresh-client", held=len(held), status=status, ms=int(secs * 1000),
        rss=rss_mib(t.pid))
    # After the header-read timeout the server should have closed them.
    time.sleep(min(12, max(0, remaining() - 30)))
    closed = 0
    for s in held:
        try:
            s.settimeout(0.001)
            if s.recv(1) == b"":
                closed += 1
        except socket.timeout:
            pass
        except OSError:
            closed += 1
    for s in held:
        s.close()
    out("half-open:after-12s", held=len(held), closed_by_server=closed)


# --- 5. log-in brute force -----------------------------------------------------------------------

LOG_IN = "mutation($e: String!, $p: String!) { logIn(email: $e, password: $p) { accessToken } }"


def brute_force(t):
    email, password = t.member
    results = []
    for i in range(40):
        _, payload, _ = post(t.gateway, {"query": LOG_IN, "variables": {"e": email, "p": f"guess{i}"}})
        results.extend(codes(payload))
    _, payload, _ = post(t.gateway, {"query": LOG_IN, "variables": {"e": email, "p": password}})
    right = codes(payload) or ["accepted"]
    out("brute-force:40-then-right", checked=results.count("INVALID_CREDENTIALS"),
        rate_limited=results.count("RATE_LIMITED"), right_password=right[0])

    # One client guessing as fast as it can, one account per guess (per-address throttle).
    started = time.monotonic()
    tally = {}
    i = 0
    while time.monotonic() - started < 5:
        _, payload, _ = post(t.gateway, {"query": LOG_IN, "variables": {"e": f"victim{i}@example.com", "p": "guess"}})
        c = (codes(payload) or ["accepted"])[0]
        tally[c] = tally.get(c, 0) + 1
        i += 1
    secs = time.monotonic() - started
    out("brute-force:one-client-5s", attempts=i, checked_per_s=round(tally.get("INVALID_CREDENTIALS", 0) / secs, 1),
        tally=tally)

    # 64 concurrent log-ins from 64 addresses (as the gateway would forward them).
    before = rss_mib(t.pid, "VmHWM")
    threads = []
    tally = {}
    lock = threading.Lock()

    def one(n):
        _, payload, _ = post(t.auth, {"query": LOG_IN, "variables": {"e": f"flood{n}@example.com", "p": "guess"}},
                             headers={"x-forwarded-for": f"10.9.{n // 250}.{n % 250 + 1}"})
        with lock:
            c = (codes(payload) or ["accepted"])[0]
            tally[c] = tally.get(c, 0) + 1

    for n in range(64):
        th = threading.Thread(target=one, args=(n,))
        th.start()
        threads.append(th)
    for th in threads:
        th.join(60)
    out("brute-force:64-concurrent", tally=tally, peak_rss_before=before,
        peak_rss_after=rss_mib(t.pid, "VmHWM"))

    # Straight at the auth service: one JSON batch, and one operation of aliases, of 51 guesses.
    batch = [{"query": LOG_IN, "variables": {"e": "batch@example.com", "p": f"g{i}"}} for i in range(51)]
    status, payload, _ = post(t.auth, batch, headers={"x-forwarded-for": "10.8.0.1"})
    try:
        tried = len(json.loads(payload)) if payload.startswith(b"[") else 0
    except ValueError:
        tried = 0
    out("brute-force:json-batch-51", status=status, operations_run=tried,
        codes=",".join(sorted(set(codes(payload)))) if not tried else "-")
    fields = " ".join(f'g{i}: logIn(email: "alias@example.com", password: "g{i}") {{ accessToken }}' for i in range(51))
    status, payload, _ = post(t.auth, {"query": f"mutation {{ {fields} }}"}, headers={"x-forwarded-for": "10.8.0.2"})
    c = codes(payload)
    out("brute-force:aliases-51", status=status, checked=c.count("INVALID_CREDENTIALS"),
        rate_limited=c.count("RATE_LIMITED"))


# --- 5b. one member's answer handed to another ---------------------------------------------------

ME = "{ me { email handle member { handle displayName } } }"


def metric(url, name):
    """The value of one series in the metrics text at `url` (0 when absent)."""
    if not url:
        return "n/a"
    status, payload, _ = post(url, b"", method="GET")
    for line in payload.decode(errors="replace").splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return 0


def cross_user(t):
    """Identical queries from different members, and from nobody, at the same moment: subgraph
    fetches collapse and collapsed requests reuse each other's results, which must never hand
    one member's answer to another (each answer is checked against its own caller)."""
    tokens = {}
    for handle in t.members:
        _, payload, _ = post(t.gateway, {"query": LOG_IN, "variables": {"e": f"{handle}@example.com", "p": t.password}})
        try:
            tokens[handle] = json.loads(payload)["data"]["logIn"]["accessToken"]
        except (ValueError, KeyError, TypeError):
            pass
    callers = list(tokens) + [None]
    reused = 'switchyard_gateway_reused_results_total{kind="response"}'
    before = metric(t.metrics, reused)
    tally = {"own": 0, "other_member": 0, "anonymous_ok": 0, "error": 0}
    lock = threading.Lock()
    rounds, width = 25, 4 * len(callers)

    def one(caller, barrier):
        headers = {"authorization": f"Bearer {tokens[caller]}"} if caller else {}
        barrier.wait(30)
        _, payload, _ = post(t.gateway, {"query": ME}, headers=headers)
        try:
            me = (json.loads(payload).get("data") or {}).get("me")
        except ValueError:
            me = "unreadable"
        if caller is None:
            verdict = "anonymous_ok" if me is None else "other_member"
        elif isinstance(me, dict):
            verdict = "own" if me.get("handle") == caller and me["member"]["handle"] == caller else "other_member"
        else:
            verdict = "error"
        with lock:
            tally[verdict] += 1

    for _ in range(rounds):
        if remaining() < 20:
            break
        barrier = threading.Barrier(width)
        threads = [threading.Thread(target=one, args=(callers[i % len(callers)], barrier)) for i in range(width)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
    after = metric(t.metrics, reused)
    out("cross-user:concurrent-me", members=len(tokens), requests=sum(tally.values()), tally=tally,
        responses_reused=after - before if isinstance(before, int) else "n/a")


# --- 6. subgraphs called directly ----------------------------------------------------------------


def big_body(url, mib, budget=20.0):
    """Streams a `mib` MiB JSON body for at most `budget` seconds, stopping early when the server
    answers; returns (status line, seconds, bytes sent)."""
    import select
    parts = urllib.parse.urlsplit(url)
    s = socket.create_connection((parts.hostname, parts.port), timeout=30)
    size = mib * 1024 * 1024
    head = f"POST {parts.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    started = time.monotonic()
    s.sendall(head.encode())
    prefix = b'{"query": "{ __typename }", "variables": {"pad": "'
    sent = 0
    chunk = b"x" * (1 << 20)
    answer = b""
    try:
        s.sendall(prefix)
        sent = len(prefix)
        while sent < size - 3 and time.monotonic() - started < budget:
            if select.select([s], [], [], 0)[0]:
                answer = s.recv(64)
                break
            n = min(len(chunk), size - 3 - sent)
            s.sendall(chunk[:n])
            sent += n
        else:
            if sent >= size - 3:
                s.sendall(b'"}}')
    except OSError:
        pass
    if not answer:
        s.settimeout(5 if sent < size - 3 else 30)
        try:
            answer = s.recv(64)
        except OSError as e:
            answer = f"no answer ({type(e).__name__})".encode()
    s.close()
    status_line = answer.split(b"\r\n")[0].decode(errors="replace") or "closed"
    return status_line, round(time.monotonic() - started, 1), sent


def subgraph_guards(t):
    for name, url in (("auth", t.auth), ("profile", t.profile)):
        before = rss_mib(t.pid, "VmHWM")
        status, secs, sent = big_body(url, 256)
        out(f"{name}:256MiB-body", response=repr(status), secs=secs, sent_mib=sent >> 20,
            peak_rss_before=before, peak_rss_after=rss_mib(t.pid, "VmHWM"))
        status, payload, _ = post(url, [{"query": "{ __typename }"}, {"query": "{ __typename }"}])
        out(f"{name}:json-batch", status=status, body=payload[:80])
        aliases = " ".join(f"a{i}: __typename" for i in range(3000))
        status, payload, _ = post(url, {"query": f"{{ {aliases} }}"})
        out(f"{name}:3000-aliases", status=status, codes=",".join(sorted(set(codes(payload)))) or "accepted")
        deep = "{ __schema { types { " + "ofType { " * 90 + "name" + " }" * 90 + " } } }"
        status, payload, secs = post(url, {"query": deep})
        out(f"{name}:deep-introspection", status=status, ms=int(secs * 1000),
            codes=",".join(sorted(set(codes(payload)))) or "accepted")
    q = urllib.parse.quote('mutation { logOut(refreshToken: "x") }')
    status, payload, _ = post(f"{t.auth}?query={q}", b"", method="GET")
    out("auth:mutation-over-get", status=status, body=payload[:80])


# --- 7. smaller ones -----------------------------------------------------------------------------


def small(t):
    items = " ".join(f'm{i}: member(id: "x") {{ nope{i} }}' for i in range(20000))
    status, payload, _ = post(t.gateway, {"query": f"{{ {items} }}"})
    out("errors:20000-bad-items", status=status, response_bytes=len(payload), errors=len(codes(payload)))
    status, payload, _ = post(t.gateway, {"query": "{ __typename }", "extensions": "x"})
    out("extensions-not-object", status=status, codes=",".join(codes(payload)))
    status, payload, _ = post(t.gateway, [{"query": "{ __typename }"}])
    out("gateway:json-batch", status=status, message=json.loads(payload)["errors"][0]["message"][:60]
        if payload.startswith(b"{") else payload[:60])
    if t.data_dir:
        modes = {}
        for root, dirs, files in os.walk(t.data_dir):
            for f in files:
                if f.endswith((".db", ".db-wal", ".db-shm")) or "secrets" in root or f.endswith(".json"):
                    mode = oct(os.stat(os.path.join(root, f)).st_mode & 0o777)
                    modes[mode] = modes.get(mode, 0) + 1
        out("file-modes(db,wal,shm,keys)", modes=modes)


ATTACKS = {
    "fragment-bomb": fragment_bomb,
    "plan-cache": plan_cache,
    "half-open": half_open,
    "cross-user": cross_user,
    "brute-force": brute_force,
    "subgraph-guards": subgraph_guards,
    "small": small,
}


class Target:
    pass


def start_dev(binary, data_dir):
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    proc = subprocess.Popen(
        [binary, "dev", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
        stdout=subprocess.PIPE, stderr=open(os.path.join(os.path.dirname(data_dir), "dev.log"), "w"),
        text=True, env=env, start_new_session=True,
    )
    urls = {}
    deadline = time.monotonic() + 180
    for line in proc.stdout:
        m = re.search(r"GraphiQL:\s+(\S+)", line)
        if m:
            urls["gateway"] = m.group(1)
        m = re.search(r"metrics:\s+(http\S+?)\)", line)
        if m:
            urls["metrics"] = m.group(1)
        m = re.match(r"\s+(auth|profile|content|chat|analytics)\s+(http\S+)", line)
        if m:
            urls[m.group(1)] = m.group(2)
        if "Ctrl-C" in line or time.monotonic() > deadline:
            break
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, urls


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("attacks", nargs="*", default=list(ATTACKS))
    parser.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "debug", "switchyard"))
    parser.add_argument("--gateway")
    parser.add_argument("--auth")
    parser.add_argument("--profile")
    parser.add_argument("--pid", type=int)
    parser.add_argument("--metrics", help="the gateway's /metrics URL (for the reuse figure)")
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, lambda *_: sys.exit("time limit reached"))
    signal.alarm(int(TIME_LIMIT) + 30)

    t = Target()
    proc = None
    work = None
    if args.gateway:
        t.gateway, t.auth, t.profile, t.pid, t.data_dir = args.gateway, args.auth, args.profile, args.pid, None
        t.member = ("amit@example.com", os.environ.get("PASSWORD", ""))
        t.members, t.password, t.metrics = ["amit"], t.member[1], args.metrics
    else:
        work = tempfile.mkdtemp(prefix="switchyard-attacks.")
        data_dir = os.path.join(work, "data")
        proc, urls = start_dev(args.bin, data_dir)
        if "gateway" not in urls:
            proc.kill()
            sys.exit(f"switchyard dev did not come up; see {work}/dev.log")
        t.gateway, t.auth, t.profile, t.pid, t.data_dir = urls["gateway"], urls["auth"], urls["profile"], proc.pid, data_dir
        with open(os.path.join(data_dir, "seed.json")) as f:
            seed = json.load(f)
        password = seed.get("password") or next(iter(seed.values()))
        t.member = ("amit@example.com", password if isinstance(password, str) else "")
        t.members = list(seed.get("members") or ["amit"])
        t.password, t.metrics = t.member[1], urls.get("metrics")
        out("started", binary=args.bin, pid=proc.pid, rss=rss_mib(proc.pid))
    for url in (t.gateway, t.auth, t.profile):
        loopback(url)
    try:
        for name in args.attacks:
            if remaining() < 20:
                out(name, skipped="time limit")
                continue
            ATTACKS[name](t)
    finally:
        if proc:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            out("stopped", work_dir=work)


if __name__ == "__main__":
    main()
