"""Properties (non-unique): set, replace, read holders, remove, listing, and
their release with the session (delete and expiry), counts and the index."""

import time

from harness import (check, eq, expect_error, expect_json, expect_no_body,
                     expect_status, q, test)

UNKNOWN_TOKEN = "0" * 32


def prop_path(key):
    """Path of a property; key is a str (percent-encoded here, '/' kept)."""
    return "/v1/props/" + q(key, safe="/")


def group_path(group):
    return "/v1/groups/" + q(group, safe="/")


def put_prop(c, key, value=None, token=None, *, no_body=False, **kw):
    """PUT /v1/props/{key} with {"value": value} (or no body, or raw=)."""
    if no_body or "raw" in kw:
        r = c.put(prop_path(key), token=token, **kw)
    else:
        r = c.put(prop_path(key), {"value": value}, token=token, **kw)
    r.index  # every /v1 answer carries X-Rollcall-Index
    return r


def get_prop(c, key):
    r = c.get(prop_path(key))
    r.index
    return r


def delete_prop(c, key, token=None):
    r = c.delete(prop_path(key), token=token)
    r.index
    return r


def holders(c, key):
    """[(session, value)] of a property, checking the answer's shape."""
    b = expect_json(get_prop(c, key), 200)
    eq(set(b), {"key", "holders"}, f"GET {key!r} fields")
    eq(b["key"], key, "key in GET")
    for h in b["holders"]:
        eq(set(h), {"session", "value"}, "holder fields")
    return [(h["session"], h["value"]) for h in b["holders"]]


def listing(c, query):
    r = c.get("/v1/props?" + query)
    b = expect_json(r, 200)
    r.index
    eq(set(b), {"props", "next"}, "listing fields")
    for e in b["props"]:
        eq(set(e), {"key", "holders"}, "listing entry fields")
    return [(e["key"], e["holders"]) for e in b["props"]], b["next"]


class Index:
    """Follows X-Rollcall-Index on a server of the test's own."""

    def __init__(self, c):
        self.c = c
        self.value = c.get("/v1/props?limit=1").index

    def step(self, delta, what, r=None):
        got = r.index if r is not None else self.c.get("/v1/props?limit=1").index
        eq(got - self.value, delta, f"index change after {what}")
        self.value = got


# ---- set, replace, read


@test
def test_set_read_replace_keeps_place(ctx):
    c = ctx.client()
    k = ctx.uid()
    a, b, d = c.session(), c.session(), c.session()
    r = put_prop(c, k, {"addr": "10.0.0.1:80"}, a.token)
    eq(expect_json(r, 201), {"key": k, "session": a.id, "value": {"addr": "10.0.0.1:80"}}, "201 body")
    eq(expect_json(put_prop(c, k, "b1", b.token), 201), {"key": k, "session": b.id, "value": "b1"}, "b's 201")
    eq(expect_json(put_prop(c, k, 3, d.token), 201), {"key": k, "session": d.id, "value": 3}, "d's 201")
    eq(holders(c, k), [(a.id, {"addr": "10.0.0.1:80"}), (b.id, "b1"), (d.id, 3)], "holders")
    # b replaces its value: 200, same place
    eq(expect_json(put_prop(c, k, [1, 2], b.token), 200), {"key": k, "session": b.id, "value": [1, 2]},
       "200 body (replaced)")
    eq(holders(c, k), [(a.id, {"addr": "10.0.0.1:80"}), (b.id, [1, 2]), (d.id, 3)], "after b's replace")
    # the first one replaces too: still first
    expect_status(put_prop(c, k, None, a.token), 200)
    eq(holders(c, k), [(a.id, None), (b.id, [1, 2]), (d.id, 3)], "after a's replace")
    eq(listing(c, f"prefix={q(k)}"), ([(k, 3)], None), "one key, three holders")


