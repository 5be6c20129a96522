"""Sessions: create, get, heartbeat, delete, listing, check order."""

import threading

from harness import (HEX16, HEX32, check, eq, expect_error, expect_json,
                     expect_no_body, expect_status, test)

FIELDS = {"id", "label", "ttl", "expires_in_ms", "names", "props", "groups", "queued"}
UNKNOWN_ID = "0123456789abcdef"
UNKNOWN_TOKEN = "0" * 32


@test
def test_create_without_body(ctx):
    c = ctx.client()
    r = c.post("/v1/sessions")
    b = expect_json(r, 201)
    eq(set(b), {"id", "token", "ttl", "label", "expires_in_ms"}, "fields")
    check(HEX16.fullmatch(b["id"] or ""), f"id {b['id']!r} is not 16 lowercase hex")
    check(HEX32.fullmatch(b["token"] or ""), f"token {b['token']!r} is not 32 lowercase hex")
    eq(b["ttl"], 15, "default ttl")
    eq(b["label"], None, "label without one")
    check(isinstance(b["expires_in_ms"], int) and 14000 <= b["expires_in_ms"] <= 15000,
          f"expires_in_ms {b['expires_in_ms']!r}")


@test
def test_create_with_ttl_and_label(ctx):
    c = ctx.client()
    b = expect_json(c.post("/v1/sessions", {"ttl": 42, "label": "api@host-3"}), 201)
    eq((b["ttl"], b["label"]), (42, "api@host-3"), "ttl, label")
    check(41000 <= b["expires_in_ms"] <= 42000, f"expires_in_ms {b['expires_in_ms']}")
    g = expect_json(c.get_session(b["id"]), 200)
    eq((g["ttl"], g["label"]), (42, "api@host-3"), "ttl, label read back")


@test
def test_create_empty_body_and_form_content_type(ctx):
    c = ctx.client()
    expect_json(c.post("/v1/sessions", raw=b""), 201)
    b = expect_json(c.post("/v1/sessions", raw='{"ttl": 9}',
                           content_type="application/x-www-form-urlencoded"), 201)
    eq(b["ttl"], 9, "ttl sent as form content type")
    b = expect_json(c.post("/v1/sessions", raw='{"ttl": 8}', content_type="text/plain"), 201)
    eq(b["ttl"], 8, "ttl sent as text/plain")
    b = expect_json(c.post("/v1/sessions", raw='{"ttl": 7}', content_type=None), 201)
    eq(b["ttl"], 7, "ttl sent without content type")


@test
def test_create_ttl_bounds(ctx):
    c = ctx.client()
    eq(expect_json(c.post("/v1/sessions", {"ttl": 1}), 201)["ttl"], 1, "ttl 1")
    eq(expect_json(c.post("/v1/sessions", {"ttl": 3600}), 201)["ttl"], 3600, "ttl 3600")


@test
def test_create_invalid_ttl(ctx):
    c = ctx.client()
    for bad in ["0", "3601", '"15"', "1.5", "-1", "null", "true", "[]", "{}", "99999999999999999999"]:
        expect_error(c.post("/v1/sessions", raw='{"ttl": %s}' % bad), 400, "invalid_ttl")


@test
def test_create_bad_label(ctx):
    c = ctx.client()
    for bad in [5, True, [], {}, ["a"]]:
        expect_error(c.post("/v1/sessions", {"label": bad}), 400, "bad_request")
    expect_error(c.post("/v1/sessions", {"label": "x" * 257}), 400, "bad_request")
    # 256 bytes, not characters: 128 two-byte characters fit, one more byte does not
    b = expect_json(c.post("/v1/sessions", {"label": "\u00e9" * 128}), 201)
    eq(b["label"], "\u00e9" * 128, "256-byte label")
    eq(expect_json(c.post("/v1/sessions", {"label": "x" * 256}), 201)["label"], "x" * 256, "label")
    expect_error(c.post("/v1/sessions", {"label": "\u00e9" * 128 + "a"}), 400, "bad_request")
    # U+0000 would cut the label short in C: refused, not truncated
    expect_error(c.post("/v1/sessions", raw=r'{"label": "a\u0000b"}'), 400, "bad_request")
    # an escaped backslash followed by "u0000" is plain text
    b = expect_json(c.post("/v1/sessions", raw=r'{"label": "a\\u0000b"}'), 201)
    eq(b["label"], "a\\u0000b", "escaped backslash kept")


