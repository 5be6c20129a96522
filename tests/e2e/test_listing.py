"""GET /v1/names?prefix=&limit=&after=: sorted by key, byte order."""

from harness import (check, eq, expect_error, expect_json, expect_status, q, test)


def _keys(c, query):
    b = expect_json(c.get("/v1/names?" + query), 200)
    eq(set(b), {"names", "next"}, "fields")
    for e in b["names"]:
        eq(set(e), {"key", "session", "value"}, "entry fields")
    return [e["key"] for e in b["names"]], b["next"]


def _walk(c, prefix, limit):
    """Every page for a prefix; checks order and next; returns the keys."""
    out, after, pages = [], None, 0
    while True:
        query = f"prefix={q(prefix)}&limit={limit}" + (f"&after={q(after)}" if after is not None else "")
        keys, nxt = _keys(c, query)
        check(len(keys) <= limit, f"{query}: over limit")
        check(all(k.startswith(prefix) for k in keys), f"{query}: a key outside the prefix")
        check([k.encode() for k in keys] == sorted(k.encode() for k in keys), f"{query}: not in byte order")
        if after is not None:
            check(all(k.encode() > after.encode() for k in keys), f"{query}: a key not after {after!r}")
        out += keys
        pages += 1
        if nxt is None:
            return out, pages
        eq(nxt, keys[-1] if keys else None, f"{query}: next is the page's last key")
        eq(len(keys), limit, f"{query}: a page followed by more is full")
        after = nxt
        check(pages < 2000, "too many pages")


def _register(c, token, keys, value=None):
    for k in keys:
        expect_status(c.put_name(k, k if value is None else value, token), 201)


@test
def test_list_names_byte_order_and_pages(ctx):
    c = ctx.client()
    u = ctx.uid() + "/"
    s = c.session()
    suffixes = ["b", "a", "B", "A", "0", "a/b", "a b", "ab", "\u00e9", "\u00e9t\u00e9", "z",
                "~", "\U0001F600", "a-", "a.", "aa", "a\u00e9", "Z9", "9", "."]
    keys = [u + x for x in suffixes]
    _register(c, s.token, keys)
    want = sorted(keys, key=lambda k: k.encode())
    got, pages = _walk(c, u, 7)
    eq(got, want, "keys walking pages of 7")
    eq(pages, 3, "pages")
    got, pages = _walk(c, u, 20)
    eq((got, pages), (want, 1), "one page of exactly 20: keys, pages")
    got, _ = _walk(c, u, 1)
    eq(got, want, "pages of 1")
    # entries carry owner and value
    b = expect_json(c.get(f"/v1/names?prefix={q(u)}&limit=1"), 200)
    eq(b["names"][0], {"key": want[0], "session": s.id, "value": want[0]}, "first entry")


@test
def test_list_names_prefix_exact(ctx):
    c = ctx.client()
    u = ctx.uid()
    s = c.session()
    keys = [f"{u}p/a", f"{u}p/ab", f"{u}p/b", f"{u}pa", f"{u}P/a", f"{u}q", f"{u}p"]
    _register(c, s.token, keys)
    eq(_keys(c, f"prefix={u}p/a")[0], [f"{u}p/a", f"{u}p/ab"], "prefix p/a")
    eq(_keys(c, f"prefix={u}p/")[0], [f"{u}p/a", f"{u}p/ab", f"{u}p/b"], "prefix p/")
    eq(_keys(c, f"prefix={u}p")[0], [f"{u}p", f"{u}p/a", f"{u}p/ab", f"{u}p/b", f"{u}pa"], "prefix p")
    eq(_keys(c, f"prefix={u}P")[0], [f"{u}P/a"], "prefix is case-sensitive")
    eq(_keys(c, f"prefix={u}p/ab")[0], [f"{u}p/ab"], "prefix equal to a whole key")
    eq(_keys(c, f"prefix={u}p/abc"), ([], None), "prefix longer than any key")
    eq(_keys(c, f"prefix={u}p%2Fa")[0], [f"{u}p/a", f"{u}p/ab"], "percent-encoded prefix")


