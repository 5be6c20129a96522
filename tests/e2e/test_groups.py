"""Groups: join, leave, members, listing, picking one member (random, round
robin, rendezvous hash), the per-session key limit, and the index."""

import threading

from harness import (check, eq, expect_error, expect_json, expect_no_body,
                     expect_status, q, test)

UNKNOWN_TOKEN = "0" * 32


def group_path(group):
    """Path of a group; group is a str (percent-encoded here, '/' kept)."""
    return "/v1/groups/" + q(group, safe="/")


def join(c, group, value=None, token=None, *, no_body=False, **kw):
    """PUT /v1/groups/{group} with {"value": value} (or no body, or raw=)."""
    if no_body or "raw" in kw:
        r = c.put(group_path(group), token=token, **kw)
    else:
        r = c.put(group_path(group), {"value": value}, token=token, **kw)
    r.index  # every /v1 answer carries X-Rollcall-Index
    return r


def leave(c, group, token=None):
    r = c.delete(group_path(group), token=token)
    r.index
    return r


def members(c, group):
    """[(session, value)] in the order GET serves them; checks the shape."""
    r = c.get(group_path(group))
    b = expect_json(r, 200)
    r.index
    eq(set(b), {"group", "members"}, f"GET {group!r} fields")
    eq(b["group"], group, "group in GET")
    for m in b["members"]:
        eq(set(m), {"session", "value"}, "member fields")
    return [(m["session"], m["value"]) for m in b["members"]]


def pick_raw(c, group, query):
    r = c.get(group_path(group) + "?" + query)
    r.index
    return r


def pick(c, group, how, hash_key=None):
    """One member picked: (session, value)."""
    query = f"pick={how}" + (f"&hash_key={q(hash_key)}" if hash_key is not None else "")
    b = expect_json(pick_raw(c, group, query), 200)
    eq(set(b), {"group", "member"}, f"pick {query} fields")
    eq(b["group"], group, "group in a pick")
    eq(set(b["member"]), {"session", "value"}, "picked member fields")
    return b["member"]["session"], b["member"]["value"]


def glisting(c, query):
    r = c.get("/v1/groups?" + query)
    b = expect_json(r, 200)
    r.index
    eq(set(b), {"groups", "next"}, "listing fields")
    for e in b["groups"]:
        eq(set(e), {"group", "members"}, "listing entry fields")
    return [(e["group"], e["members"]) for e in b["groups"]], b["next"]


class Index:
    """Follows X-Rollcall-Index on a server of the test's own."""

    def __init__(self, c):
        self.c = c
        self.value = c.get("/v1/groups?limit=1").index

    def step(self, delta, what, r=None):
        got = r.index if r is not None else self.c.get("/v1/groups?limit=1").index
        eq(got - self.value, delta, f"index change after {what}")
        self.value = got


# ---- join, leave, members


@test
def test_join_leave_members(ctx):
    c = ctx.client()
    g = ctx.uid()
    a, b, d = c.session(), c.session(), c.session()
    eq(expect_json(join(c, g, {"addr": "10.0.0.1:80"}, b.token), 201),
       {"group": g, "session": b.id, "value": {"addr": "10.0.0.1:80"}}, "201 body")
    eq(expect_json(join(c, g, 1, d.token), 201), {"group": g, "session": d.id, "value": 1}, "d's 201")
    eq(expect_json(join(c, g, token=a.token, no_body=True), 201), {"group": g, "session": a.id, "value": None},
       "no body: value null")
    eq(members(c, g), [(b.id, {"addr": "10.0.0.1:80"}), (d.id, 1), (a.id, None)], "members in join order")
    # joining again replaces the value and keeps the place
    eq(expect_json(join(c, g, "w", d.token), 200), {"group": g, "session": d.id, "value": "w"}, "200 body")
    eq(expect_json(join(c, g, token=b.token, raw="{}"), 200)["value"], None, "{} body: value null")
    eq(members(c, g), [(b.id, None), (d.id, "w"), (a.id, None)], "after re-joins")
    expect_no_body(leave(c, g, d.token), 204)
    eq(members(c, g), [(b.id, None), (a.id, None)], "after d left")
    expect_error(leave(c, g, d.token), 404, "not_held")
    expect_status(join(c, g, "back", d.token), 201)
    eq(members(c, g), [(b.id, None), (a.id, None), (d.id, "back")], "d back at the end")
    for s in (a, b, d):
        expect_status(leave(c, g, s.token), 204)
    eq(members(c, g), [], "all left")
    r = c.get(group_path(g))
    eq(expect_json(r, 200), {"group": g, "members": []}, "empty group body")


