"""HTTP in general: routing, methods, HEAD, strict JSON bodies, body limits,
keep-alive, error shape."""

import time

from harness import (RawConn, check, eq, expect_error, expect_json,
                     expect_status, name_path, test)


@test
def test_healthz(ctx):
    r = ctx.client().healthz()
    eq(expect_json(r, 200), {"status": "ok"}, "healthz")


@test
def test_unknown_paths_404(ctx):
    c = ctx.client()
    for p in ["/nope", "/v1", "/v1/", "/v1/nope", "/v2/names/x", "/v1/namesx",
              "/v1/sessionsx", "/v1/sessions/0123456789abcdef/nope",
              "/v1/sessions/0123456789abcdef/heartbeat/x", "/healthzz"]:
        expect_error(c.get(p), 404, "not_found")
    expect_error(c.post("/v1/nope", {}), 404, "not_found")
    expect_error(c.request("PATCH", "/nope"), 404, "not_found")


def _allow(r):
    return {m.strip().upper() for m in (r.header("Allow") or "").split(",") if m.strip()}


def _expect_405(r, must_allow):
    expect_error(r, 405, "method_not_allowed")
    allow = _allow(r)
    check(set(must_allow) <= allow, f"{r.method} {r.path}: Allow {r.header('Allow')!r} lacks {must_allow}")
    check(r.method not in allow, f"{r.method} {r.path}: Allow {r.header('Allow')!r} lists the refused method")


@test
def test_method_not_allowed(ctx):
    c = ctx.client()
    s = c.session()
    _expect_405(c.request("PATCH", "/v1/names/x"), {"GET", "PUT", "DELETE"})
    _expect_405(c.post("/v1/names/x", {}), {"GET", "PUT", "DELETE"})
    _expect_405(c.request("PATCH", "/v1/names/a/b/c"), {"GET", "PUT", "DELETE"})
    _expect_405(c.put("/v1/names"), {"GET"})
    _expect_405(c.delete("/v1/names"), {"GET"})
    _expect_405(c.delete("/v1/sessions"), {"GET", "POST"})
    _expect_405(c.put("/v1/sessions"), {"GET", "POST"})
    _expect_405(c.put(f"/v1/sessions/{s.id}", token=s.token), {"GET", "DELETE"})
    _expect_405(c.post(f"/v1/sessions/{s.id}", token=s.token), {"GET", "DELETE"})
    _expect_405(c.get(f"/v1/sessions/{s.id}/heartbeat"), {"POST"})
    _expect_405(c.delete(f"/v1/sessions/{s.id}/heartbeat", token=s.token), {"POST"})
    _expect_405(c.post("/healthz"), {"GET"})
    expect_json(c.get_session(s.id), 200)  # untouched


