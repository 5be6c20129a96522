#!/usr/bin/env python3
"""Bulk loader for the rollcall group memory benchmark.

Loads GROUPS groups of MEMBERS members each, made of SESSIONS sessions: the
sessions are split into blocks of MEMBERS, and every session of a block joins
the same GROUPS / (SESSIONS / MEMBERS) groups, so every group has exactly
MEMBERS members and every session is in GROUPS * MEMBERS / SESSIONS groups
(default: 1,000 sessions, each in 100 groups; 1,000 groups of 100 members;
100,000 memberships). Each membership's value is {"s": <session index>}.

Requests are pipelined over a few keep-alive connections (pipeline.py, as
for load_sessions.py), and every answer's status is checked (201 for each
session and each join). Then it checks that the registry really holds what
was loaded, by GET:
  - GET /v1/groups?prefix=PREFIX, every page: exactly the GROUPS groups
    loaded, each with "members": MEMBERS;
  - GET /v1/groups/<g> for a sample of groups: exactly MEMBERS members, the
    sessions of its block, each with its value;
  - GET /v1/sessions/<id> for a few sessions: "groups" and held.groups;
  - /v1/stats, when it answers, is not below what was loaded.
and exits non-zero, loudly, if anything is off.

Python 3 standard library only.

Usage: load_groups.py --port PORT [--host 127.0.0.1] [--sessions 1000]
                      [--groups 1000] [--members 100] [--ttl 3600]
                      [--prefix memg-] [--conns 4] [--depth 256]
"""

import json
import os
import random
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pipeline import (check_stats, create_sessions, fail,  # noqa: E402
                      loader_args, request_bytes, run_main, run_pipelined,
                      simple_request)


def get_json(host, port, path, want=200):
    status, _, body = simple_request(host, port, "GET", path)
    if status != want:
        fail("GET %s: expected %d, got %d %s" % (path, want, status, body[:200]))
    try:
        return json.loads(body)
    except ValueError:
        fail("GET %s: %d but not JSON: %r" % (path, status, body[:200]))


def main():
    ap = loader_args("memg-")
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--members", type=int, default=100)
    args = ap.parse_args()
    host, port = args.host, args.port
    ns, ng, m = args.sessions, args.groups, args.members
    if m < 1 or ns < m or ns % m or ng % (ns // m):
        fail("--sessions must be a multiple of --members, and --groups a "
             "multiple of sessions/members (got %d, %d, %d)" % (ns, ng, m))
    blocks = ns // m
    gpb = ng // blocks          # groups per block = groups per session

    def block_groups(b):
        return range(b * gpb, (b + 1) * gpb)

    def gname(g):
        return "%s%d" % (args.prefix, g)

    # Phase 1: sessions.
    ids, tokens = create_sessions(host, port, ns, args.ttl, args.conns,
                                  args.depth, args.timeout)

    # Phase 2: every session joins the groups of its block.
    njoins = ns * gpb
    joined = [0]
    bad = []

    def join_jobs():
        for i in range(ns):
            body = json.dumps({"value": {"s": i}}, separators=(",", ":"))
            for g in block_groups(i // m):
                yield (request_bytes("PUT", "/v1/groups/" + gname(g), host,
                                     body, tokens[i]), (i, g))

    def on_join(tag, status, headers, body):
        if status != 201:
            if len(bad) < 5:
                bad.append("PUT /v1/groups/%s (session #%d): %d %s"
                           % (gname(tag[1]), tag[0], status, body[:200]))
            return
        joined[0] += 1

    t2 = time.monotonic()
    run_pipelined(host, port, join_jobs(), args.conns, args.depth, on_join,
                  args.timeout)
    t3 = time.monotonic()
    if joined[0] != njoins:
        fail("%d of %d joins not made (expected 201); first errors: %s"
             % (njoins - joined[0], njoins, bad))
    print("load_groups: %d joins (%d groups x %d members) in %.2f s "
          "(%.0f req/s)" % (njoins, ng, m, t3 - t2,
                            njoins / max(t3 - t2, 1e-9)), file=sys.stderr)

    # Phase 3: verify. The listing: every group, each with m members.
    seen = {}
    after = None
    pages = 0
    while True:
        q = {"prefix": args.prefix, "limit": "1000"}
        if after is not None:
            q["after"] = after
        path = "/v1/groups?" + urllib.parse.urlencode(q)
        obj = get_json(host, port, path)
        page = obj.get("groups")
        if not isinstance(page, list):
            fail("GET %s: no groups list: %r" % (path, obj))
        for row in page:
            seen[row.get("group")] = row.get("members")
        pages += 1
        after = obj.get("next")
        if after is None:
            break
        if not page or pages > ng + 1:
            fail("GET %s: next %r but the listing does not end" % (path, after))
    want = set(gname(g) for g in range(ng))
    if set(seen) != want:
        fail("GET /v1/groups?prefix=%s: expected the %d groups loaded, got %d "
             "(%d missing, %d unexpected)"
             % (args.prefix, ng, len(seen), len(want - set(seen)),
                len(set(seen) - want)))
    wrong = [(k, v) for k, v in seen.items() if v != m]
    if wrong:
        fail("GET /v1/groups?prefix=%s: %d groups do not have %d members, "
             "e.g. %r" % (args.prefix, len(wrong), m, wrong[:3]))

    # Full members of a sample of groups.
    rng = random.Random(42)
    gsample = sorted(set([0, ng // 2, ng - 1] +
                         [rng.randrange(ng) for _ in range(10)]))
    for g in gsample:
        b = g // gpb
        path = "/v1/groups/" + gname(g)
        obj = get_json(host, port, path)
        members = obj.get("members")
        if obj.get("group") != gname(g) or not isinstance(members, list):
            fail("GET %s: expected group %s with members, got %s"
                 % (path, gname(g), json.dumps(obj)[:300]))
        if len(members) != m:
            fail("GET %s: expected exactly %d members, got %d"
                 % (path, m, len(members)))
        expect = {ids[i]: {"s": i} for i in range(b * m, (b + 1) * m)}
        got = {x.get("session"): x.get("value") for x in members}
        if got != expect:
            fail("GET %s: members are not the %d sessions of block %d with "
                 "their values (%d of them match)"
                 % (path, m, b, sum(1 for k, v in got.items()
                                   if expect.get(k) == v)))

    # A few sessions: how many groups they hold, and which.
    ssample = sorted(set([0, ns - 1] + [rng.randrange(ns) for _ in range(3)]))
    for i in ssample:
        path = "/v1/sessions/" + ids[i]
        obj = get_json(host, port, path)
        held = obj.get("held", {}).get("groups")
        expect = sorted(gname(g) for g in block_groups(i // m))
        if obj.get("groups") != gpb or held is None or sorted(held) != expect:
            fail("GET %s: expected groups=%d and held.groups = the %d groups "
                 "of block %d, got groups=%r and %s held"
                 % (path, gpb, gpb, i // m, obj.get("groups"),
                    len(held) if isinstance(held, list) else held))

    stats_note = check_stats(host, port, (("sessions", ns), ("groups", ng)))
    print("load_groups: verified by GET: the listing (%d groups, each %d "
          "members, %d pages), the members of %d groups, the groups of %d "
          "sessions%s" % (ng, m, pages, len(gsample), len(ssample),
                          stats_note), file=sys.stderr)
    print("OK %d %d %d" % (ns, ng, m))


if __name__ == "__main__":
    run_main(main)