@test
def test_get_unknown_group_empty(ctx):
    c = ctx.client()
    g = ctx.uid() + "/never/joined"
    eq(expect_json(c.get(group_path(g)), 200), {"group": g, "members": []}, "unknown group")
    eq(expect_json(c.get(f"/v1/groups/{q(ctx.uid())}%2Fx%20y"), 200)["members"], [], "encoded name")


@test
def test_leave_errors(ctx):
    c = ctx.client()
    g = ctx.uid()
    a, b = c.session(), c.session()
    expect_status(join(c, g, "a", a.token), 201)
    expect_error(leave(c, g, b.token), 404, "not_held")  # others are members, b is not
    expect_error(leave(c, ctx.uid(), b.token), 404, "not_held")
    expect_error(leave(c, g), 401, "missing_token")
    expect_error(leave(c, g, UNKNOWN_TOKEN), 403, "bad_token")
    expect_error(leave(c, ctx.uid()), 401, "missing_token")
    eq(members(c, g), [(a.id, "a")], "a still a member")
    expect_error(join(c, g, 1), 401, "missing_token")
    expect_error(join(c, g, 1, UNKNOWN_TOKEN), 403, "bad_token")
    expect_error(join(c, g, 1, "x"), 403, "bad_token")
    expect_error(join(c, g, token=b.token, raw="{"), 400, "bad_request")
    expect_error(join(c, g, token=b.token, raw='{"value": 01}'), 400, "bad_request")
    expect_error(join(c, g, token=b.token, raw="[1]"), 400, "bad_request")
    expect_error(join(c, g, token=None, raw="{"), 401, "missing_token")
    eq(members(c, g), [(a.id, "a")], "no member added by refused joins")
    eq(c.get_session(b.id).json["groups"], 0, "b's count")
    eq(expect_json(c.healthz(), 200), {"status": "ok"}, "healthz")


@test
def test_invalid_group_keys(ctx):
    c = ctx.client()
    s = c.session()
    keep = ctx.uid()
    expect_status(join(c, keep, "kept", s.token), 201)
    bad = ["", "%00", "a%00b", "%1F", "%7F", "%FF", "%C3%28", "%E2%82", "%ED%A0%80", "%zz", "k" * 513]
    for raw in bad:
        p = "/v1/groups/" + raw
        for r in (c.get(p), c.get(p + "?pick=random"), c.put(p, {"value": 1}, token=s.token),
                  c.delete(p, token=s.token)):
            expect_error(r, 400, "invalid_key")
            r.index
    k512 = (keep + "g" * 512)[:512]
    eq(expect_json(join(c, k512, 1, s.token), 201)["group"], k512, "512-byte group")
    eq(members(c, k512), [(s.id, 1)], "512-byte group read")
    eq(c.get_session(s.id).json["groups"], 2, "only the valid joins counted")
    eq(expect_json(c.healthz(), 200), {"status": "ok"}, "healthz after bad keys")
    eq(members(c, keep), [(s.id, "kept")], "earlier membership intact")


@test
def test_group_key_with_slashes(ctx):
    c = ctx.client()
    u = ctx.uid()
    a, b = c.session(), c.session()
    g = f"workers/{u}/eu"
    eq(expect_json(c.put(f"/v1/groups/workers/{u}/eu", {"value": 1}, token=a.token), 201)["group"], g, "group")
    eq(expect_json(c.put(f"/v1/groups/workers%2F{u}%2feu", {"value": 2}, token=b.token), 201)["group"], g,
       "%2F is /")
    eq(expect_json(c.get(f"/v1/groups/workers%2F{u}/eu"), 200),
       {"group": g, "members": [{"session": a.id, "value": 1}, {"session": b.id, "value": 2}]}, "GET with %2F")
    eq(expect_json(c.get(f"/v1/groups/workers%2F{u}%2Feu?pick=hash&hash_key=x"), 200)["group"], g, "pick %2F")
    expect_status(c.delete(f"/v1/groups/workers%2F{u}%2Feu", token=a.token), 204)
    eq(members(c, g), [(b.id, 2)], "after a's %2F leave")
    eq(members(c, f"workers/{u}//eu"), [], "// is another group")


