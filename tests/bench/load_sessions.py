#!/usr/bin/env python3
"""Bulk loader for the rollcall memory benchmark.

Creates N sessions (POST /v1/sessions {"ttl": TTL}) and registers one name per
session (PUT /v1/names/<prefix><i> with that session's token, value {"i": i}).
Requests are pipelined over a few HTTP/1.1 keep-alive connections (a window of
DEPTH requests in flight per connection; the client is pipeline.py) so that
2*N requests take seconds, not minutes. Then it checks that the registry
really holds what was loaded (a spot-check of names and sessions, and
/v1/stats when it answers) and exits non-zero, loudly, if anything is off.

Python 3 standard library only.

Usage: load_sessions.py --port PORT [--host 127.0.0.1] [-n 100000]
                        [--ttl 3600] [--prefix mem-] [--conns 4] [--depth 256]
"""

import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pipeline import (check_stats, create_sessions, fail,  # noqa: E402
                      loader_args, request_bytes, run_main, run_pipelined,
                      simple_request)


def main():
    ap = loader_args("mem-")
    ap.add_argument("-n", type=int, default=100000)
    args = ap.parse_args()
    host, port, n = args.host, args.port, args.n

    # Phase 1: sessions.
    ids, tokens = create_sessions(host, port, n, args.ttl, args.conns,
                                  args.depth, args.timeout)

    # Phase 2: one name per session.
    ok = [False] * n
    bad = []

    def name_jobs():
        for i in range(n):
            yield (request_bytes("PUT", "/v1/names/%s%d" % (args.prefix, i),
                                 host, json.dumps({"value": {"i": i}}),
                                 tokens[i]), i)

    def on_name(i, status, headers, body):
        if status != 201:
            if len(bad) < 5:
                bad.append("PUT /v1/names/%s%d: %d %s"
                           % (args.prefix, i, status, body[:200]))
            return
        ok[i] = True

    t2 = time.monotonic()
    run_pipelined(host, port, name_jobs(), args.conns, args.depth, on_name,
                  args.timeout)
    t3 = time.monotonic()
    missing = ok.count(False)
    if missing:
        fail("%d of %d names not registered (expected 201); first errors: %s"
             % (missing, n, bad))
    print("load_sessions: %d names registered in %.2f s (%.0f req/s)"
          % (n, t3 - t2, n / max(t3 - t2, 1e-9)), file=sys.stderr)

    # Phase 3: verify. Spot-check names (owner and value) and sessions.
    rng = random.Random(42)
    sample = sorted(set([0, n // 2, n - 1] + [rng.randrange(n) for _ in range(20)]))
    for i in sample:
        key = "%s%d" % (args.prefix, i)
        status, _, body = simple_request(host, port, "GET", "/v1/names/" + key)
        if status != 200:
            fail("GET /v1/names/%s: expected 200, got %d %s"
                 % (key, status, body[:200]))
        obj = json.loads(body)
        if obj.get("key") != key or obj.get("session") != ids[i] \
                or obj.get("value") != {"i": i}:
            fail("GET /v1/names/%s: expected key=%s session=%s value=%s, got %s"
                 % (key, key, ids[i], {"i": i}, body[:300]))
    for i in sample[:5]:
        status, _, body = simple_request(host, port, "GET",
                                         "/v1/sessions/" + ids[i])
        if status != 200:
            fail("GET /v1/sessions/%s: expected 200, got %d %s"
                 % (ids[i], status, body[:200]))
        obj = json.loads(body)
        held = obj.get("held", {}).get("names")
        if obj.get("names") != 1 or held != ["%s%d" % (args.prefix, i)]:
            fail("GET /v1/sessions/%s: expected names=1 and held.names=[%s], "
                 "got %s" % (ids[i], "%s%d" % (args.prefix, i), body[:300]))
    status, _, body = simple_request(host, port, "GET", "/v1/sessions?limit=1")
    if status != 200:
        fail("GET /v1/sessions?limit=1: expected 200, got %d %s"
             % (status, body[:200]))
    obj = json.loads(body)
    if len(obj.get("sessions", [])) != 1 or obj.get("next") is None:
        fail("GET /v1/sessions?limit=1: expected 1 session and a non-null "
             "next, got %s" % body[:300])
    stats_note = check_stats(host, port, (("sessions", n), ("names", n)))
    print("load_sessions: verified %d names and %d sessions by GET%s"
          % (len(sample), min(5, len(sample)), stats_note), file=sys.stderr)
    print("OK %d" % n)


if __name__ == "__main__":
    run_main(main)
