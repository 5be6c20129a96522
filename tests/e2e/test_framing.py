"""HTTP framing tried on raw sockets, as a proxy or a fuzzer would (RFC 9112):
every malformed head gets exactly one answer, api.md's JSON error, and the
connection closes; nothing is smuggled in behind it. libmicrohttpd's own
answers (431, 414, 413, 400, 505) come as JSON too."""

import json
import re
import socket

from harness import HOST, check, eq, expect_json, test

STATUS_LINE = re.compile(rb"(?:^|\r\n)HTTP/1\.[01] (\d{3}) ")


def exchange(srv, data, timeout=5.0):
    """Sends data on a new connection, reads until the server closes it
    (or timeout); returns (everything read, closed by the server)."""
    s = socket.create_connection((HOST, srv.port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may close before taking it all: what it answered is read below
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return out, False
            except OSError:
                return out, True
            if not chunk:
                return out, True
            out += chunk
    finally:
        s.close()


def one_json_error(srv, data, status, code, what):
    """data gets exactly one answer, status with api.md's {"error": code},
    and the connection closes."""
    out, closed = exchange(srv, data)
    heads = STATUS_LINE.findall(out)
    eq(len(heads), 1, f"{what}: status lines in {out[:600]!r}")
    eq(int(heads[0]), status, f"{what}: status")
    head, _, body = out.partition(b"\r\n\r\n")
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        hdrs[k.strip().lower()] = v.strip()
    check(hdrs.get("content-type", "").startswith("application/json"), f"{what}: Content-Type {hdrs}")
    eq(int(hdrs.get("content-length", -1)), len(body), f"{what}: Content-Length against the body read")
    doc = json.loads(body)
    eq(sorted(doc), ["error", "message"], f"{what}: keys of the error")
    eq(doc["error"], code, f"{what}: error code")
    check(closed, f"{what}: the connection closes after the answer")
    return doc


def post_head(extra):
    return (f"POST /v1/sessions HTTP/1.1\r\nHost: {HOST}\r\n{extra}\r\n").encode()


@test
def test_content_length_not_a_number_gets_one_json_400(ctx):
    srv = ctx.start()
    for v in ("-1", "abc", "1x", "+5", " "):
        doc = one_json_error(srv, post_head(f"Content-Length: {v}\r\n") + b"{}", 400, "bad_request",
                             f"Content-Length: {v!r}")
        if v.strip():
            eq(doc["message"], "Content-Length must be a decimal number.", f"message for {v!r}")


@test
def test_content_length_too_large_to_hold_gets_one_json_413(ctx):
    srv = ctx.start()
    one_json_error(srv, post_head("Content-Length: 99999999999999999999999\r\n") + b"{}", 413, "payload_too_large",
                   "Content-Length beyond 64 bits")


@test
def test_two_content_lengths_that_differ_are_refused(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    before = expect_json(c.get("/v1/stats"), 200)["sessions"]
    # 2 bytes by the first, 7 by the second: the classic smuggling setup
    one_json_error(srv, post_head("Content-Length: 2\r\nContent-Length: 7\r\n") + b"{}GET /x", 400, "bad_request",
                   "Content-Length 2 and 7")
    eq(expect_json(c.get("/v1/stats"), 200)["sessions"], before, "no session was made")
    # the same value twice is one length (RFC 9112 6.3)
    out, _ = exchange(srv, post_head("Content-Length: 2\r\nContent-Length: 2\r\nConnection: close\r\n") + b"{}")
    eq([int(x) for x in STATUS_LINE.findall(out)], [201], "two equal Content-Length headers")


@test
def test_transfer_encoding_with_content_length_is_refused(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    before = expect_json(c.get("/v1/stats"), 200)["sessions"]
    body = b"2\r\n{}\r\n0\r\n\r\n"
    one_json_error(srv, post_head("Transfer-Encoding: chunked\r\nContent-Length: 2\r\n") + body, 400, "bad_request",
                   "Transfer-Encoding and Content-Length")
    one_json_error(srv, post_head("Content-Length: 2\r\nTransfer-Encoding: chunked\r\n") + body, 400, "bad_request",
                   "Content-Length, then Transfer-Encoding")
    eq(expect_json(c.get("/v1/stats"), 200)["sessions"], before, "no session was made")


@test
def test_transfer_encoding_other_than_chunked_gets_501(ctx):
    srv = ctx.start()
    for te in ("gzip", "gzip, chunked", "identity"):
        one_json_error(srv, post_head(f"Transfer-Encoding: {te}\r\n") + b"{}", 501, "not_implemented",
                       f"Transfer-Encoding: {te}")
    one_json_error(srv, post_head("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n") + b"0\r\n\r\n",
                   501, "not_implemented", "two Transfer-Encoding headers")
    # plain chunked still works
    out, _ = exchange(srv, post_head("Transfer-Encoding: chunked\r\nConnection: close\r\n") + b"2\r\n{}\r\n0\r\n\r\n")
    eq([int(x) for x in STATUS_LINE.findall(out)], [201], "a chunked body")


@test
def test_head_of_64_kib_gets_json_431(ctx):
    srv = ctx.start()
    data = f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\nX-Pad: {'a' * 65536}\r\n\r\n".encode()
    one_json_error(srv, data, 431, "header_too_large", "a 64 KiB request head")
    many = "".join(f"X-H{i}: {'b' * 100}\r\n" for i in range(200))
    one_json_error(srv, f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n{many}\r\n".encode(), 431, "header_too_large",
                   "200 headers of 100 bytes")
    # the server is intact
    expect_json(ctx.client(srv).get("/healthz"), 200)


@test
def test_query_of_16_kib_gets_a_json_error(ctx):
    srv = ctx.start()
    data = f"GET /v1/names?prefix={'q' * 16384} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    one_json_error(srv, data, 414, "uri_too_long", "a 16 KiB query")


@test
def test_unknown_http_version_gets_json_505(ctx):
    srv = ctx.start()
    one_json_error(srv, f"GET /healthz HTTP/2.0\r\nHost: {HOST}\r\n\r\n".encode(), 505, "http_version_not_supported",
                   "HTTP/2.0 on an HTTP/1.1 connection")


@test
def test_framing_errors_counted_and_server_intact(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session()
    exchange(srv, post_head("Content-Length: abc\r\n") + b"{}")
    exchange(srv, f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\nX-Pad: {'a' * 20000}\r\n\r\n".encode())
    st = expect_json(c.get("/v1/stats"), 200)
    check(st["requests"]["4xx"] >= 2, f"the refused heads are counted in 4xx: {st['requests']}")
    expect_json(c.get(f"/v1/sessions/{s.id}"), 200)


@test
def test_many_malformed_heads_at_once_leave_the_server_up(ctx):
    """64 connections at once, each a header line libmicrohttpd refuses
    (no colon, or a bare continuation line) and then a half-close: each
    answer is written on a socket closed by two owners (ours lingering,
    libmicrohttpd's); the server must stay up and answer each once."""
    import threading
    srv = ctx.start("--idle-timeout", "2")
    outs = []
    lock = threading.Lock()

    def one(data):
        try:
            s = socket.create_connection((HOST, srv.port), timeout=5)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            s.close()
        except OSError:
            out = b"<error>"
        with lock:
            outs.append(out)

    heads = [f"GET /healthz HTTP/1.1\r\nHost {HOST}\r\n\r\n".encode(), b"GET /healthz HTTP/1.1\r\n x\r\n\r\n"]
    for rnd in range(3):
        ts = [threading.Thread(target=one, args=(heads[i % 2],)) for i in range(64)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
        check(srv.proc.poll() is None, f"the server is up after round {rnd + 1} of 64 malformed heads")
    answered = [o for o in outs if STATUS_LINE.findall(o)]
    check(all(len(STATUS_LINE.findall(o)) == 1 for o in answered), "never more than one answer per connection")
    check(all(b'"error":"bad_request"' in o for o in answered), "every answer is the JSON 400")
    expect_json(ctx.client(srv).get("/healthz"), 200)