# ---- listing


@test
def test_list_groups(ctx):
    c = ctx.client()
    u = ctx.uid() + "/"
    ss = [c.session() for _ in range(3)]
    suffixes = ["b", "a", "B", "0", "a/b", "a b", "ab", "\u00e9", "z", "\U0001F600"]
    want = []
    for i, x in enumerate(suffixes):
        n = i % 3 + 1
        for s in ss[:n]:
            expect_status(join(c, u + x, i, s.token), 201)
        want.append((u + x, n))
    want.sort(key=lambda e: e[0].encode())
    eq(glisting(c, f"prefix={q(u)}"), (want, None), "groups in byte order with member counts")
    out, after, pages = [], None, 0
    while True:
        query = f"prefix={q(u)}&limit=3" + (f"&after={q(after)}" if after is not None else "")
        page, nxt = glisting(c, query)
        out += page
        pages += 1
        if nxt is None:
            break
        eq((len(page), nxt), (3, page[-1][0]), f"{query}: full page, next is its last group")
        after = nxt
        check(pages < 20, "too many pages")
    eq((out, pages), (want, 4), "walk by 3: entries, pages")
    eq(glisting(c, f"prefix={q(u)}&after={q(want[-1][0])}"), ([], None), "after the last group")
    eq(glisting(c, f"prefix={q(u)}a")[0], [e for e in want if e[0].startswith(u + "a")], "prefix a")
    # counts follow leaves; an emptied group goes from the listing
    g1 = [e[0] for e in want if e[1] == 1][0]
    g3 = [e[0] for e in want if e[1] == 3][0]
    expect_status(leave(c, g3, ss[2].token), 204)
    expect_status(leave(c, g1, ss[0].token), 204)
    got = dict(glisting(c, f"prefix={q(u)}")[0])
    eq((got[g3], g1 in got), (2, False), "after leaves: count of g3, g1 listed")
    for bad in ["-1", "x", "", "1.0"]:
        expect_error(c.get(f"/v1/groups?limit={bad}"), 400, "bad_request")
    eq(glisting(c, f"prefix={q(ctx.uid())}"), ([], None), "empty listing")


