"""Unique names: register, replace, conflict, read, unregister, keys, values."""

import json
import threading

from harness import (check, eq, expect_error, expect_json, expect_no_body,
                     expect_status, name_path, test)

UNKNOWN_TOKEN = "0" * 32


@test
def test_register_read_replace(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    b = expect_json(c.put_name(k, {"addr": "10.0.0.1:80"}, s.token), 201)
    eq(b, {"key": k, "session": s.id, "value": {"addr": "10.0.0.1:80"}}, "201 body")
    eq(expect_json(c.get_name(k), 200), b, "GET body")
    b = expect_json(c.put_name(k, [1, 2], s.token), 200)
    eq(b, {"key": k, "session": s.id, "value": [1, 2]}, "200 body (replaced)")
    eq(expect_json(c.get_name(k), 200)["value"], [1, 2], "replaced value read back")


@test
def test_register_without_body_value_null(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    b = expect_json(c.put_name(k, token=s.token, no_body=True), 201)
    eq(b, {"key": k, "session": s.id, "value": None}, "no body")
    b = expect_json(c.put_name(k, token=s.token, raw="{}"), 200)
    eq(b["value"], None, "{} body")
    b = expect_json(c.put_name(k + "x", token=s.token, raw='{"other": 1}'), 201)
    eq(b["value"], None, "body without value")


@test
def test_register_form_content_type(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    b = expect_json(c.put_name(k, token=s.token, raw='{"value": "curl -d"}',
                               content_type="application/x-www-form-urlencoded"), 201)
    eq(b["value"], "curl -d", "value")


@test
def test_register_chunked_body(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    r = c.request("PUT", name_path(k), raw=b'{"value": {"chunked": true}}', token=s.token, chunked=True)
    eq(expect_json(r, 201)["value"], {"chunked": True}, "value sent chunked")


@test
def test_name_taken(ctx):
    c = ctx.client()
    k = ctx.uid()
    a, b = c.session(), c.session()
    expect_status(c.put_name(k, "a", a.token), 201)
    e = expect_error(c.put_name(k, "b", b.token), 409, "name_taken")
    eq(e.get("owner"), a.id, "owner in 409")
    eq(expect_json(c.get_name(k), 200), {"key": k, "session": a.id, "value": "a"}, "unchanged")


@test
def test_put_token_errors(ctx):
    c = ctx.client()
    k = ctx.uid()
    expect_error(c.put_name(k, 1), 401, "missing_token")
    expect_error(c.put_name(k, 1, UNKNOWN_TOKEN), 403, "bad_token")
    expect_error(c.put_name(k, 1, "x"), 403, "bad_token")
    expect_error(c.get_name(k), 404, "name_not_found")


@test
def test_put_token_header_case_insensitive(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    r = c.put(name_path(k), {"value": 1}, headers={"x-session-token": s.token})
    expect_status(r, 201)


@test
def test_get_missing_name(ctx):
    c = ctx.client()
    expect_error(c.get_name(ctx.uid()), 404, "name_not_found")


@test
def test_delete_name(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    expect_status(c.put_name(k, 1, s.token), 201)
    expect_no_body(c.delete_name(k, s.token), 204)
    expect_error(c.get_name(k), 404, "name_not_found")
    expect_error(c.delete_name(k, s.token), 404, "name_not_found")
    eq(c.get_session(s.id).json["names"], 0, "session name count after delete")
    # registering again is new (201)
    expect_status(c.put_name(k, 2, s.token), 201)


@test
def test_delete_name_errors(ctx):
    c = ctx.client()
    k = ctx.uid()
    a, b = c.session(), c.session()
    expect_status(c.put_name(k, 1, a.token), 201)
    expect_error(c.delete_name(k, b.token), 403, "not_owner")
    expect_error(c.delete_name(k), 401, "missing_token")
    expect_error(c.delete_name(k, UNKNOWN_TOKEN), 403, "bad_token")
    expect_error(c.delete_name(ctx.uid(), b.token), 404, "name_not_found")
    eq(expect_json(c.get_name(k), 200)["session"], a.id, "still held by its owner")


@test
def test_check_order_put(ctx):
    c = ctx.client()
    k = ctx.uid()
    a, b = c.session(), c.session()
    expect_status(c.put_name(k, 1, a.token), 201)
    # invalid key before the token
    expect_error(c.put("/v1/names/%00", raw="{"), 400, "invalid_key")
    expect_error(c.put("/v1/names/", raw="{"), 400, "invalid_key")
    expect_error(c.put("/v1/names/%FF", token=UNKNOWN_TOKEN), 400, "invalid_key")
    # token before the body
    expect_error(c.put(name_path(k), raw="{"), 401, "missing_token")
    expect_error(c.put(name_path(k), raw="{", token=UNKNOWN_TOKEN), 403, "bad_token")
    # body before the store (the name is held by a: no 409 for a bad body)
    expect_error(c.put(name_path(k), raw="{", token=b.token), 400, "bad_request")
    expect_error(c.put(name_path(k), raw="[1]", token=b.token), 400, "bad_request")
    # and a value too large is a body problem too, before the store
    srv = ctx.start("--max-body", "1000", "--max-value", "100")
    c2 = ctx.client(srv)
    x, y = c2.session(), c2.session()
    expect_status(c2.put_name("k", 1, x.token), 201)
    expect_error(c2.put_name("k", "v" * 200, y.token), 413, "payload_too_large")
    srv.stop_clean()


@test
def test_check_order_delete(ctx):
    c = ctx.client()
    k = ctx.uid()
    expect_error(c.delete("/v1/names/%1F"), 400, "invalid_key")
    expect_error(c.delete("/v1/names/", token=UNKNOWN_TOKEN), 400, "invalid_key")
    expect_error(c.delete_name(k), 401, "missing_token")  # absent name: token first
    expect_error(c.delete_name(k, UNKNOWN_TOKEN), 403, "bad_token")


@test
def test_name_race_one_winner(ctx):
    c = ctx.client()
    k = ctx.uid()
    sessions = [c.session() for _ in range(20)]
    barrier = threading.Barrier(20)
    results = [None] * 20

    def run(i):
        cl = ctx.client()
        barrier.wait(5)
        results[i] = cl.put_name(k, i, sessions[i].token)
    ts = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(15)
    statuses = sorted(r.status for r in results)
    eq(statuses, [201] + [409] * 19, "statuses of 20 racing PUTs")
    win = next(i for i, r in enumerate(results) if r.status == 201)
    for r in results:
        if r.status == 409:
            eq(expect_error(r, 409, "name_taken")["owner"], sessions[win].id, "owner")
    eq(expect_json(c.get_name(k), 200), {"key": k, "session": sessions[win].id, "value": win}, "winner")


# ---- keys


@test
def test_key_with_slashes(ctx):
    c = ctx.client()
    u = ctx.uid()
    s = c.session()
    k = f"session/{u}/123"
    b = expect_json(c.put(f"/v1/names/session/{u}/123", {"value": 1}, token=s.token), 201)
    eq(b["key"], k, "key")
    eq(expect_json(c.get(f"/v1/names/session%2F{u}%2f123"), 200)["key"], k, "%2F is /")
    b = expect_json(c.put(f"/v1/names/session%2F{u}/123", {"value": 2}, token=s.token), 200)
    eq(b["value"], 2, "%2F PUT replaces the same name")
    expect_status(c.delete(f"/v1/names/session%2F{u}%2F123", token=s.token), 204)
    expect_error(c.get(f"/v1/names/session/{u}/123"), 404, "name_not_found")


@test
def test_key_double_slash_is_distinct(ctx):
    c = ctx.client()
    u = ctx.uid()
    s = c.session()
    expect_status(c.put(f"/v1/names/{u}//a", {"value": 1}, token=s.token), 201)
    eq(expect_json(c.get(f"/v1/names/{u}//a"), 200)["key"], f"{u}//a", "key with //")
    expect_error(c.get(f"/v1/names/{u}/a"), 404, "name_not_found")


@test
def test_key_percent_decoding(ctx):
    c = ctx.client()
    u = ctx.uid()
    s = c.session()
    cases = [
        (f"{u}-caf%C3%A9", f"{u}-caf\u00e9"),
        (f"{u}-a%20b", f"{u}-a b"),
        (f"{u}-a+b", f"{u}-a+b"),          # + in a path is a plus
        (f"{u}-q%3Fx%3Dy", f"{u}-q?x=y"),   # ?, = encoded belong to the key
        (f"{u}-pct%25", f"{u}-pct%"),
        (f"{u}-%F0%9F%98%80", f"{u}-\U0001F600"),
        (f"{u}-%e2%82%ac", f"{u}-\u20ac"),  # lower-case hex digits
    ]
    for raw, key in cases:
        b = expect_json(c.put(f"/v1/names/{raw}", {"value": raw}, token=s.token), 201)
        eq(b["key"], key, f"key of /v1/names/{raw}")
        b = expect_json(c.get(name_path(key)), 200)
        eq((b["key"], b["value"]), (key, raw), f"read back {key!r}")
    r = c.get_name(f"{u}-caf\u00e9")
    check("\u00e9".encode() in r.body, f"é not served as UTF-8 in the raw body: {r.body[:120]!r}")


@test
def test_key_query_not_part_of_key(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    expect_status(c.put(f"/v1/names/{k}?foo=bar", {"value": 1}, token=s.token), 201)
    eq(expect_json(c.get(f"/v1/names/{k}?unknown=1&x"), 200)["key"], k, "key without the query")


@test
def test_invalid_keys(ctx):
    c = ctx.client()
    s = c.session()
    bad = ["%00", "a%00b", "%1F", "a%0Ab", "%7F", "%FF", "%C3%28", "%C3", "%E2%82",
           "%C0%AF", "%ED%A0%80", "%F4%90%80%80", "%G1", "a%", "%", "%2", "a%zz"]
    for raw in bad:
        p = f"/v1/names/{raw}"
        expect_error(c.get(p), 400, "invalid_key")
        expect_error(c.put(p, {"value": 1}, token=s.token), 400, "invalid_key")
        expect_error(c.delete(p, token=s.token), 400, "invalid_key")
    eq(c.get_session(s.id).json["names"], 0, "nothing registered by invalid keys")


@test
def test_empty_key(ctx):
    c = ctx.client()
    s = c.session()
    expect_error(c.get("/v1/names/"), 400, "invalid_key")
    expect_error(c.put("/v1/names/", {"value": 1}, token=s.token), 400, "invalid_key")
    expect_error(c.delete("/v1/names/", token=s.token), 400, "invalid_key")
    expect_error(c.get("/v1/names/?wait=1"), 400, "invalid_key")


@test
def test_key_length_limit(ctx):
    c = ctx.client()
    s = c.session()
    u = ctx.uid()
    k512 = (u + "k" * 512)[:512]
    eq(expect_json(c.put_name(k512, 1, s.token), 201)["key"], k512, "512-byte key")
    eq(expect_json(c.get_name(k512), 200)["key"], k512, "512-byte key read")
    expect_error(c.put_name(k512 + "k", 1, s.token), 400, "invalid_key")
    expect_error(c.get_name(k512 + "k"), 400, "invalid_key")
    # bytes, not characters
    k2 = u + "\u00e9" * ((512 - len(u)) // 2)
    k2 += "k" * (512 - len(k2.encode()))
    eq(len(k2.encode()), 512, "test key length")
    expect_status(c.put_name(k2, 1, s.token), 201)
    expect_error(c.put_name(k2[:-1] + "\u00e9", 1, s.token), 400, "invalid_key")


# ---- values

VALUES = [None, True, False, 0, -1, 3.25, -1.5e10, 1e-7, "", "text",
          "tab\t nl\n quote\" backslash\\ ctrl\u0001 \u00e9 \U0001F600",
          [], {}, [1, "two", [3], {"four": 4}], {"a": {"b": {"c": [None, True]}}},
          {"unicode key \u00e9": "v", "": ""}]


@test
def test_values_round_trip(ctx):
    c = ctx.client()
    u = ctx.uid()
    s = c.session()
    for i, v in enumerate(VALUES):
        k = f"{u}/{i}"
        eq(expect_json(c.put_name(k, v, s.token), 201)["value"], v, f"PUT echo of {v!r}")
        eq(expect_json(c.get_name(k), 200)["value"], v, f"GET of {v!r}")
    # the listing serves the same values
    names = expect_json(c.get(f"/v1/names?prefix={u}/&limit=1000"), 200)["names"]
    got = {e["key"]: e["value"] for e in names}
    eq(got, {f"{u}/{i}": v for i, v in enumerate(VALUES)}, "values in the listing")


@test
def test_value_raw_json_kept(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    raw = '{"value": {"big": 12345678901234567890123, "neg": -98765432109876543210, "f": 1.000000000000000000001}}'
    r = c.put_name(k, token=s.token, raw=raw)
    expect_status(r, 201)
    for resp in (r, c.get_name(k), c.get(f"/v1/names?prefix={k}")):
        expect_status(resp, 200 if resp is not r else 201)
        for digits in [b"12345678901234567890123", b"-98765432109876543210"]:
            check(digits in resp.body, f"{resp.method} {resp.path}: {digits!r} not served back: {resp.body[:200]!r}")
    eq(c.get_name(k).json["value"]["big"], 12345678901234567890123, "parsed")


@test
def test_value_escapes_served_as_valid_json(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    raw = r'{"value": "\u0000\u001f\ud83d\ude00\"\\\/\b\f\n\r\t"}'
    expect_status(c.put_name(k, token=s.token, raw=raw), 201)
    r = c.get_name(k)
    eq(expect_json(r, 200)["value"], '\x00\x1f\U0001F600"\\/\b\f\n\r\t', "decoded value")


@test
def test_value_limit_default(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    ok = "v" * (65536 - 2)  # 65536 bytes once serialized with its quotes
    r = c.put_name(k, ok, s.token)
    eq(expect_json(r, 201)["value"], ok, "64 KiB value")
    expect_error(c.put_name(k, ok + "v", s.token), 413, "payload_too_large")
    eq(expect_json(c.get_name(k), 200)["value"], ok, "value unchanged after a 413")


@test
def test_value_limit_flag(ctx):
    srv = ctx.start("--max-body", "1000", "--max-value", "100")
    c = ctx.client(srv)
    s = c.session()
    expect_status(c.put_name("a", "x" * 98, s.token), 201)    # 100 bytes
    expect_error(c.put_name("b", "x" * 99, s.token), 413, "payload_too_large")
    expect_error(c.put_name("b", list(range(40)), s.token), 413, "payload_too_large")
    expect_error(c.get_name("b"), 404, "name_not_found")
    expect_status(c.put_name("a", 1, s.token), 200)
    expect_error(c.put_name("a", "x" * 99, s.token), 413, "payload_too_large")
    eq(c.get_name("a").json["value"], 1, "value kept after a 413 replace")
    srv.stop_clean()


@test
def test_names_held_per_session(ctx):
    c = ctx.client()
    u = ctx.uid()
    a, b = c.session(), c.session()
    for i in range(5):
        expect_status(c.put_name(f"{u}/a{i}", i, a.token), 201)
    expect_status(c.put_name(f"{u}/b", 0, b.token), 201)
    eq(c.get_session(a.id).json["names"], 5, "a's count")
    eq(c.get_session(b.id).json["held"]["names"], [f"{u}/b"], "b's names")
    expect_status(c.delete_session(a.id, a.token), 204)
    names = expect_json(c.get(f"/v1/names?prefix={u}/"), 200)["names"]
    eq([e["key"] for e in names], [f"{u}/b"], "names left after deleting a")


@test
def test_value_reprinted_compactly_or_raw_is_json(ctx):
    # whitespace and key order inside a value: whatever comes back is the
    # same JSON value, and the response as a whole is valid JSON
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    raw = '{"value" :\n\t{ "z" : [ 1 , 2 ] ,\r\n "a" : { } }\n}\n'
    b = expect_json(c.put_name(k, token=s.token, raw=raw), 201)
    eq(b["value"], {"z": [1, 2], "a": {}}, "value")
    json.loads(c.get_name(k).body)


@test
def test_value_limit_counts_the_value_as_kept(ctx):
    """--max-value applies to the value once serialized (kept minified): white
    space between tokens does not count."""
    srv = ctx.start("--max-value", "20")
    c = ctx.client(srv)
    s = c.session()
    k = ctx.uid()
    raw = '{"value": {"a": 1,   "b": [1, 2]}}'  # 17 bytes minified, 24 as sent
    b = expect_json(c.put_name(k, token=s.token, raw=raw), 201)
    eq(b["value"], {"a": 1, "b": [1, 2]}, "value")
    expect_error(c.put_name(k + "x", {"a": "x" * 20}, s.token), 413, "payload_too_large")