@test
def test_head(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    expect_status(c.put_name(k, {"big": "x" * 1000}, s.token), 201)
    for path, status in [(name_path(k), 200), (name_path(k + "nope"), 404), ("/healthz", 200),
                         ("/v1/sessions", 200), (f"/v1/sessions/{s.id}", 200),
                         ("/v1/names?limit=2", 200), ("/v1/names/%00", 400)]:
        r = c.head(path)
        expect_status(r, status)
        eq(r.body, b"", f"HEAD {path} body")
        ct = (r.header("Content-Type") or "").replace(" ", "").lower()
        eq(ct, "application/json;charset=utf-8", f"HEAD {path} Content-Type")
    # the connection is still in step after HEADs
    eq(expect_json(c.get_name(k), 200)["key"], k, "GET after HEADs")


@test
def test_head_content_length_matches_get(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    expect_status(c.put_name(k, "v" * 300, s.token), 201)
    cl = c.head(name_path(k)).header("Content-Length")
    if cl is not None:
        eq(int(cl), len(c.get_name(k).body), "HEAD Content-Length vs GET body")


@test
def test_json_content_type_everywhere(ctx):
    c = ctx.client()
    s = c.session()
    k = ctx.uid()
    for r in [c.post("/v1/sessions"), c.get("/v1/sessions"), c.get_session(s.id),
              c.heartbeat(s.id, s.token), c.put_name(k, 1, s.token), c.get_name(k),
              c.get("/v1/names"), c.healthz()]:
        expect_json(r, r.status)


# ---- strict JSON

BAD_BODIES = [
    '{"ttl": 01}', '{"ttl": .5}', '{"ttl": +1}', '{"ttl": 1.}', '{"ttl": -}', '{"ttl": 1e}',
    '{"value": NaN}', '{"value": Infinity}', '{"value": -Infinity}',
    '{"label": "a\x01b"}', '{"label": "a\tb"}', '{"label": "a\nb"}', '{"label": "a\x1fb"}',
    r'{"label": "\x"}', r'{"label": "\u12"}', r'{"label": "\u12G4"}', r'{"label": "\a"}', r'{"label": "\'"}',
    '{"label": "a"} // comment', '/* c */ {}', '{"ttl": 5 /* c */}', '# c\n{}',
    "{} x", "{}{}", "{} {}", "{},", '{"ttl": 5}]',
    "{", "}", '{"ttl": 5', '{"ttl": 5,}', '{"ttl" 5}', '{ttl: 5}', "{'ttl': 5}",
    '{"ttl": 5,, "label": "x"}', '{"label": "x}', '{"value": [1, 2,]}', '{"value": [1 2]}',
    '{"value": tru}', '{"value": True}', '{"value": nul}', '{"value": undefined}',
    '{"value": 0x10}', '{"value": 1_000}', '{"value": 00}', '{"value": -01}', '{"value": - 1}',
    '{"value": "\\ud800"x}', "\x00{}", "{}\x00",
]
BAD_BYTES = [b'{"label": "\xff"}', b'{"label": "\xc3\x28"}', b'{"label": "\xc0\xaf"}',
             b'{"label": "\xed\xa0\x80"}', b'{"label": "\xe2\x82"}', b'{"\xfe": 1}',
             b'\xef\xbb\xbf{"label": "\xf8\x88\x80\x80\x80"}']


@test
def test_strict_json_create_session(ctx):
    c = ctx.client()
    for raw in BAD_BODIES:
        expect_error(c.post("/v1/sessions", raw=raw), 400, "bad_request")
    for raw in BAD_BYTES:
        expect_error(c.post("/v1/sessions", raw=raw), 400, "bad_request")


@test
def test_strict_json_put_name(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    for raw in BAD_BODIES + BAD_BYTES:
        expect_error(c.put_name(k, token=s.token, raw=raw), 400, "bad_request")
    expect_error(c.get_name(k), 404, "name_not_found")
    eq(c.get_session(s.id).json["names"], 0, "nothing registered by bad bodies")


@test
def test_strict_json_heartbeat(ctx):
    c = ctx.client()
    s = c.session()
    for raw in BAD_BODIES[:20] + BAD_BYTES[:3]:
        expect_error(c.heartbeat(s.id, s.token, raw=raw), 400, "bad_request")


@test
def test_valid_json_edge_cases(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    cases = [
        (' \t\r\n{"value": 1} \t\r\n', 1),
        ('{"value": -0}', 0), ('{"value": 0.0}', 0), ('{"value": 1E+2}', 100),
        ('{"value": 1e-2}', 0.01), ('{"value": -1.5E-3}', -0.0015),
        ('{"value": "\\u00E9\\u00e9"}', "\u00e9\u00e9"),
        ('{"value": "\u00e9 raw UTF-8 \U0001F600"}', "\u00e9 raw UTF-8 \U0001F600"),
        ('{"value": "DEL \x7f is legal in JSON strings"}', "DEL \x7f is legal in JSON strings"),
        ('{"value": [[], {}, [{}], {"a": []}]}', [[], {}, [{}], {"a": []}]),
        ('{"value": {"a": 1, "a": 2}}', None),  # nested duplicates: not checked here
        ('{"value":null}', None),
    ]
    for i, (raw, want) in enumerate(cases):
        r = c.put_name(f"{k}/{i}", token=s.token, raw=raw.encode("utf-8"))
        if raw == '{"value": {"a": 1, "a": 2}}':
            continue  # either accepted or refused; only the others are checked
        got = expect_json(r, 201)["value"]
        eq(got, want, f"value of {raw!r}")


@test
def test_nesting_limit(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()

    def nested(depth):  # total depth, the body's object counted as 1
        inner = depth - 1
        return '{"value": ' + "[" * inner + "]" * inner + "}"
    expect_status(c.put_name(k + "/100", token=s.token, raw=nested(100)), 201)
    expect_status(c.put_name(k + "/512", token=s.token, raw=nested(512)), 201)
    expect_error(c.put_name(k + "/513", token=s.token, raw=nested(513)), 400, "bad_request")
    expect_error(c.put_name(k + "/600", token=s.token, raw=nested(600)), 400, "bad_request")
    expect_error(c.put_name(k + "/1e5", token=s.token, raw=nested(100000)), 400, "bad_request")
    expect_error(c.post("/v1/sessions", raw='{"x": ' + '{"a": ' * 600 + "1" + "}" * 600 + "}"),
                 400, "bad_request")
    expect_json(c.healthz(), 200)
    v = c.get_name(k + "/512").json["value"]
    depth = 0
    while isinstance(v, list):
        depth += 1
        v = v[0] if v else None
    eq(depth, 511, "depth of the value served back")


@test
def test_duplicate_keys_top_level(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    expect_error(c.put_name(k, token=s.token, raw='{"value": 1, "value": 2}'), 400, "bad_request")
    expect_error(c.put_name(k, token=s.token, raw='{"value": 1, "x": 0, "value": 1}'), 400, "bad_request")
    expect_error(c.get_name(k), 404, "name_not_found")


@test
def test_body_not_object_put(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    for raw in ["[]", "5", '"value"', "null", "true", '[{"value": 1}]']:
        expect_error(c.put_name(k, token=s.token, raw=raw), 400, "bad_request")


@test
def test_unknown_fields_ignored_put(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    b = expect_json(c.put_name(k, token=s.token, raw='{"value": 1, "ttl": "x", "extra": [1, {}]}'), 201)
    eq(b["value"], 1, "value")


# ---- body limits


@test
def test_body_limit_boundary(ctx):
    srv = ctx.start("--max-body", "1000", "--max-value", "100")
    c = ctx.client(srv)

    def body(n):
        pre, post = '{"label": "l", "pad": "', '"}'
        return pre + "x" * (n - len(pre) - len(post)) + post
    eq(len(body(1000)), 1000, "test body size")
    expect_json(c.post("/v1/sessions", raw=body(1000)), 201)
    expect_error(c.post("/v1/sessions", raw=body(1001)), 413, "payload_too_large")
    expect_json(c.post("/v1/sessions", raw=body(999)), 201)
    srv.stop_clean()


@test
def test_body_a_little_over_keeps_connection(ctx):
    srv = ctx.start("--max-body", "1000", "--max-value", "100")
    c = ctx.client(srv)
    s = c.session()
    big = '{"value": "' + "x" * 1500 + '"}'
    r = c.put_name("k", token=s.token, raw=big)
    expect_error(r, 413, "payload_too_large")
    conn = c.conn
    check(conn is not None, "the server closed the connection after a 413 for a body a little over")
    eq(expect_json(c.healthz(), 200), {"status": "ok"}, "healthz on the same connection")
    check(c.conn is conn, "a new connection was needed")
    expect_error(c.post("/v1/sessions", raw='{"label": "' + "y" * 3000 + '"}'), 413, "payload_too_large")
    expect_status(c.put_name("k", "ok", s.token), 201)
    check(c.conn is conn, "a new connection was needed after the second 413")
    expect_error(c.get_name("missing"), 404, "name_not_found")
    # chunked, over the limit
    r = c.request("PUT", "/v1/names/ch", raw=big.encode(), token=s.token, chunked=True)
    expect_error(r, 413, "payload_too_large")
    expect_json(ctx.client(srv).healthz(), 200)
    expect_error(ctx.client(srv).get_name("ch"), 404, "name_not_found")
    srv.stop_clean()


@test
def test_body_far_over_closes_connection(ctx):
    srv = ctx.start("--max-body", "1000", "--max-value", "100")
    c = ctx.client(srv)
    s = c.session()
    rc = RawConn(srv, timeout=5)
    t0 = time.monotonic()
    rc.send(f"PUT /v1/names/huge HTTP/1.1\r\nHost: x\r\nX-Session-Token: {s.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {1000 + (1 << 20) + 100000}\r\n\r\n"
            '{"value": "')
    status, headers, body = rc.read_response()
    took = time.monotonic() - t0
    eq(status, 413, f"status for a declared length far over ({body[:100]!r})")
    import json
    b = json.loads(body)
    eq(b.get("error"), "payload_too_large", "error code")
    check(took < 2.0, f"413 came after {took:.2f} s, not at once")
    check(rc.closed_by_peer(3.0), "connection not closed after a 413 for a declared length far over")
    rc.close()
    expect_json(c.healthz(), 200)
    expect_error(c.get_name("huge"), 404, "name_not_found")
    srv.stop_clean()


@test
def test_body_over_default_limit(ctx):
    c = ctx.client()
    s = c.session()
    k = ctx.uid()
    big = '{"value": 1, "pad": "' + "x" * (1 << 20) + '"}'
    expect_error(c.put_name(k, token=s.token, raw=big), 413, "payload_too_large")
    expect_json(c.healthz(), 200)
    expect_error(c.get_name(k), 404, "name_not_found")


# ---- connections


@test
def test_keep_alive_many_requests(ctx):
    c = ctx.client()
    s = c.session()
    k = ctx.uid()
    c.get("/healthz")
    conn = c.conn
    for i in range(50):
        expect_status(c.put_name(f"{k}/{i}", i, s.token), 201)
        expect_error(c.put_name(f"{k}/{i}", token=s.token, raw="{bad"), 400, "bad_request")
        expect_error(c.get("/v1/names/%00"), 400, "invalid_key")
        expect_error(c.get("/nope"), 404, "not_found")
        expect_error(c.request("PATCH", "/v1/names/x"), 405, "method_not_allowed")
    check(c.conn is conn, "the keep-alive connection was closed along the way")


@test
def test_pipelined_requests(ctx):
    c = ctx.client()
    s = c.session()
    k = ctx.uid()
    rc = RawConn(ctx.shared)
    body = '{"value": "p"}'
    rc.send(f"PUT {name_path(k)} HTTP/1.1\r\nHost: x\r\nX-Session-Token: {s.token}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}"
            f"GET {name_path(k)} HTTP/1.1\r\nHost: x\r\n\r\n"
            f"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    eq(rc.read_response()[0], 201, "pipelined PUT")
    st, _, b = rc.read_response()
    eq((st, b'"p"' in b), (200, True), "pipelined GET")
    eq(rc.read_response()[0], 200, "pipelined healthz")
    rc.close()


@test
def test_http10_request(ctx):
    rc = RawConn(ctx.shared)
    rc.send("GET /healthz HTTP/1.0\r\n\r\n")
    st, _, b = rc.read_response()
    eq(st, 200, "HTTP/1.0 healthz")
    rc.close()


@test
def test_error_shape_on_every_code(ctx):
    # expect_error checks the shape; here each code of the implemented
    # sections is produced once
    c = ctx.client()
    k = ctx.uid()
    a, b = c.session(), c.session()
    expect_status(c.put_name(k, 1, a.token), 201)
    expect_error(c.post("/v1/sessions", raw="{"), 400, "bad_request")
    expect_error(c.get("/v1/names/%FF"), 400, "invalid_key")
    expect_error(c.post("/v1/sessions", {"ttl": 0}), 400, "invalid_ttl")
    expect_error(c.put_name(k, 1), 401, "missing_token")
    expect_error(c.put_name(k, 1, "0" * 32), 403, "bad_token")
    expect_error(c.delete_name(k, b.token), 403, "not_owner")
    expect_error(c.get("/zzz"), 404, "not_found")
    expect_error(c.get_session("0" * 16), 404, "session_not_found")
    expect_error(c.get_name(k + "x"), 404, "name_not_found")
    expect_error(c.request("PATCH", name_path(k)), 405, "method_not_allowed")
    e = expect_error(c.put_name(k, 1, b.token), 409, "name_taken")
    eq(e["owner"], a.id, "owner")
    expect_error(c.put_name(k, "x" * 70000, a.token), 413, "payload_too_large")