@test
def test_list_groups_limit_zero(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session()
    groups = [f"g/{i:04d}" for i in range(1001)]
    for g in groups:
        expect_status(join(c, g, None, s.token), 201)
    got, nxt = glisting(c, "")
    eq((len(got), nxt), (100, groups[99]), "default limit 100")
    got, nxt = glisting(c, "limit=0")
    eq((got, nxt), ([(g, 1) for g in groups[:1000]], groups[999]), "limit=0 is 1000")
    eq(glisting(c, f"limit=0&after={q(groups[999])}"), ([(groups[1000], 1)], None), "second page")
    srv.stop_clean()


# ---- picks


def _group_of(c, g, n, values=True):
    ss = [c.session() for _ in range(n)]
    for i, s in enumerate(ss):
        expect_status(join(c, g, f"m{i}" if values else None, s.token), 201)
    return ss


@test
def test_pick_random(ctx):
    c = ctx.client()
    g = ctx.uid()
    ss = _group_of(c, g, 3)
    allowed = {(s.id, f"m{i}") for i, s in enumerate(ss)}
    seen = {}
    for _ in range(300):
        m = pick(c, g, "random")
        check(m in allowed, f"random pick {m!r} is not a member")
        seen[m] = seen.get(m, 0) + 1
    eq(set(seen), allowed, "members seen over 300 random picks")
    # after one leaves, it is never picked
    expect_status(leave(c, g, ss[1].token), 204)
    allowed.discard((ss[1].id, "m1"))
    got = {pick(c, g, "random") for _ in range(60)}
    eq(got, allowed, "members seen after one left")
    # hash_key is ignored by random
    check(pick(c, g, "random", "k") in allowed, "random with a hash_key")


@test
def test_pick_random_many_members(ctx):
    # more members than the first slot array holds, then leaves at the
    # first, a middle and the last place: random picks only current members
    c = ctx.client()
    g = ctx.uid()
    ss = _group_of(c, g, 9)
    for i in (0, 4, 8):
        expect_status(leave(c, g, ss[i].token), 204)
    expect_status(c.delete_session(ss[6].id, ss[6].token), 204)
    now = {(s.id, f"m{i}") for i, s in enumerate(ss) if i not in (0, 4, 6, 8)}
    seen = set()
    for _ in range(300):
        m = pick(c, g, "random")
        check(m in now, f"random pick {m!r} is not a current member")
        seen.add(m)
    eq(seen, now, "members seen over 300 random picks of 5")


@test
def test_pick_single_member(ctx):
    c = ctx.client()
    g = ctx.uid()
    s = c.session()
    expect_status(join(c, g, {"w": 1}, s.token), 201)
    for how in ["random", "round_robin"]:
        for _ in range(3):
            eq(pick(c, g, how), (s.id, {"w": 1}), f"{how} of one member")
    eq(pick(c, g, "hash", "abc"), (s.id, {"w": 1}), "hash of one member")


@test
def test_pick_round_robin_cycles(ctx):
    c = ctx.client()
    g = ctx.uid()
    ss = _group_of(c, g, 4)
    ids = {s.id for s in ss}
    seq = [pick(c, g, "round_robin")[0] for _ in range(12)]
    check(set(seq) <= ids, f"round robin picked a non-member: {seq}")
    for i in range(0, 12 - 3):
        eq(set(seq[i:i + 4]), ids, f"picks {i}..{i + 3} cover every member once")
    # the order repeats cycle after cycle
    eq(seq[4:8], seq[:4], "second cycle in the same order")
    eq(seq[8:12], seq[:4], "third cycle in the same order")
    # value changes do not disturb the rotation
    expect_status(join(c, g, "new value", ss[0].token), 200)
    seq2 = [pick(c, g, "round_robin")[0] for _ in range(4)]
    eq(set(seq2), ids, "4 picks after a value change cover every member")


def _rr_change(c, g, leaver_of):
    """4 members; 2 round-robin picks; one member (chosen by leaver_of from
    the picks so far and the members) leaves and a new one joins; the next 4
    picks, and every window of 4 after, cover the current members once."""
    ss = _group_of(c, g, 4)
    done = [pick(c, g, "round_robin")[0] for _ in range(2)]
    eq(len(set(done)), 2, "first two picks differ")
    gone = leaver_of(done, [s.id for s in ss])
    by_id = {s.id: s for s in ss}
    expect_status(leave(c, g, by_id[gone].token), 204)
    n = c.session()
    expect_status(join(c, g, "new", n.token), 201)
    now = ({s.id for s in ss} - {gone}) | {n.id}
    seq = [pick(c, g, "round_robin")[0] for _ in range(12)]
    check(gone not in seq, f"the member that left was picked: {seq}")
    for i in range(0, 12 - 3):
        eq(set(seq[i:i + 4]), now, f"picks {i}..{i + 3} after the change cover the current members once")


@test
def test_pick_round_robin_leave_already_picked(ctx):
    # the member picked last in this cycle leaves
    _rr_change(ctx.client(), ctx.uid(), lambda done, all_: done[-1])


@test
def test_pick_round_robin_leave_first_picked(ctx):
    _rr_change(ctx.client(), ctx.uid(), lambda done, all_: done[0])


@test
def test_pick_round_robin_leave_not_yet_picked(ctx):
    # each member not yet picked in this cycle, in turn, on a fresh group
    c = ctx.client()
    for j in range(2):
        _rr_change(c, ctx.uid(), lambda done, all_: [m for m in all_ if m not in done][j])


@test
def test_pick_round_robin_next_one_deleted_with_its_session(ctx):
    # the member due next goes with its session (not a leave)
    c = ctx.client()
    g = ctx.uid()
    ss = _group_of(c, g, 4)
    done = [pick(c, g, "round_robin")[0] for _ in range(4)]
    eq(set(done), {s.id for s in ss}, "a first full cycle")
    due = done[1]  # the order repeats: after two more picks, done[1] is due
    eq(pick(c, g, "round_robin")[0], done[0], "the cycle repeats")
    by_id = {s.id: s for s in ss}
    expect_status(c.delete_session(due, by_id[due].token), 204)
    n = c.session()
    expect_status(join(c, g, "new", n.token), 201)
    now = ({s.id for s in ss} - {due}) | {n.id}
    seq = [pick(c, g, "round_robin")[0] for _ in range(8)]
    for i in range(0, 8 - 3):
        eq(set(seq[i:i + 4]), now, f"picks {i}..{i + 3} after the change cover the current members once")


@test
def test_pick_round_robin_after_empty_and_rejoin(ctx):
    c = ctx.client()
    g = ctx.uid()
    ss = _group_of(c, g, 2)
    pick(c, g, "round_robin")
    for s in ss:
        expect_status(leave(c, g, s.token), 204)
    expect_error(pick_raw(c, g, "pick=round_robin"), 404, "group_empty")
    ss = _group_of(c, g, 3)
    seq = [pick(c, g, "round_robin")[0] for _ in range(6)]
    eq(set(seq[:3]), {s.id for s in ss}, "first cycle of a re-formed group")
    eq(seq[3:], seq[:3], "second cycle")


@test
def test_pick_hash(ctx):
    c = ctx.client()
    g = ctx.uid()
    ss = _group_of(c, g, 3)
    keys = [f"user-{i}" for i in range(191)] + ["a b", "\u00e9", "x/y", "a&b=c", "%", "+",
                                                  "\U0001F600", "k" * 512, "?#"]
    first = {k: pick(c, g, "hash", k) for k in keys}
    eq({k: pick(c, g, "hash", k) for k in keys}, first, "same key, same member on a second pass")
    eq({k: pick(c, g, "hash", k) for k in keys[:20]}, {k: first[k] for k in keys[:20]}, "third pass")
    counts = {s.id: 0 for s in ss}
    for k, (sid, val) in first.items():
        check(sid in counts, f"hash picked a non-member for {k!r}")
        counts[sid] += 1
    check(all(n > 0 for n in counts.values()), f"keys spread over the members: {counts}")
    # a member leaves: keys on the others stay where they were
    gone = ss[1].id
    expect_status(leave(c, g, ss[1].token), 204)
    after = {k: pick(c, g, "hash", k) for k in keys}
    moved_wrongly = [k for k in keys if first[k][0] != gone and after[k] != first[k]]
    eq(moved_wrongly[:5], [], f"keys not on the leaver that moved (of {len(moved_wrongly)})")
    check(all(after[k][0] != gone for k in keys), "a key still on the member that left")
    # a member joins: a key either stays or moves to the new member
    n = c.session()
    expect_status(join(c, g, "new", n.token), 201)
    joined = {k: pick(c, g, "hash", k) for k in keys}
    bad = [k for k in keys if joined[k] != after[k] and joined[k][0] != n.id]
    eq(bad[:5], [], f"keys that moved between old members after a join (of {len(bad)})")
    check(any(joined[k][0] == n.id for k in keys), "the new member got no key")
    # a replaced value is served by the same member
    expect_status(join(c, g, "changed", ss[0].token), 200)
    k0 = next(k for k in keys if joined[k][0] == ss[0].id)
    eq(pick(c, g, "hash", k0), (ss[0].id, "changed"), "hash after a value change")


@test
def test_pick_hash_independent_of_join_order(ctx):
    c = ctx.client()
    g1, g2 = ctx.uid(), ctx.uid()
    ss = [c.session() for _ in range(3)]
    for s in ss:
        expect_status(join(c, g1, None, s.token), 201)
    for s in reversed(ss):
        expect_status(join(c, g2, None, s.token), 201)
    for i in range(40):
        eq(pick(c, g1, "hash", f"k{i}")[0], pick(c, g2, "hash", f"k{i}")[0], f"k{i} in both join orders")


@test
def test_pick_errors(ctx):
    c = ctx.client()
    g = ctx.uid()
    empty = ctx.uid()
    for query in ["pick=random", "pick=round_robin", "pick=hash&hash_key=k"]:
        expect_error(pick_raw(c, empty, query), 404, "group_empty")
    s = c.session()
    expect_status(join(c, g, 1, s.token), 201)
    expect_status(join(c, empty, 1, s.token), 201)
    expect_status(leave(c, empty, s.token), 204)
    for query in ["pick=random", "pick=round_robin", "pick=hash&hash_key=k"]:
        expect_error(pick_raw(c, empty, query), 404, "group_empty")
    for query in ["pick=hash", "pick=other", "pick=RANDOM", "pick=", "pick=random%20", "pick=first"]:
        expect_error(pick_raw(c, g, query), 400, "bad_request")
    eq(members(c, g), [(s.id, 1)], "group unchanged")
    eq(expect_json(c.healthz(), 200), {"status": "ok"}, "healthz")


@test
def test_concurrent_joins(ctx):
    c = ctx.client()
    g = ctx.uid()
    ss = [c.session() for _ in range(20)]
    barrier = threading.Barrier(20)
    results = [None] * 20

    def run(i):
        cl = ctx.client()
        barrier.wait(5)
        results[i] = join(cl, g, i, ss[i].token)
        cl.close()
    ts = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(15)
    eq([r.status if r else None for r in results], [201] * 20, "statuses of 20 racing joins")
    got = members(c, g)
    eq(sorted(got), sorted((s.id, i) for i, s in enumerate(ss)), "every racer is a member, once")
    eq(glisting(c, f"prefix={q(g)}"), ([(g, 20)], None), "member count")


@test
def test_same_key_name_prop_group_independent(ctx):
    c = ctx.client()
    k = ctx.uid() + "/same"
    s = c.session()
    expect_status(c.put_name(k, "name", s.token), 201)
    expect_status(c.put("/v1/props/" + q(k, safe="/"), {"value": "prop"}, token=s.token), 201)
    expect_status(join(c, k, "group", s.token), 201)
    eq(expect_json(c.get_session(s.id), 200)["held"], {"names": [k], "props": [k], "groups": [k]}, "held")
    expect_status(leave(c, k, s.token), 204)
    eq(expect_json(c.get_name(k), 200)["value"], "name", "name kept after leaving the group")
    eq(expect_json(c.get("/v1/props/" + q(k, safe="/")), 200)["holders"], [{"session": s.id, "value": "prop"}],
       "prop kept after leaving the group")
    expect_error(leave(c, k, s.token), 404, "not_held")
    expect_status(c.delete("/v1/props/" + q(k, safe="/"), token=s.token), 204)
    eq(expect_json(c.get_name(k), 200)["value"], "name", "name kept after removing the prop")
    eq(expect_json(c.get_session(s.id), 200)["held"], {"names": [k], "props": [], "groups": []}, "held at the end")


# ---- the per-session key limit


@test
def test_keys_limit_names_props_groups(ctx):
    srv = ctx.start("--max-keys-per-session", "3")
    c = ctx.client(srv)
    a, b = c.session(), c.session()
    expect_status(c.put_name("n1", 1, a.token), 201)
    expect_status(c.put("/v1/props/p1", {"value": 1}, token=a.token), 201)
    expect_status(join(c, "g1", 1, a.token), 201)
    expect_status(c.put("/v1/props/p-b", {"value": "b"}, token=b.token), 201)
    ix = Index(c)
    refused = [c.put_name("n2", 1, a.token), c.put("/v1/props/p2", {"value": 1}, token=a.token),
               join(c, "g2", 1, a.token), c.put("/v1/props/p-b", {"value": "a"}, token=a.token),
               join(c, "g-b", 1, a.token)]
    for r in refused:
        expect_error(r, 503, "limit_reached")
        ix.step(0, f"{r.method} {r.path} refused at the limit", r)
    # nothing changed
    expect_error(c.get_name("n2"), 404, "name_not_found")
    eq(expect_json(c.get("/v1/props/p2"), 200)["holders"], [], "p2")
    eq(expect_json(c.get("/v1/props/p-b"), 200)["holders"], [{"session": b.id, "value": "b"}], "p-b")
    eq(members(c, "g2"), [], "g2")
    sa = expect_json(c.get_session(a.id), 200)
    eq((sa["names"], sa["props"], sa["groups"]), (1, 1, 1), "a's counts")
    eq(sa["held"], {"names": ["n1"], "props": ["p1"], "groups": ["g1"]}, "a's held")
    # replacing what it holds is still allowed at the limit
    r = c.put_name("n1", 2, a.token)
    expect_status(r, 200)
    ix.step(1, "name replaced at the limit", r)
    r = c.put("/v1/props/p1", {"value": 2}, token=a.token)
    eq(expect_json(r, 200)["value"], 2, "prop replaced at the limit")
    ix.step(1, "prop replaced at the limit", r)
    r = join(c, "g1", 2, a.token)
    eq(expect_json(r, 200)["value"], 2, "group value replaced at the limit")
    ix.step(1, "group re-joined at the limit", r)
    # another session is not affected
    expect_status(join(c, "g2", "b", b.token), 201)
    # after removing one, a new entry of any kind fits, and then the limit holds again
    expect_status(c.delete("/v1/props/p1", token=a.token), 204)
    expect_status(join(c, "g2", "a", a.token), 201)
    expect_error(c.put("/v1/props/p3", {"value": 1}, token=a.token), 503, "limit_reached")
    expect_status(leave(c, "g1", a.token), 204)
    expect_status(c.put_name("n2", 2, a.token), 201)
    expect_error(join(c, "g1", 1, a.token), 503, "limit_reached")
    expect_status(c.delete_name("n1", a.token), 204)
    expect_status(c.put("/v1/props/p-b", {"value": "a"}, token=a.token), 201)
    sa = expect_json(c.get_session(a.id), 200)
    eq(sa["held"], {"names": ["n2"], "props": ["p-b"], "groups": ["g2"]}, "a's held at the end")
    eq(members(c, "g2"), [(b.id, "b"), (a.id, "a")], "g2 members")
    eq(expect_json(c.healthz(), 200), {"status": "ok"}, "healthz")
    srv.stop_clean()


# ---- the index


@test
def test_index_groups(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    a, b = c.session(), c.session()
    ix = Index(c)
    ix.step(1, "join", join(c, "g", 1, a.token))
    ix.step(1, "second member", join(c, "g", 2, b.token))
    r = join(c, "g", 3, a.token)
    expect_status(r, 200)
    ix.step(1, "re-join (value replaced)", r)
    for query in ["", "?pick=random", "?pick=round_robin", "?pick=hash&hash_key=x"]:
        r = c.get("/v1/groups/g" + query)
        expect_status(r, 200)
        ix.step(0, f"GET {query or 'members'}", r)
    ix.step(0, "listing", c.get("/v1/groups"))
    for r in [leave(c, "nope", a.token), join(c, "g", 1), join(c, "g", 1, UNKNOWN_TOKEN),
              join(c, "g", token=a.token, raw="{"), c.put("/v1/groups/%FF", {"value": 1}, token=a.token),
              leave(c, "g"), c.get("/v1/groups/g?pick=hash"), c.get("/v1/groups/nope?pick=random")]:
        check(r.status >= 400, f"{r.desc()}: want an error")
        ix.step(0, f"refused {r.method} {r.path} ({r.status})", r)
    r = leave(c, "g", b.token)
    expect_status(r, 204)
    ix.step(1, "leave", r)
    expect_status(join(c, "h", token=a.token), 201)
    ix.step(1, "join a second group")
    r = c.delete_session(a.id, a.token)
    expect_status(r, 204)
    ix.step(3, "delete of a session in 2 groups (2 group_left + session_deleted)", r)
    eq(glisting(c, ""), ([], None), "no group left")
    srv.stop_clean()
