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

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pipeline import PROG, port_args, simple_request  # noqa: E402

problems = []


def json_or_problem(what, raw):
    try:
        return json.loads(raw)
    except ValueError:
        problems.append("%s: expected JSON, got %r" % (what, raw[:300]))
        return None


def check(host, port, method, path, body, token, want_status, what):
    status, headers, raw = simple_request(host, port, method, path, body, token)
    if status != want_status:
        problems.append("%s %s%s: expected %d%s, got %d %s"
                        % (method, path, " body " + body if body else "",
                           want_status, " " + what if what else "", status,
                           raw[:300].decode("utf-8", "replace")))
        return None
    if raw:
        r = json_or_problem("%s %s" % (method, path), raw)
        if r is not None:
            return r
    return {}


def new_session(host, port):
    """POST /v1/sessions {"ttl":3600}, checked: (id, token), or None (a
    problem)."""
    s = check(host, port, "POST", "/v1/sessions", '{"ttl":3600}', None, 201,
              '{"id","token","ttl":3600,...}')
    if s is None or "id" not in s or "token" not in s:
        problems.append("POST /v1/sessions: no id/token in answer: %r" % (s,))
        return None
    return s["id"], s["token"]


def run(main):
    """Runs main(); the session it returns, (id, token), goes to stdout as
    shell assignments; then exits 1 with the problems on stderr, if any."""
    try:
        session = main()
        if session:
            print("ROLLCALL_SESSION=%s" % session[0])
            print("ROLLCALL_TOKEN=%s" % session[1])
    except Exception as e:  # connection refused, bad JSON, ...
        problems.append("%s: %s" % (type(e).__name__, e))
    if problems:
        for line in problems:
            print("%s: PROBLEM: %s" % (PROG, line), file=sys.stderr)
        sys.exit(1)


def main():
    a = port_args().parse_args()
    h, p = a.host, a.port

    session = new_session(h, p)
    if session is None:
        return None
    sid, tok = session
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
    return sid, tok


if __name__ == "__main__":
    run(main)
