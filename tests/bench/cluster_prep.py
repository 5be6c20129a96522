#!/usr/bin/env python3
"""Set-up for the wrk figures of tests/bench/cluster.sh (`make bench-cluster`),
checked once each, so that no figure measures error answers.

    cluster_prep.py node --port P [--node NAME] [--sessions 50]
        On a rollcall (a cluster node, or a single node): a session (ttl
        3600; with --node, its "node" must be NAME: homed there), the name
        "bench" registered to it and read back, one heartbeat, then
        --sessions more sessions (ttl 3600, homed there too), each checked
        with one registration. Prints shell assignments:
            ROLLCALL_SESSION=<id> ROLLCALL_TOKEN=<token>
            ROLLCALL_TOKENS=<token>,<token>,...      (the --sessions sessions)

    cluster_prep.py etcd --url URL [--prefix /bench-etcd/]
        On etcd's JSON gateway: the session and node keys that etcd_txn.lua's
        transaction compares with (<P>s/<session>, <P>n/<node>); then one such
        transaction, which must succeed, and the same again, which must not
        (the name is taken). Prints TXN_PREFIX, TXN_SESSION, TXN_NODE,
        TXN_NODE_REV, TXN_RUN.

Exits 1 with "cluster_prep: PROBLEM: ..." lines on stderr when an answer is
wrong. Python 3 standard library only."""

import argparse
import base64
import concurrent.futures
import http.client
import json
import os
import secrets
import sys

problems = []


def problem(msg):
    problems.append(msg)