@test
def test_create_label_escapes_decoded(ctx):
    c = ctx.client()
    b = expect_json(c.post("/v1/sessions", raw=r'{"label": "caf\u00e9 \/ \"q\" \ud83d\ude00"}'), 201)
    eq(b["label"], 'caf\u00e9 / "q" \U0001F600', "decoded label")
    eq(c.get_session(b["id"]).json["label"], 'caf\u00e9 / "q" \U0001F600', "label read back")


@test
def test_create_unknown_fields_ignored(ctx):
    c = ctx.client()
    b = expect_json(c.post("/v1/sessions", {"ttl": 5, "colour": "blue", "nested": {"a": [1]}}), 201)
    eq(b["ttl"], 5, "ttl")


@test
def test_create_body_not_object(ctx):
    c = ctx.client()
    for raw in ["[]", "5", '"x"', "null", "true", '[{"ttl": 5}]']:
        expect_error(c.post("/v1/sessions", raw=raw), 400, "bad_request")


@test
def test_create_duplicate_keys(ctx):
    c = ctx.client()
    expect_error(c.post("/v1/sessions", raw='{"ttl": 5, "ttl": 6}'), 400, "bad_request")
    expect_error(c.post("/v1/sessions", raw='{"label": "a", "ttl": 5, "label": "b"}'), 400, "bad_request")


