"""The bench's HTTP/1.1 client, shared by the Python helpers (load_sessions.py,
load_groups.py, prepare.py, prepare_groups.py).

Requests are pipelined over a few keep-alive connections (a window of DEPTH
requests in flight per connection), so that many requests take seconds, not
minutes: run_pipelined() for a batch, simple_request() for one. Then the
options every helper takes (port_args()), and what the two memory loaders
share: fail(), loader_args(), create_sessions(), check_stats() and
run_main(). Messages name the program that runs (PROG: load_sessions, ...).

Python 3 standard library only.
"""

import argparse
import collections
import json
import os
import selectors
import socket
import sys
import time

PROG = os.path.splitext(os.path.basename(sys.argv[0]))[0]


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
    print("%s: FAILED: %s" % (PROG, msg), file=sys.stderr)
    sys.exit(1)


def port_args():
    """The options every helper takes: --host and --port of the server."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    return ap


def loader_args(prefix):
    """The options both loaders take (PREFIX: their default --prefix)."""
    ap = port_args()
    ap.add_argument("--ttl", type=int, default=3600)
    ap.add_argument("--prefix", default=prefix)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--depth", type=int, default=256)
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds allowed for each phase")
    return ap


def run_main(main):
    """Runs a loader's main(); a connection or protocol error fails it."""
    try:
        main()
    except (HTTPError, OSError, ValueError, KeyError) as e:
        fail("%s: %s" % (type(e).__name__, e))


def create_sessions(host, port, n, ttl, conns, depth, timeout):
    """n sessions (POST /v1/sessions {"ttl": ttl}), pipelined: every answer
    must be 201, and the ids and tokens unique (else fail()). Returns
    (ids, tokens); says on stderr how long it took."""
    ids = [None] * n
    tokens = [None] * n
    bad = []
    create = request_bytes("POST", "/v1/sessions", host,
                           json.dumps({"ttl": ttl}))

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
                  conns, depth, on_session, timeout)
    t1 = time.monotonic()
    missing = sum(1 for x in ids if x is None)
    if missing:
        fail("%d of %d sessions not created; first errors: %s"
             % (missing, n, bad))
    if len(set(ids)) != n or len(set(tokens)) != n:
        fail("session ids or tokens are not unique")
    print("%s: %d sessions created in %.2f s (%.0f req/s)"
          % (PROG, n, t1 - t0, n / max(t1 - t0, 1e-9)), file=sys.stderr)
    return ids, tokens


def check_stats(host, port, least):
    """GET /v1/stats, when it answers 200: each (field, at least) of least
    must not be below what was loaded (else fail()). Returns a note for the
    summary line ("" when /v1/stats did not answer 200)."""
    status, _, body = simple_request(host, port, "GET", "/v1/stats")
    if status != 200:
        return ""
    try:
        stats = json.loads(body)
    except ValueError:
        fail("GET /v1/stats: 200 but not JSON: %r" % body[:200])
    # Field names are not fixed by the contract; check what is there.
    for field, n in least:
        v = stats.get(field)
        if isinstance(v, dict):
            v = v.get("count", v.get("total"))
        if isinstance(v, int) and v < n:
            fail("GET /v1/stats: %s=%d, expected at least %d" % (field, v, n))
    return "; /v1/stats: %s" % body[:200].decode("utf-8", "replace")
