#!/usr/bin/env python3
"""Bulk loader for the rollcall memory benchmark.

Creates N sessions (POST /v1/sessions {"ttl": TTL}) and registers one name per
session (PUT /v1/names/<prefix><i> with that session's token, value {"i": i}).
Requests are pipelined over a few HTTP/1.1 keep-alive connections (a window of
DEPTH requests in flight per connection) so that 2*N requests take seconds,
not minutes. Then it checks that the registry really holds what was loaded
(a spot-check of names and sessions, and /v1/stats when it answers) and exits
non-zero, loudly, if anything is off.

Python 3 standard library only.

Usage: load_sessions.py --port PORT [--host 127.0.0.1] [-n 100000]
                        [--ttl 3600] [--prefix mem-] [--conns 4] [--depth 256]
"""

import argparse
import collections
import json
import random
import selectors
import socket
import sys
import time


class HTTPError(Exception):
    pass


class Conn:
    """One keep-alive connection with a send buffer and a response parser."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.out = bytearray()
        self.inbuf = bytearray()
        self.pending = collections.deque()  # tags of requests sent (or queued), in order
        self.closed = False

    def queue(self, raw, tag):
        self.out += raw
        self.pending.append(tag)

    def parse_responses(self):
        """Yield (tag, status, headers, body) for each complete response."""
        buf = self.inbuf
        pos = 0
        while True:
            end = buf.find(b"\r\n\r\n", pos)
            if end < 0:
                break
            head = bytes(buf[pos:end]).decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
                raise HTTPError("bad status line: %r" % lines[0][:200])
            status = int(parts[1])
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            body_start = end + 4
            te = headers.get("transfer-encoding", "").lower()
            if "chunked" in te:
                body = bytearray()
                p = body_start
                done = False
                while True:
                    le = buf.find(b"\r\n", p)
                    if le < 0:
                        break
                    size = int(bytes(buf[p:le]).split(b";")[0], 16)
                    if size == 0:
                        te_end = buf.find(b"\r\n\r\n", le)
                        if te_end < 0:
                            break
                        p = te_end + 4
                        done = True
                        break
                    if le + 2 + size + 2 > len(buf):
                        break
                    body += buf[le + 2:le + 2 + size]
                    p = le + 2 + size + 2
                if not done:
                    break
                new_pos = p
                body = bytes(body)
            else:
                clen = int(headers.get("content-length", "0"))
                if body_start + clen > len(buf):
                    break
                body = bytes(buf[body_start:body_start + clen])
                new_pos = body_start + clen
            pos = new_pos
            if not self.pending:
                raise HTTPError("response with no request outstanding")
            tag = self.pending.popleft()
            yield tag, status, headers, body
            if headers.get("connection", "").lower() == "close":
                self.closed = True
        del buf[:pos]


def request_bytes(method, path, host, body=None, token=None):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % host]
    if token:
        lines.append("X-Session-Token: %s" % token)
    data = b""
    if body is not None:
        data = body.encode("utf-8")
        lines.append("Content-Type: application/json")
    lines.append("Content-Length: %d" % len(data))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


def run_pipelined(host, port, jobs, conns, depth, on_response, timeout):
    """jobs: iterator of (raw_request, tag). Sends them pipelined over
    `conns` connections with at most `depth` outstanding per connection and
    calls on_response(tag, status, headers, body) for each answer."""
    sel = selectors.DefaultSelector()
    cs = [Conn(host, port) for _ in range(conns)]
    for c in cs:
        sel.register(c.sock, selectors.EVENT_READ, c)
    jobs = iter(jobs)
    exhausted = False
    outstanding = 0
    deadline = time.monotonic() + timeout

    def refill(c):
        nonlocal exhausted, outstanding
        while not exhausted and len(c.pending) < depth:
            try:
                raw, tag = next(jobs)
            except StopIteration:
                exhausted = True
                return
            c.queue(raw, tag)
            outstanding += 1

    for c in cs:
        refill(c)
    try:
        while outstanding:
            if time.monotonic() > deadline:
                raise HTTPError("timed out with %d requests outstanding"
                                % outstanding)
            for c in cs:
                ev = selectors.EVENT_READ
                if c.out:
                    ev |= selectors.EVENT_WRITE
                sel.modify(c.sock, ev, c)
            for key, mask in sel.select(timeout=1.0):
                c = key.data
                if mask & selectors.EVENT_WRITE and c.out:
                    try:
                        n = c.sock.send(c.out)
                        del c.out[:n]
                    except (BlockingIOError, InterruptedError):
                        pass
                if mask & selectors.EVENT_READ:
                    try:
                        data = c.sock.recv(1 << 18)
                    except (BlockingIOError, InterruptedError):
                        continue
                    if not data:
                        raise HTTPError("server closed a connection with %d "
                                        "requests outstanding on it"
                                        % len(c.pending))
                    c.inbuf += data
                    for tag, status, headers, body in c.parse_responses():
                        outstanding -= 1
                        on_response(tag, status, headers, body)
                    if c.closed:
                        raise HTTPError("server sent Connection: close")
                    refill(c)
    finally:
        for c in cs:
            try:
                sel.unregister(c.sock)
            except Exception:
                pass
            c.sock.close()
        sel.close()


def simple_request(host, port, method, path, body=None, token=None):
    result = []
    run_pipelined(host, port,
                  [(request_bytes(method, path, host, body, token), 0)],
                  1, 1, lambda t, s, h, b: result.append((s, h, b)), 10)
    return result[0]


def fail(msg):
    print("load_sessions: FAILED: %s" % msg, file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("-n", type=int, default=100000)
    ap.add_argument("--ttl", type=int, default=3600)
    ap.add_argument("--prefix", default="mem-")
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--depth", type=int, default=256)
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds allowed for each phase")
    args = ap.parse_args()
    host, port, n = args.host, args.port, args.n

    ids = [None] * n
    tokens = [None] * n
    bad = []

    # Phase 1: sessions.
    session_body = json.dumps({"ttl": args.ttl})
    create = request_bytes("POST", "/v1/sessions", host, session_body)

    def on_session(i, status, headers, body):
        if status != 201:
            if len(bad) < 5:
                bad.append("POST /v1/sessions #%d: %d %s"
                           % (i, status, body[:200]))
            return
        obj = json.loads(body)
        ids[i] = obj["id"]
        tokens[i] = obj["token"]

    t0 = time.monotonic()
    run_pipelined(host, port, ((create, i) for i in range(n)),
                  args.conns, args.depth, on_session, args.timeout)
    t1 = time.monotonic()
    missing = sum(1 for x in ids if x is None)
    if missing:
        fail("%d of %d sessions not created; first errors: %s"
             % (missing, n, bad))
    if len(set(ids)) != n or len(set(tokens)) != n:
        fail("session ids or tokens are not unique")
    print("load_sessions: %d sessions created in %.2f s (%.0f req/s)"
          % (n, t1 - t0, n / max(t1 - t0, 1e-9)), file=sys.stderr)

    # Phase 2: one name per session.
    ok = [False] * n

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
    stats_note = ""
    status, _, body = simple_request(host, port, "GET", "/v1/stats")
    if status == 200:
        try:
            stats = json.loads(body)
        except ValueError:
            fail("GET /v1/stats: 200 but not JSON: %r" % body[:200])
        # Field names are not fixed by the contract; check what is there.
        for field in ("sessions", "names"):
            v = stats.get(field)
            if isinstance(v, dict):
                v = v.get("count", v.get("total"))
            if isinstance(v, int) and v < n:
                fail("GET /v1/stats: %s=%d, expected at least %d"
                     % (field, v, n))
        stats_note = "; /v1/stats: %s" % body[:200].decode("utf-8", "replace")
    print("load_sessions: verified %d names and %d sessions by GET%s"
          % (len(sample), min(5, len(sample)), stats_note), file=sys.stderr)
    print("OK %d" % n)


if __name__ == "__main__":
    try:
        main()
    except (HTTPError, OSError, ValueError, KeyError) as e:
        fail("%s: %s" % (type(e).__name__, e))