@test
def test_set_without_body_value_null(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    eq(expect_json(put_prop(c, k, token=s.token, no_body=True), 201),
       {"key": k, "session": s.id, "value": None}, "no body")
    eq(expect_json(put_prop(c, k, token=s.token, raw="{}"), 200)["value"], None, "{} body")
    eq(expect_json(put_prop(c, k, token=s.token, raw=""), 200)["value"], None, "empty body")
    eq(expect_json(put_prop(c, k + "x", token=s.token, raw='{"other": 1}'), 201)["value"], None,
       "body without value")
    r = put_prop(c, k + "y", token=s.token, raw='{"value": "curl -d"}',
                 content_type="application/x-www-form-urlencoded")
    eq(expect_json(r, 201)["value"], "curl -d", "form content type")
    eq(holders(c, k), [(s.id, None)], "holders")


@test
def test_values_round_trip(ctx):
    c = ctx.client()
    k = ctx.uid()
    vals = [None, True, 0, -1.5, "", "t\u00e9xt \U0001F600 \"q\" \\ \n", [], {}, [1, {"a": [None]}]]
    ss = [c.session() for _ in vals]
    for s, v in zip(ss, vals):
        eq(expect_json(put_prop(c, k, v, s.token), 201)["value"], v, f"PUT echo of {v!r}")
    eq(holders(c, k), [(s.id, v) for s, v in zip(ss, vals)], "values read back")


@test
def test_get_unheld_key_empty(ctx):
    c = ctx.client()
    k = ctx.uid()
    eq(holders(c, k), [], "never held")
    s = c.session()
    expect_status(put_prop(c, k, 1, s.token), 201)
    expect_no_body(delete_prop(c, k, s.token), 204)
    eq(holders(c, k), [], "after the last holder removed it")
    eq(listing(c, f"prefix={q(k)}"), ([], None), "key gone from the listing")


@test
def test_holders_in_registration_order(ctx):
    c = ctx.client()
    k = ctx.uid()
    ss = [c.session() for _ in range(6)]
    for i in [3, 0, 5, 1, 4, 2]:
        expect_status(put_prop(c, k, i, ss[i].token), 201)
    want = [(ss[i].id, i) for i in [3, 0, 5, 1, 4, 2]]
    eq(holders(c, k), want, "registration order (not id order)")
    # one in the middle leaves and comes back: it goes to the end
    expect_status(delete_prop(c, k, ss[5].token), 204)
    eq(holders(c, k), [h for h in want if h[0] != ss[5].id], "after 5 left")
    expect_status(put_prop(c, k, "again", ss[5].token), 201)
    eq(holders(c, k), [h for h in want if h[0] != ss[5].id] + [(ss[5].id, "again")], "5 back at the end")


# ---- remove


@test
def test_delete_prop(ctx):
    c = ctx.client()
    k = ctx.uid()
    a, b, d = c.session(), c.session(), c.session()
    expect_status(put_prop(c, k, "a", a.token), 201)
    expect_status(put_prop(c, k, "b", b.token), 201)
    # d holds nothing, though others hold the key
    expect_error(delete_prop(c, k, d.token), 404, "not_held")
    expect_error(delete_prop(c, ctx.uid(), d.token), 404, "not_held")
    expect_no_body(delete_prop(c, k, a.token), 204)
    eq(holders(c, k), [(b.id, "b")], "b still holds it")
    expect_error(delete_prop(c, k, a.token), 404, "not_held")
    eq(c.get_session(a.id).json["props"], 0, "a's count after delete")
    eq(c.get_session(b.id).json["props"], 1, "b's count")


@test
def test_token_errors(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    expect_error(put_prop(c, k, 1), 401, "missing_token")
    expect_error(put_prop(c, k, 1, UNKNOWN_TOKEN), 403, "bad_token")
    expect_error(put_prop(c, k, 1, "x"), 403, "bad_token")
    eq(holders(c, k), [], "nothing set by refused PUTs")
    expect_status(put_prop(c, k, 1, s.token), 201)
    expect_error(delete_prop(c, k), 401, "missing_token")
    expect_error(delete_prop(c, k, UNKNOWN_TOKEN), 403, "bad_token")
    expect_error(delete_prop(c, ctx.uid()), 401, "missing_token")
    eq(holders(c, k), [(s.id, 1)], "still held after refused DELETEs")
    # a deleted session's token is refused too
    expect_status(c.delete_session(s.id, s.token), 204)
    expect_error(put_prop(c, k, 2, s.token), 403, "bad_token")
    expect_error(delete_prop(c, k, s.token), 403, "bad_token")


# ---- keys


@test
def test_invalid_keys(ctx):
    c = ctx.client()
    s = c.session()
    keep = ctx.uid()
    expect_status(put_prop(c, keep, "kept", s.token), 201)
    bad = ["", "%00", "a%00b", "%1F", "a%0Ab", "%7F", "%FF", "%C3%28", "%C3", "%ED%A0%80", "%C0%AF",
           "%G1", "a%", "k" * 513, "%C3%A9" * 256 + "k"]
    for raw in bad:
        p = "/v1/props/" + raw
        for r in (c.get(p), c.put(p, {"value": 1}, token=s.token), c.delete(p, token=s.token)):
            expect_error(r, 400, "invalid_key")
            r.index
    # the key is checked before the token and the body
    expect_error(c.put("/v1/props/%00", raw="{"), 400, "invalid_key")
    expect_error(c.delete("/v1/props/", token=UNKNOWN_TOKEN), 400, "invalid_key")
    eq(c.get_session(s.id).json["props"], 1, "nothing set by invalid keys")
    eq(expect_json(c.healthz(), 200), {"status": "ok"}, "healthz after bad keys")
    eq(holders(c, keep), [(s.id, "kept")], "earlier entry intact")


@test
def test_key_length_limit(ctx):
    c = ctx.client()
    s = c.session()
    u = ctx.uid()
    k512 = (u + "k" * 512)[:512]
    eq(expect_json(put_prop(c, k512, 1, s.token), 201)["key"], k512, "512-byte key")
    eq(holders(c, k512), [(s.id, 1)], "512-byte key read")
    expect_error(put_prop(c, k512 + "k", 1, s.token), 400, "invalid_key")
    expect_error(get_prop(c, k512 + "k"), 400, "invalid_key")
    expect_error(delete_prop(c, k512 + "k", s.token), 400, "invalid_key")
    k2 = u + "\u00e9" * ((512 - len(u)) // 2)
    k2 += "k" * (512 - len(k2.encode()))
    eq(len(k2.encode()), 512, "test key length")
    expect_status(put_prop(c, k2, 1, s.token), 201)
    expect_error(put_prop(c, k2[:-1] + "\u00e9", 1, s.token), 400, "invalid_key")


@test
def test_key_with_slashes(ctx):
    c = ctx.client()
    u = ctx.uid()
    a, b = c.session(), c.session()
    k = f"svc/{u}/http"
    eq(expect_json(c.put(f"/v1/props/svc/{u}/http", {"value": 1}, token=a.token), 201)["key"], k, "key")
    # %2F is the same key as /
    eq(expect_json(c.put(f"/v1/props/svc%2F{u}%2fhttp", {"value": 2}, token=b.token), 201)["key"], k,
       "%2F key")
    eq(expect_json(c.put(f"/v1/props/svc%2F{u}/http", {"value": 3}, token=a.token), 200)["value"], 3,
       "%2F PUT replaces a's entry")
    b_ = expect_json(c.get(f"/v1/props/svc%2F{u}%2Fhttp"), 200)
    eq(b_, {"key": k, "holders": [{"session": a.id, "value": 3}, {"session": b.id, "value": 2}]},
       "GET with %2F")
    expect_status(c.delete(f"/v1/props/svc%2F{u}%2Fhttp", token=a.token), 204)
    eq(holders(c, k), [(b.id, 2)], "after a's %2F delete")
    # a double slash is a different key
    eq(holders(c, f"svc/{u}//http"), [], "// is another key")
    # encoded characters in keys
    eq(expect_json(c.put(f"/v1/props/{u}-caf%C3%A9%20%3F", {"value": 1}, token=a.token), 201)["key"],
       f"{u}-caf\u00e9 ?", "decoded key")


@test
def test_bad_json(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    expect_status(put_prop(c, k, "first", s.token), 201)
    for raw in ["{", "[1]", "1", '"x"', "null", '{"value": 01}', '{"value": .5}', '{"value": +1}',
                '{"value": NaN}', '{"value": 1} x', '{"value": "a\x01b"}', '{"value": "\\x"}',
                '{"value": 1 /* c */}', '{"value": 1,}', "{'value': 1}"]:
        expect_error(put_prop(c, k, token=s.token, raw=raw), 400, "bad_request")
        expect_error(put_prop(c, k + "n", token=s.token, raw=raw), 400, "bad_request")
    expect_error(put_prop(c, k, token=s.token, raw='{"value": ' + "[" * 600 + "]" * 600 + "}"), 400,
                 "bad_request")
    eq(holders(c, k), [(s.id, "first")], "value kept after bad bodies")
    eq(holders(c, k + "n"), [], "nothing set by bad bodies")
    eq(expect_json(c.healthz(), 200), {"status": "ok"}, "healthz after bad bodies")
    # token before the body
    expect_error(put_prop(c, k, token=None, raw="{"), 401, "missing_token")
    expect_error(put_prop(c, k, token=UNKNOWN_TOKEN, raw="{"), 403, "bad_token")


@test
def test_value_limit(ctx):
    srv = ctx.start("--max-body", "1000", "--max-value", "100")
    c = ctx.client(srv)
    a, b = c.session(), c.session()
    expect_status(put_prop(c, "p", "x" * 98, a.token), 201)          # 100 bytes serialized
    expect_status(put_prop(c, "p", "b", b.token), 201)
    expect_error(put_prop(c, "q", "x" * 99, a.token), 413, "payload_too_large")
    expect_error(put_prop(c, "q", list(range(40)), a.token), 413, "payload_too_large")
    eq(holders(c, "q"), [], "nothing set by a 413")
    expect_error(put_prop(c, "p", "x" * 99, a.token), 413, "payload_too_large")
    eq(holders(c, "p"), [(a.id, "x" * 98), (b.id, "b")], "value and place kept after a 413 replace")
    # over --max-body (refused before routing: the index header is not checked here)
    expect_error(c.put(prop_path("p"), {"value": "x" * 1200}, token=a.token), 413, "payload_too_large")
    eq(expect_json(put_prop(c, "p", 1, a.token), 200)["value"], 1, "a smaller value still replaces")
    eq(expect_json(c.healthz(), 200), {"status": "ok"}, "healthz")
    srv.stop_clean()


# ---- listing


@test
def test_list_props_counts_order_pages(ctx):
    c = ctx.client()
    u = ctx.uid() + "/"
    ss = [c.session() for _ in range(3)]
    suffixes = ["b", "a", "B", "A", "0", "a/b", "a b", "ab", "\u00e9", "z", "~", "\U0001F600", "aa", "a\u00e9"]
    want = []
    for i, x in enumerate(suffixes):
        n = i % 3 + 1
        for s in ss[:n]:
            expect_status(put_prop(c, u + x, i, s.token), 201)
        want.append((u + x, n))
    want.sort(key=lambda e: e[0].encode())
    got, nxt = listing(c, f"prefix={q(u)}")
    eq((got, nxt), (want, None), "one page: keys in byte order with holder counts")
    # pages of 4
    out, after, pages = [], None, 0
    while True:
        query = f"prefix={q(u)}&limit=4" + (f"&after={q(after)}" if after is not None else "")
        page, nxt = listing(c, query)
        check(len(page) <= 4, f"{query}: over the limit")
        out += page
        pages += 1
        if nxt is None:
            break
        eq(nxt, page[-1][0], f"{query}: next is the page's last key")
        eq(len(page), 4, f"{query}: a page followed by more is full")
        after = nxt
        check(pages < 20, "too many pages")
    eq((out, pages), (want, 4), "walk by 4: entries, pages")
    eq(listing(c, f"prefix={q(u)}&limit=2&after={q(want[1][0])}"), (want[2:4], want[3][0]), "after + limit")
    eq(listing(c, f"prefix={q(u)}&after={q(want[-1][0])}"), ([], None), "after the last key")
    eq(listing(c, f"prefix={q(u + 'a')}")[0], [e for e in want if e[0].startswith(u + "a")], "prefix a")
    # counts follow removals; a key with no holder left goes
    k1 = [e[0] for e in want if e[1] == 1][0]
    k3 = [e[0] for e in want if e[1] == 3][0]
    expect_status(delete_prop(c, k3, ss[1].token), 204)
    expect_status(delete_prop(c, k1, ss[0].token), 204)
    got = dict(listing(c, f"prefix={q(u)}")[0])
    eq((got[k3], k1 in got), (2, False), "after removals: count of k3, k1 listed")


@test
def test_list_props_bad_query(ctx):
    c = ctx.client()
    for bad in ["-1", "1.5", "abc", "", "+1", "0x1"]:
        expect_error(c.get(f"/v1/props?limit={bad}"), 400, "bad_request")
    expect_error(c.get("/v1/props?prefix=%FF"), 400, "bad_request")
    r = c.get(f"/v1/props?prefix={ctx.uid()}")
    eq(expect_json(r, 200), {"props": [], "next": None}, "empty listing")
    r.index


@test
def test_list_props_limits(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session()
    keys = [f"p/{i:04d}" for i in range(1050)]
    for k in keys:
        expect_status(put_prop(c, k, None, s.token), 201)
    got, nxt = listing(c, "")
    eq((len(got), nxt), (100, keys[99]), "default limit 100: count, next")
    for lim in ["0", "1001", "1000"]:
        got, nxt = listing(c, f"limit={lim}")
        eq((len(got), nxt), (1000, keys[999]), f"limit={lim}: count, next")
        eq(got, [(k, 1) for k in keys[:1000]], f"limit={lim}: entries")
    eq(listing(c, f"limit=0&after={q(keys[999])}"), ([(k, 1) for k in keys[1000:]], None), "second page")
    srv.stop_clean()


# ---- sessions: counts, held, release


@test
def test_session_counts_and_held_sorted(ctx):
    c = ctx.client()
    u = ctx.uid()
    s = c.session()
    props = [f"{u}/b", f"{u}/a", f"{u}/\u00e9", f"{u}/B", f"{u}/a/b"]
    groups = [f"{u}/g2", f"{u}/G", f"{u}/g1"]
    for k in props:
        expect_status(put_prop(c, k, 1, s.token), 201)
    for g in groups:
        expect_status(c.put(group_path(g), {"value": 1}, token=s.token), 201)
    expect_status(c.put_name(f"{u}/name", 1, s.token), 201)
    b = expect_json(c.get_session(s.id), 200)
    eq((b["names"], b["props"], b["groups"]), (1, 5, 3), "counts")
    eq(b["held"], {"names": [f"{u}/name"],
                   "props": sorted(props, key=str.encode),
                   "groups": sorted(groups, key=str.encode)}, "held, sorted")
    lst = expect_json(c.get(f"/v1/sessions?after={s.id[:-1]}&limit=5"), 200)["sessions"]
    mine = [e for e in lst if e["id"] == s.id]
    check(mine, "session not in the listing")
    eq((mine[0]["names"], mine[0]["props"], mine[0]["groups"]), (1, 5, 3), "counts in the listing")
    expect_status(delete_prop(c, f"{u}/a", s.token), 204)
    expect_status(c.delete(group_path(f"{u}/G"), token=s.token), 204)
    b = expect_json(c.get_session(s.id), 200)
    eq((b["props"], b["groups"]), (4, 2), "counts after removals")
    eq(b["held"]["props"], sorted([p for p in props if p != f"{u}/a"], key=str.encode), "held props")
    eq(b["held"]["groups"], [f"{u}/g1", f"{u}/g2"], "held groups")


@test
def test_session_delete_releases_props_and_groups(ctx):
    c = ctx.client()
    u = ctx.uid()
    a, b = c.session(), c.session()
    for s in (a, b):
        expect_status(put_prop(c, f"{u}/shared", s.id, s.token), 201)
        expect_status(c.put(group_path(f"{u}/g"), {"value": s.id}, token=s.token), 201)
    expect_status(put_prop(c, f"{u}/only-a", 1, a.token), 201)
    expect_status(put_prop(c, f"{u}/only-a2", 1, a.token), 201)
    expect_status(c.put(group_path(f"{u}/g-only-a"), token=a.token), 201)
    expect_no_body(c.delete_session(a.id, a.token), 204)
    eq(holders(c, f"{u}/shared"), [(b.id, b.id)], "shared prop after a's delete")
    eq(holders(c, f"{u}/only-a"), [], "a's own prop")
    eq(listing(c, f"prefix={q(u)}/"), ([(f"{u}/shared", 1)], None), "props listing")
    eq(expect_json(c.get(group_path(f"{u}/g")), 200)["members"], [{"session": b.id, "value": b.id}],
       "shared group")
    eq(expect_json(c.get(group_path(f"{u}/g-only-a")), 200), {"group": f"{u}/g-only-a", "members": []},
       "a's own group")
    eq(expect_json(c.get(f"/v1/groups?prefix={q(u)}/"), 200),
       {"groups": [{"group": f"{u}/g", "members": 1}], "next": None}, "groups listing")
    bb = expect_json(c.get_session(b.id), 200)
    eq((bb["props"], bb["groups"]), (1, 1), "b's counts untouched")


@test
def test_session_expiry_releases_props_and_groups(ctx):
    c = ctx.client()
    u = ctx.uid()
    short, keep = c.session(ttl=1), c.session()
    for s in (keep, short):
        expect_status(put_prop(c, f"{u}/p", s.id, s.token), 201)
        expect_status(c.put(group_path(f"{u}/g"), {"value": s.id}, token=s.token), 201)
    expect_status(put_prop(c, f"{u}/p-short", 1, short.token), 201)
    t_last = time.monotonic()  # the last request with the short session's token
    expect_status(c.put(group_path(f"{u}/g-short"), token=short.token), 201)
    # poll the property, not the session: the lease ends on its own, no
    # lookup of the session needed (nor its token, which would renew it)
    while True:
        hs = holders(c, f"{u}/p")
        if hs == [(keep.id, keep.id)]:
            t_gone = time.monotonic()
            break
        eq(hs, [(keep.id, keep.id), (short.id, short.id)], "holders before expiry")
        check(time.monotonic() - t_last < 2.5, "ttl 1 session's property still there 2.5 s later")
        time.sleep(0.03)
    check(t_gone - t_last >= 1.0, f"released {t_gone - t_last:.2f} s after the last request, before the ttl")
    # all of it went at once
    eq(expect_json(c.get(group_path(f"{u}/g")), 200)["members"], [{"session": keep.id, "value": keep.id}],
       "group after expiry")
    eq(holders(c, f"{u}/p-short"), [], "expired session's own prop")
    eq(expect_json(c.get(group_path(f"{u}/g-short")), 200)["members"], [], "expired session's own group")
    expect_error(c.get(group_path(f"{u}/g-short") + "?pick=random"), 404, "group_empty")
    expect_error(c.get_session(short.id), 404, "session_not_found")
    eq(listing(c, f"prefix={q(u)}/"), ([(f"{u}/p", 1)], None), "props listing after expiry")
    kb = expect_json(c.get_session(keep.id), 200)
    eq((kb["props"], kb["groups"]), (1, 1), "the other session's counts")


# ---- the index


@test
def test_index_props(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    a, b = c.session(), c.session()
    ix = Index(c)
    ix.step(1, "set", put_prop(c, "k", 1, a.token))
    ix.step(1, "second holder", put_prop(c, "k", 2, b.token))
    r = put_prop(c, "k", 3, a.token)
    expect_status(r, 200)
    ix.step(1, "replace", r)
    ix.step(0, "reads", get_prop(c, "k"))
    ix.step(0, "listing", c.get("/v1/props"))
    for r in [delete_prop(c, "nope", a.token), put_prop(c, "k", 1), put_prop(c, "k", 1, UNKNOWN_TOKEN),
              put_prop(c, "k", token=a.token, raw="{"), c.put("/v1/props/%FF", {"value": 1}, token=a.token),
              delete_prop(c, "k")]:
        check(r.status >= 400, f"{r.desc()}: want an error")
        ix.step(0, f"refused {r.method} ({r.status})", r)
    r = delete_prop(c, "k", b.token)
    expect_status(r, 204)
    ix.step(1, "remove", r)
    for k in ["x", "y"]:
        expect_status(put_prop(c, k, k, a.token), 201)
    expect_status(c.put("/v1/groups/g", token=a.token), 201)
    expect_status(c.put_name("n", 1, a.token), 201)
    ix.step(4, "2 props, a group and a name")
    r = c.delete_session(a.id, a.token)
    expect_status(r, 204)
    ix.step(6, "delete of a session holding 3 props, a group and a name (5 releases + session_deleted)", r)
    srv.stop_clean()


@test
def test_index_expiry_with_props(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session(ttl=1)
    ix = Index(c)
    expect_status(put_prop(c, "p1", 1, s.token), 201)
    expect_status(put_prop(c, "p2", 1, s.token), 201)
    expect_status(c.put("/v1/groups/g", token=s.token), 201)
    ix.step(3, "2 props and a group")
    t0 = time.monotonic()
    while c.get_session(s.id).status == 200:
        check(time.monotonic() - t0 < 2.5, "ttl 1 session did not expire")
        time.sleep(0.05)
    ix.step(4, "expiry (2 prop_removed + group_left + session_expired)")
    srv.stop_clean()
