#!/usr/bin/env python3
"""Set up rollcall for the group wrk figures and check, once each, that the
requests wrk will repeat give the answers the contract promises (so a figure
is never a measurement of error responses).

Creates MEMBERS sessions (ttl 3600) and joins each of them, in order, to
GROUP (default bench-g100) with a small value {"port": 9000 + i}; checks
every join (201 with group, session, value), then
  - GET /v1/groups/GROUP: 200 with exactly those MEMBERS members, in join
    order, with their values;
  - GET /v1/groups/GROUP?pick=round_robin, MEMBERS + 1 times: each answer
    200 with a member of the group, the first MEMBERS answers every member
    once, and the next one the same as the first (the rotation wraps);
  - one more session for the join+leave figure: PUT /v1/groups/cycle-check
    201, PUT again 200, DELETE 204, DELETE again 404 not_held, and
    GET /v1/groups/cycle-check 200 with no members.
Prints shell assignments on stdout (the session for the join+leave figure):
    ROLLCALL_SESSION=<id>
    ROLLCALL_TOKEN=<token>
Exits 1 with "request / expected / got" on stderr when an answer is wrong.

Usage: prepare_groups.py --port PORT [--host 127.0.0.1] [--group bench-g100]
                         [--members 100]
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pipeline import port_args, request_bytes, run_pipelined  # noqa: E402
from prepare import (check, json_or_problem, new_session,  # noqa: E402
                     problems, run)


def pipelined(host, port, reqs):
    """reqs: list of (method, path, body, token). One connection, all in
    flight at once, answers in order: returns [(status, body bytes)]."""
    out = [None] * len(reqs)

    def on_response(i, status, headers, body):
        out[i] = (status, body)

    run_pipelined(host, port,
                  ((request_bytes(m, p, host, b, t), i)
                   for i, (m, p, b, t) in enumerate(reqs)),
                  1, len(reqs), on_response, 30)
    return out


def main():
    ap = port_args()
    ap.add_argument("--group", default="bench-g100")
    ap.add_argument("--members", type=int, default=100)
    a = ap.parse_args()
    h, p, group, n = a.host, a.port, a.group, a.members
    gpath = "/v1/groups/" + group

    # Sessions.
    ids, tokens = [], []
    for i, (status, raw) in enumerate(pipelined(
            h, p, [("POST", "/v1/sessions", '{"ttl":3600}', None)] * n)):
        s = json_or_problem("POST /v1/sessions", raw) if status == 201 else None
        if status != 201 or not isinstance(s, dict) or "id" not in s \
                or "token" not in s:
            problems.append("POST /v1/sessions #%d: expected 201 with id and "
                            "token, got %d %s" % (i, status, raw[:300]))
            return None
        ids.append(s["id"])
        tokens.append(s["token"])

    # Joins, in order (one connection, answered in order).
    values = [{"port": 9000 + i} for i in range(n)]
    joins = pipelined(h, p, [("PUT", gpath,
                              json.dumps({"value": values[i]},
                                         separators=(",", ":")),
                              tokens[i]) for i in range(n)])
    for i, (status, raw) in enumerate(joins):
        r = json_or_problem("PUT %s" % gpath, raw) if status == 201 else None
        if status != 201 or not isinstance(r, dict) \
                or r.get("group") != group or r.get("session") != ids[i] \
                or r.get("value") != values[i]:
            problems.append("PUT %s (session #%d): expected 201 {group:%s, "
                            "session:%s, value:%s}, got %d %s"
                            % (gpath, i, group, ids[i], values[i], status,
                               raw[:300]))
            return None

    # The whole group.
    want = [{"session": ids[i], "value": values[i]} for i in range(n)]
    r = check(h, p, "GET", gpath, None, None, 200, "")
    if r is not None:
        if r.get("group") != group or r.get("members") != want:
            got = r.get("members")
            problems.append("GET %s: expected group %s with %d members in join "
                            "order, got group %r with %s members%s"
                            % (gpath, group, n, r.get("group"),
                               len(got) if isinstance(got, list) else got,
                               "" if got != want[:len(got or [])] else
                               " (a prefix of the expected list)"))

    # Round robin: n picks see every member once, the next one wraps.
    rr = gpath + "?pick=round_robin"
    picked = []
    for i, (status, raw) in enumerate(pipelined(
            h, p, [("GET", rr, None, None)] * (n + 1))):
        r = json_or_problem("GET %s" % rr, raw) if status == 200 else None
        m = r.get("member") if isinstance(r, dict) else None
        if status != 200 or not isinstance(r, dict) \
                or r.get("group") != group or not isinstance(m, dict) \
                or m not in want:
            problems.append("GET %s (pick #%d): expected 200 {group:%s, member:"
                            " one of the %d members}, got %d %s"
                            % (rr, i, group, n, status, raw[:300]))
            return None
        picked.append(m["session"])
    if sorted(picked[:n]) != sorted(ids) or picked[n] != picked[0]:
        problems.append("GET %s: %d picks in a row did not give every member "
                        "once (%d distinct), or pick #%d (%s) is not pick #0 "
                        "(%s)" % (rr, n, len(set(picked[:n])), n, picked[n],
                                  picked[0]))

    # The join+leave session, and one cycle of it.
    session = new_session(h, p)
    if session is None:
        return None
    sid, tok = session
    body = '{"value":{"host":"10.0.0.2","port":80}}'
    r = check(h, p, "PUT", "/v1/groups/cycle-check", body, tok, 201, "")
    if r is not None and (r.get("group") != "cycle-check"
                          or r.get("session") != sid):
        problems.append("PUT /v1/groups/cycle-check: expected {group:"
                        "cycle-check, session:%s}, got %r" % (sid, r))
    check(h, p, "PUT", "/v1/groups/cycle-check", body, tok, 200,
          "(already a member)")
    check(h, p, "DELETE", "/v1/groups/cycle-check", None, tok, 204, "")
    r = check(h, p, "DELETE", "/v1/groups/cycle-check", None, tok, 404,
              "not_held")
    if r is not None and r.get("error") != "not_held":
        problems.append("DELETE /v1/groups/cycle-check (not a member): "
                        "expected error not_held, got %r" % (r,))
    r = check(h, p, "GET", "/v1/groups/cycle-check", None, None, 200,
              "with members []")
    if r is not None and r.get("members") != []:
        problems.append("GET /v1/groups/cycle-check after the leave: expected "
                        "members [], got %r" % (r,))
    return sid, tok


if __name__ == "__main__":
    run(main)