@test
def test_list_names_after(ctx):
    c = ctx.client()
    u = ctx.uid() + "/"
    s = c.session()
    keys = [u + x for x in ["a", "b", "c", "d", "e"]]
    _register(c, s.token, keys)
    eq(_keys(c, f"prefix={u}&after={u}b")[0], keys[2:], "after an existing key")
    eq(_keys(c, f"prefix={u}&after={u}bb")[0], keys[2:], "after a key between entries")
    eq(_keys(c, f"prefix={u}&after={u}")[0], keys, "after the prefix itself")
    eq(_keys(c, f"prefix={u}&after={u}e"), ([], None), "after the last key")
    eq(_keys(c, f"prefix={u}&after={u}a&limit=2"), (keys[1:3], keys[2]), "after + limit")
    eq(_keys(c, f"prefix={u}&after={u}b&limit=3"), (keys[2:5], None), "exactly limit left")
    eq(_keys(c, f"prefix={u}&after=a"), (keys, None), "after below the prefix")
    # after outside the prefix, above it
    eq(_keys(c, f"prefix={u}&after={u[:-1]}0"), ([], None), "after above the prefix")


@test
def test_list_names_query_decoding(ctx):
    c = ctx.client()
    u = ctx.uid()
    s = c.session()
    _register(c, s.token, [f"{u} sp/1", f"{u}+plus/1", f"{u}\u00e9/1"])
    eq(_keys(c, f"prefix={u}+sp")[0], [f"{u} sp/1"], "+ in a query is a space")
    eq(_keys(c, f"prefix={u}%20sp")[0], [f"{u} sp/1"], "%20 is a space")
    eq(_keys(c, f"prefix={u}%2Bplus")[0], [f"{u}+plus/1"], "%2B is a plus")
    eq(_keys(c, f"prefix={u}%C3%A9")[0], [f"{u}\u00e9/1"], "UTF-8 prefix")
    eq(_keys(c, f"prefix={u}&limit=%31")[1], f"{u} sp/1", "limit=%31 is limit 1")
    eq(_keys(c, f"prefix={u}&unknown=1&limit=1&also")[0], [f"{u} sp/1"], "unknown params ignored")


@test
def test_list_names_bad_limit(ctx):
    c = ctx.client()
    for bad in ["-1", "1.5", "abc", "", "+1", "1e3", "0x1"]:
        expect_error(c.get(f"/v1/names?limit={bad}"), 400, "bad_request")


@test
def test_list_names_empty(ctx):
    c = ctx.client()
    r = c.get(f"/v1/names?prefix={ctx.uid()}")
    eq(expect_json(r, 200), {"names": [], "next": None}, "empty listing")
    r.index  # carries X-Rollcall-Index


@test
def test_list_names_limits(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    keys = []
    for j in range(21):  # 1050 names over 21 sessions
        s = c.session()
        ks = [f"n/{j:02d}/{i:02d}" for i in range(50)]
        _register(c, s.token, ks, value=j)
        keys += ks
    keys.sort()
    got, nxt = _keys(c, "")
    eq((len(got), nxt), (100, keys[99]), "default limit 100: count, next")
    eq(got, keys[:100], "default page")
    for lim in ["0", "1001", "5000", "1000"]:
        got, nxt = _keys(c, f"limit={lim}")
        eq((len(got), nxt), (1000, keys[999]), f"limit={lim}: count, next")
    got, nxt = _keys(c, f"limit=1000&after={q(keys[999])}")
    eq((got, nxt), (keys[1000:], None), "second page")
    got, pages = _walk(c, "n/", 100)
    eq((got, pages), (keys, 11), "walk by 100")
    srv.stop_clean()


@test
def test_list_names_deleted_gone(ctx):
    c = ctx.client()
    u = ctx.uid() + "/"
    s = c.session()
    _register(c, s.token, [u + "a", u + "b", u + "c"])
    expect_status(c.delete_name(u + "b", s.token), 204)
    eq(_keys(c, f"prefix={u}")[0], [u + "a", u + "c"], "after deleting b")
