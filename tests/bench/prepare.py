#!/usr/bin/env python3
"""Set up rollcall for the wrk figures and check, once each, that the
requests wrk will repeat give the answers the contract promises (so a figure
is never a measurement of error responses).

Creates a session (ttl 3600), registers /v1/names/bench to it, and checks
GET /v1/names/bench, one heartbeat and one PUT+DELETE cycle.
Prints shell assignments on stdout:
    ROLLCALL_SESSION=<id>
    ROLLCALL_TOKEN=<token>
Exits 1 with "request / expected / got" on stderr when an answer is wrong.

Usage: prepare.py --port PORT [--host 127.0.0.1]
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_sessions import simple_request  # noqa: E402

problems = []


def check(host, port, method, path, body, token, want_status, what):
    status, headers, raw = simple_request(host, port, method, path, body, token)
    if status != want_status:
        problems.append("%s %s%s: expected %d%s, got %d %s"
                        % (method, path, " body " + body if body else "",
                           want_status, " " + what if what else "", status,
                           raw[:300].decode("utf-8", "replace")))
        return None
    if raw:
        try:
            return json.loads(raw)
        except ValueError:
            problems.append("%s %s: expected JSON, got %r"
                            % (method, path, raw[:300]))
    return {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    h, p = a.host, a.port

    s = check(h, p, "POST", "/v1/sessions", '{"ttl":3600}', None, 201,
              '{"id","token","ttl":3600,...}')
    if s is None or "id" not in s or "token" not in s:
        problems.append("POST /v1/sessions: no id/token in answer: %r" % (s,))
        return
    sid, tok = s["id"], s["token"]
    value = {"host": "10.0.0.1", "port": 5432}
    r = check(h, p, "PUT", "/v1/names/bench", json.dumps({"value": value}),
              tok, 201, "")
    if r is not None and (r.get("key") != "bench" or r.get("session") != sid
                          or r.get("value") != value):
        problems.append("PUT /v1/names/bench: expected {key:bench, session:%s,"
                        " value:%s}, got %r" % (sid, value, r))
    r = check(h, p, "GET", "/v1/names/bench", None, None, 200, "")
    if r is not None and (r.get("session") != sid or r.get("value") != value):
        problems.append("GET /v1/names/bench: expected session %s value %s, "
                        "got %r" % (sid, value, r))
    r = check(h, p, "POST", "/v1/sessions/%s/heartbeat" % sid, None, tok, 200,
              "")
    if r is not None and (r.get("id") != sid or r.get("ttl") != 3600):
        problems.append("POST /v1/sessions/%s/heartbeat: expected id and "
                        "ttl 3600, got %r" % (sid, r))
    check(h, p, "PUT", "/v1/names/cycle-check", '{"value":{"n":1}}', tok, 201,
          "")
    check(h, p, "DELETE", "/v1/names/cycle-check", None, tok, 204, "")
    check(h, p, "GET", "/v1/names/cycle-check", None, None, 404,
          "name_not_found")
    print("ROLLCALL_SESSION=%s" % sid)
    print("ROLLCALL_TOKEN=%s" % tok)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # connection refused, bad JSON, ...
        problems.append("%s: %s" % (type(e).__name__, e))
    if problems:
        for line in problems:
            print("prepare: PROBLEM: %s" % line, file=sys.stderr)
        sys.exit(1)