def request(host, port, method, path, body=None, headers=None, timeout=15.0):
    """(status, headers dict (lower-case names), parsed JSON or raw bytes)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        h = dict(headers or {})
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        raw = r.read()
        hd = {k.lower(): v for k, v in r.getheaders()}
        try:
            return r.status, hd, json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            return r.status, hd, raw
    finally:
        conn.close()


def expect(what, got_status, want_status, body):
    if got_status != want_status:
        problem("%s: expected %d, got %d %s" % (what, want_status, got_status, str(body)[:300]))
        return False
    return True


def new_session(h, p, node):
    st, _, b = request(h, p, "POST", "/v1/sessions", {"ttl": 3600})
    if not expect("POST /v1/sessions", st, 201, b):
        return None
    if not isinstance(b, dict) or "id" not in b or "token" not in b:
        problem("POST /v1/sessions: no id/token in %r" % (b,))
        return None
    if node and b.get("node") != node:
        problem("POST /v1/sessions on %s: the session is homed on %r" % (node, b.get("node")))
        return None
    return b["id"], b["token"]


def prep_node(a):
    h, p = a.host, a.port
    s = new_session(h, p, a.node)
    if not s:
        return
    sid, tok = s
    value = {"host": "10.0.0.1", "port": 5432}
    st, hd, b = request(h, p, "PUT", "/v1/names/bench", {"value": value}, {"X-Session-Token": tok})
    if expect("PUT /v1/names/bench", st, 201, b) and (not isinstance(b, dict) or b.get("session") != sid):
        problem("PUT /v1/names/bench: expected session %s, got %r" % (sid, b))
    st, _, b = request(h, p, "GET", "/v1/names/bench")
    if expect("GET /v1/names/bench", st, 200, b) and (
            not isinstance(b, dict) or b.get("session") != sid or b.get("value") != value):
        problem("GET /v1/names/bench: expected session %s value %s, got %r" % (sid, value, b))
    st, _, b = request(h, p, "POST", "/v1/sessions/%s/heartbeat" % sid, b"", {"X-Session-Token": tok})
    if expect("POST /v1/sessions/%s/heartbeat" % sid, st, 200, b) and (
            not isinstance(b, dict) or b.get("id") != sid or b.get("ttl") != 3600):
        problem("heartbeat: expected id %s and ttl 3600, got %r" % (sid, b))
    def one(_):
        s2 = new_session(h, p, a.node)
        if not s2:
            return None
        key = "reg-check-%s" % s2[0]
        st, _, b = request(h, p, "PUT", "/v1/names/" + key, {"value": {"n": 0}}, {"X-Session-Token": s2[1]})
        return s2[1] if expect("PUT /v1/names/" + key, st, 201, b) else None

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as ex:
        tokens = list(ex.map(one, range(a.sessions)))
    if problems or None in tokens:
        return
    print("ROLLCALL_SESSION=%s" % sid)
    print("ROLLCALL_TOKEN=%s" % tok)
    print("ROLLCALL_TOKENS=%s" % ",".join(tokens))


def b64(s):
    return base64.b64encode(s.encode()).decode()


def prep_etcd(a):
    url = a.url.split("://", 1)[-1].rstrip("/")
    h, _, p = url.rpartition(":")
    p = int(p)
    pre = a.prefix
    session = secrets.token_hex(8)
    node = "bench"
    run = secrets.token_hex(4)
    st, _, b = request(h, p, "POST", "/v3/kv/put",
                       {"key": b64(pre + "s/" + session),
                        "value": b64(json.dumps({"node": node, "ttl": 3600}))})
    if not expect("etcd put of the session key", st, 200, b):
        return
    st, _, b = request(h, p, "POST", "/v3/kv/put",
                       {"key": b64(pre + "n/" + node), "value": b64(json.dumps({"url": "-"}))})
    if not expect("etcd put of the node key", st, 200, b):
        return
    st, _, b = request(h, p, "POST", "/v3/kv/range", {"key": b64(pre + "n/" + node)})
    try:
        rev = b["kvs"][0]["create_revision"]
    except (TypeError, KeyError, IndexError):
        problem("etcd range of the node key: no create_revision in %r" % (b,))
        return
    key = b64(pre + "k/check-" + run)
    txn = {"compare": [
        {"key": b64(pre + "s/" + session), "target": "CREATE", "result": "GREATER", "create_revision": "0"},
        {"key": b64(pre + "n/" + node), "target": "CREATE", "result": "EQUAL", "create_revision": rev},
        {"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
        "success": [{"request_put": {"key": key, "value": b64('{"s":"%s","v":0}' % session)}}],
        "failure": [{"request_range": {"key": key}}]}
    st, _, b = request(h, p, "POST", "/v3/kv/txn", txn)
    if expect("etcd txn (a new key)", st, 200, b) and not (isinstance(b, dict) and b.get("succeeded") is True):
        problem("etcd txn (a new key): expected \"succeeded\":true, got %r" % (b,))
    st, _, b = request(h, p, "POST", "/v3/kv/txn", txn)
    if expect("etcd txn (the same key again)", st, 200, b) and isinstance(b, dict) and b.get("succeeded"):
        problem("etcd txn (the same key again): expected no \"succeeded\", got %r" % (b,))
    if problems:
        return
    print("TXN_PREFIX=%s" % pre)
    print("TXN_SESSION=%s" % session)
    print("TXN_NODE=%s" % node)
    print("TXN_NODE_REV=%s" % rev)
    print("TXN_RUN=%s" % run)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    n = sub.add_parser("node")
    n.add_argument("--host", default="127.0.0.1")
    n.add_argument("--port", type=int, required=True)
    n.add_argument("--node", default="")
    n.add_argument("--sessions", type=int, default=50)
    e = sub.add_parser("etcd")
    e.add_argument("--url", required=True)
    e.add_argument("--prefix", default="/bench-etcd/")
    a = ap.parse_args()
    try:
        (prep_node if a.mode == "node" else prep_etcd)(a)
    except (OSError, http.client.HTTPException) as ex:
        problem("%s: %s" % (type(ex).__name__, ex))
    if problems:
        for m in problems:
            print("cluster_prep: PROBLEM: %s" % m, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
