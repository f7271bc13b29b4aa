#!/usr/bin/env python3
"""Issue #19's list workloads against a running `switchyard dev --no-seed` (loopback only).

Seeds 21 members through the gateway's public API (a hub connected to the other 20, one public
post each, reactions on them), then drives two queries with wrk (../shared/bench/graphql.lua):

  trending:    trendingPosts(first: 20) { author { handle } reactions { total } }
  connections: the hub's 20 connections, each with a page of posts

Usage: scripts/bench_lists.py http://127.0.0.1:4000/graphql [seconds] [connections]
Prints one RESULT line per query (rps, latency percentiles).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:4000/graphql"
SECONDS = sys.argv[2] if len(sys.argv) > 2 else "10"
CONNECTIONS = sys.argv[3] if len(sys.argv) > 3 else "50"
LUA = os.path.join(os.path.dirname(__file__), "../../shared/bench/graphql.lua")
if not os.path.exists(LUA):
    LUA = "/work/shared/bench/graphql.lua"
N = 20


def gql(query, variables=None, token=None):
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(URL, data=body, method="POST")
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)
    if answer.get("errors"):
        raise RuntimeError(f"{query}: {answer['errors']}")
    return answer["data"]


def sign_up(i, run):
    data = gql(
        "mutation($e: String!, $p: String!, $h: String!, $d: String!) {"
        " signUp(email: $e, password: $p, handle: $h, displayName: $d)"
        " { accessToken account { id } } }",
        {"e": f"bench{i}-{run}@example.com", "p": f"bench-{run}-password",
         "h": f"b{i}x{run[:6]}", "d": f"Bench {i}"},
    )["signUp"]
    return data["account"]["id"], data["accessToken"]


def wait_for_member(member_id):
    deadline = time.time() + 15
    while time.time() < deadline:
        if gql("query($id: ID!) { member(id: $id) { id } }", {"id": member_id})["member"]:
            return
        time.sleep(0.02)
    raise RuntimeError(f"member {member_id} never reached profile")


def seed():
    run = uuid.uuid4().hex
    members = [sign_up(i, run) for i in range(N + 1)]
    for member_id, _ in members:
        wait_for_member(member_id)
    hub_id, hub = members[0]
    posts = []
    for i, (member_id, token) in enumerate(members[1:]):
        gql("mutation($to: ID!) { requestConnection(to: $to) { __typename } }", {"to": member_id}, hub)
        gql("mutation($f: ID!) { acceptConnection(from: $f) { id } }", {"f": hub_id}, token)
        for n in range(3):
            post = gql(
                "mutation($b: String!) { createPost(body: $b) { id } }",
                {"b": f"bench post {n} by member {i}"}, token,
            )["createPost"]["id"]
            posts.append(post)
    # Reactions from every member, so analytics has 20+ posts to rank.
    for post in posts[::3]:
        for _, token in members[:4]:
            gql("mutation($p: ID!) { react(postId: $p, kind: LIKE) { id } }", {"p": post}, token)
    deadline = time.time() + 30
    while time.time() < deadline:
        trending = gql("{ trendingPosts(first: 20) { id } }")["trendingPosts"]
        if len(trending) == N:
            break
        time.sleep(0.2)
    else:
        raise RuntimeError("analytics did not rank 20 posts")
    return hub_id, hub


def bench(name, query, variables, token):
    # The same body must answer the same way every time (odd_len counts answers that differ).
    answer = gql(query, variables, token)
    body = json.dumps({"query": query, "variables": variables})
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(body)
    env = dict(os.environ, BODY_FILE=f.name)
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "-s", LUA]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(command + [URL], env=env, capture_output=True, text=True, check=True)
    result = [line for line in out.stdout.splitlines() if line.startswith("RESULT")]
    print(f"{name}: {result[0] if result else out.stdout} answer_bytes={len(json.dumps(answer))}")


def main():
    hub_id, hub = seed()
    bench(
        "trending",
        "{ trendingPosts(first: 20) { id author { handle } reactions { total } } }",
        {}, None,
    )
    bench(
        "connections",
        "query($id: ID!) { member(id: $id) { connections(first: 20) { edges { node { handle"
        " posts(first: 5) { totalCount edges { node { body reactions { total } } } } } } } } }",
        {"id": hub_id}, hub,
    )


if __name__ == "__main__":
    main()