@test
def test_ids_and_tokens_unique(ctx):
    ids, tokens = set(), set()
    lock = threading.Lock()

    def worker():
        c = ctx.client()
        for _ in range(25):
            s = c.session(ttl=30)
            with lock:
                ids.add(s.id)
                tokens.add(s.token)
    ts = [threading.Thread(target=worker) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    eq(len(ids), 200, "distinct ids among 200 sessions")
    eq(len(tokens), 200, "distinct tokens among 200 sessions")
    check(not ids & tokens, "an id equals a token")


@test
def test_get_session_fields(ctx):
    c = ctx.client()
    u = ctx.uid()
    s = c.session(ttl=60, label="lbl")
    for k in [f"{u}/b", f"{u}/a", f"{u}/C", f"{u}/\u00e9", f"{u}/a/z"]:
        expect_status(c.put_name(k, 1, s.token), 201)
    r = c.get_session(s.id)
    b = expect_json(r, 200)
    eq(set(b), FIELDS | {"held"}, "fields")
    eq(b["id"], s.id, "id")
    eq(b["label"], "lbl", "label")
    eq(b["ttl"], 60, "ttl")
    check(isinstance(b["expires_in_ms"], int) and 0 < b["expires_in_ms"] <= 60000,
          f"expires_in_ms {b['expires_in_ms']!r}")
    eq((b["names"], b["props"], b["groups"], b["queued"]), (5, 0, 0, 0), "counts")
    want = sorted([f"{u}/b", f"{u}/a", f"{u}/C", f"{u}/\u00e9", f"{u}/a/z"], key=lambda k: k.encode())
    eq(b["held"], {"names": want, "props": [], "groups": []}, "held")
    check(s.token not in r.text, "GET /v1/sessions/{id} shows the token")
    # with the token too: still no token in it
    r = c.get_session(s.id, token=s.token)
    check(s.token not in expect_json(r, 200) and s.token not in r.text, "token shown")


@test
def test_get_session_label_null(ctx):
    c = ctx.client()
    s = c.session()
    eq(expect_json(c.get_session(s.id), 200)["label"], None, "label")


@test
def test_get_unknown_session(ctx):
    c = ctx.client()
    expect_error(c.get_session(UNKNOWN_ID), 404, "session_not_found")
    expect_error(c.get_session("nothex"), 404, "session_not_found")


@test
def test_heartbeat(ctx):
    c = ctx.client()
    s = c.session(ttl=20)
    b = expect_json(c.heartbeat(s.id, s.token), 200)
    eq(set(b), {"id", "ttl", "expires_in_ms"}, "fields")
    eq((b["id"], b["ttl"]), (s.id, 20), "id, ttl")
    check(19000 <= b["expires_in_ms"] <= 20000, f"expires_in_ms {b['expires_in_ms']}")
    expect_json(c.heartbeat(s.id, s.token, raw=b""), 200)


@test
def test_heartbeat_changes_ttl(ctx):
    c = ctx.client()
    s = c.session(ttl=20)
    b = expect_json(c.heartbeat(s.id, s.token, {"ttl": 300}), 200)
    eq(b["ttl"], 300, "new ttl")
    check(299000 <= b["expires_in_ms"] <= 300000, f"expires_in_ms {b['expires_in_ms']}")
    eq(c.get_session(s.id).json["ttl"], 300, "ttl read back")
    b = expect_json(c.heartbeat(s.id, s.token), 200)
    eq(b["ttl"], 300, "ttl kept by a heartbeat without body")


@test
def test_heartbeat_invalid_ttl(ctx):
    c = ctx.client()
    s = c.session(ttl=20)
    for bad in ["0", "3601", '"5"', "1.5", "-1", "null"]:
        expect_error(c.heartbeat(s.id, s.token, raw='{"ttl": %s}' % bad), 400, "invalid_ttl")
    eq(c.get_session(s.id).json["ttl"], 20, "ttl unchanged after invalid heartbeats")


@test
def test_heartbeat_bad_body(ctx):
    c = ctx.client()
    s = c.session()
    for raw in ["{", "[]", '{"ttl": 5} x', '{"ttl": 5, "ttl": 6}']:
        expect_error(c.heartbeat(s.id, s.token, raw=raw), 400, "bad_request")


@test
def test_heartbeat_token_errors(ctx):
    c = ctx.client()
    s, other = c.session(), c.session()
    expect_error(c.heartbeat(s.id), 401, "missing_token")
    expect_error(c.heartbeat(s.id, other.token), 403, "bad_token")
    expect_error(c.heartbeat(s.id, UNKNOWN_TOKEN), 403, "bad_token")
    expect_error(c.heartbeat(s.id, "garbage"), 403, "bad_token")
    # the token is checked before the body
    expect_error(c.heartbeat(s.id, raw="{"), 401, "missing_token")
    expect_error(c.heartbeat(s.id, other.token, raw='{"ttl": 0}'), 403, "bad_token")


@test
def test_session_paths_look_up_id_first(ctx):
    c = ctx.client()
    other = c.session()
    for tok in [None, other.token, UNKNOWN_TOKEN]:
        expect_error(c.heartbeat(UNKNOWN_ID, tok), 404, "session_not_found")
        expect_error(c.delete_session(UNKNOWN_ID, tok), 404, "session_not_found")
        expect_error(c.get_session(UNKNOWN_ID, token=tok), 404, "session_not_found")
    expect_error(c.heartbeat(UNKNOWN_ID, None, raw="{"), 404, "session_not_found")


@test
def test_delete_session(ctx):
    c = ctx.client()
    u = ctx.uid()
    s = c.session()
    for k in ["a", "b", "c"]:
        expect_status(c.put_name(f"{u}/{k}", k, s.token), 201)
    expect_no_body(c.delete_session(s.id, s.token), 204)
    for k in ["a", "b", "c"]:
        expect_error(c.get_name(f"{u}/{k}"), 404, "name_not_found")
    expect_error(c.get_session(s.id), 404, "session_not_found")
    expect_error(c.delete_session(s.id, s.token), 404, "session_not_found")
    expect_error(c.heartbeat(s.id, s.token), 404, "session_not_found")
    expect_error(c.put_name(f"{u}/d", 1, s.token), 403, "bad_token")
    # the names are free for another session
    t = c.session()
    expect_status(c.put_name(f"{u}/a", 2, t.token), 201)


@test
def test_delete_session_token_errors(ctx):
    c = ctx.client()
    s, other = c.session(), c.session()
    expect_error(c.delete_session(s.id), 401, "missing_token")
    expect_error(c.delete_session(s.id, other.token), 403, "bad_token")
    expect_error(c.delete_session(s.id, UNKNOWN_TOKEN), 403, "bad_token")
    expect_json(c.get_session(s.id), 200)  # still there
    expect_json(c.get_session(other.id), 200)


@test
def test_list_sessions_fields_and_counts(ctx):
    c = ctx.client()
    u = ctx.uid()
    s = c.session(ttl=77, label="listed")
    for k in ["x", "y"]:
        expect_status(c.put_name(f"{u}/{k}", None, s.token), 201)
    after = format(int(s.id, 16) - 1, "016x") if s.id != "0" * 16 else ""
    r = c.get(f"/v1/sessions?after={after}&limit=1")
    b = expect_json(r, 200)
    eq(set(b), {"sessions", "next"}, "fields")
    eq(len(b["sessions"]), 1, "page size")
    e = b["sessions"][0]
    eq(set(e), FIELDS, "entry fields")
    eq(e["id"], s.id, "id")
    eq((e["label"], e["ttl"], e["names"], e["props"], e["groups"], e["queued"]),
       ("listed", 77, 2, 0, 0, 0), "label, ttl, counts")
    check(0 < e["expires_in_ms"] <= 77000, f"expires_in_ms {e['expires_in_ms']}")
    check(s.token not in r.text, "listing shows a token")


def _walk_sessions(c, limit, extra=""):
    """All pages of GET /v1/sessions; checks next and order; returns ids."""
    seen, after, pages = [], None, 0
    while True:
        path = f"/v1/sessions?limit={limit}{extra}" + (f"&after={after}" if after else "")
        b = expect_json(c.get(path), 200)
        ids = [e["id"] for e in b["sessions"]]
        check(len(ids) <= limit, f"{path}: {len(ids)} entries over limit")
        check(ids == sorted(ids) and len(set(ids)) == len(ids), f"{path}: page not sorted by id")
        if after:
            check(all(i > after for i in ids), f"{path}: entries not after {after}")
        seen += ids
        pages += 1
        if b["next"] is None:
            return seen, pages
        eq(b["next"], ids[-1] if ids else None, f"{path}: next is the page's last id")
        eq(len(ids), limit, f"{path}: a page followed by more is full")
        after = b["next"]
        check(pages < 1000, "too many pages")


@test
def test_list_sessions_pages(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    made = {c.session().id for _ in range(25)}
    seen, pages = _walk_sessions(c, 10)
    eq(sorted(seen), sorted(made), "sessions seen walking pages of 10")
    eq(pages, 3, "pages of 10 for 25 sessions")
    seen, pages = _walk_sessions(c, 5)
    eq((len(seen), pages), (25, 5), "25 sessions in pages of 5: count, pages")
    seen, pages = _walk_sessions(c, 1)
    eq(len(seen), 25, "pages of 1")
    for limit in ["0", "1001", "1000"]:
        b = expect_json(c.get(f"/v1/sessions?limit={limit}"), 200)
        eq((len(b["sessions"]), b["next"]), (25, None), f"limit={limit}")
    b = expect_json(c.get("/v1/sessions"), 200)
    eq((len(b["sessions"]), b["next"]), (25, None), "no limit")
    srv.stop_clean()


@test
def test_list_sessions_after(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    ids = sorted(c.session().id for _ in range(6))
    b = expect_json(c.get(f"/v1/sessions?after={ids[2]}"), 200)
    eq([e["id"] for e in b["sessions"]], ids[3:], "after the third id")
    # after a string between ids continues at the next one
    mid = ids[2] + "0"
    b = expect_json(c.get(f"/v1/sessions?after={mid}"), 200)
    eq([e["id"] for e in b["sessions"]], ids[3:], "after a non-id between ids")
    b = expect_json(c.get(f"/v1/sessions?after={ids[-1]}"), 200)
    eq(b, {"sessions": [], "next": None}, "after the last id")
    b = expect_json(c.get("/v1/sessions?after=g"), 200)
    eq(b, {"sessions": [], "next": None}, "after 'g' (above all hex)")
    # exactly limit left: next is null
    b = expect_json(c.get(f"/v1/sessions?after={ids[2]}&limit=3"), 200)
    eq(b["next"], None, "next when exactly limit entries remain")
    b = expect_json(c.get(f"/v1/sessions?after={ids[1]}&limit=3"), 200)
    eq(b["next"], ids[4], "next when one more remains")
    srv.stop_clean()


@test
def test_list_sessions_walk_under_churn(ctx):
    # on the shared server, with other tests creating sessions: every
    # session of ours is seen exactly once
    c = ctx.client()
    mine = {c.session(ttl=60).id for _ in range(30)}
    seen, _ = _walk_sessions(c, 7)
    eq(len(seen), len(set(seen)), "a session seen twice")
    missing = mine - set(seen)
    check(not missing, f"{len(missing)} sessions missing from the walk")


@test
def test_list_sessions_bad_limit(ctx):
    c = ctx.client()
    for bad in ["-1", "1.5", "abc", "", "1e2", "0x10", "+1", "%2B1", "1%20"]:
        expect_error(c.get(f"/v1/sessions?limit={bad}"), 400, "bad_request")


@test
def test_list_sessions_deleted_not_listed(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    a, b = c.session(), c.session()
    expect_status(c.delete_session(a.id, a.token), 204)
    ids = [e["id"] for e in expect_json(c.get("/v1/sessions"), 200)["sessions"]]
    eq(ids, [b.id], "listed ids after a delete")
    srv.stop_clean()
