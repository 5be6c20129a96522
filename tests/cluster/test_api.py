"""Every section of api.md, through a random node of a 3-node cluster per
request (api.md, "Cluster": any node answers any request with the answers a
single node would give). Sessions are made on a chosen node (their home)
and used through the others; every answer must carry X-Rollcall-Node, and
the home's name when the request acted for a session homed elsewhere."""

import http.client
import json
import time

from harness import (HEX16, HEX32, HOST, Fail, check, eq, expect_error, expect_json, expect_no_body,
                     expect_status, in_thread, name_path, node_of, q, test)

SESSION_KEYS = {"id", "label", "ttl", "expires_in_ms", "names", "props", "groups", "queued", "node"}
NO_SUCH_ID = "0123456789abcdef"


def windex(r):
    """The X-Rollcall-Index of a write's answer (api.md: it carries one)."""
    return r.index


def served(r, node, what):
    eq(r.served_by, node.name if hasattr(node, "name") else node, f"X-Rollcall-Node of {what}")


def three(ctx):
    cl = ctx.cluster(3)
    return cl, cl.any(), cl.nodes


# --------------------------------------------------------------------------
# Sessions and leases


@test()
def test_sessions(ctx):
    cl, a, (n1, n2, n3) = three(ctx)
    r = a.post("/v1/sessions", {"ttl": 20, "label": "api@host-1"}, node=n1)
    body = expect_json(r, 201)
    served(r, n1, "POST /v1/sessions")
    extra = set(body) - {"id", "token", "ttl", "label", "expires_in_ms"}
    check(extra <= {"node"}, f"unexpected fields in a new session: {sorted(extra)}")
    if "node" in body:
        eq(body["node"], "n1", "node of a new session")
    check(HEX16.fullmatch(body["id"]), f"id {body['id']!r}")
    check(HEX32.fullmatch(body["token"]), f"token {body['token']!r}")
    eq((body["ttl"], body["label"]), (20, "api@host-1"), "ttl, label")
    check(19000 <= body["expires_in_ms"] <= 20000, f"expires_in_ms {body['expires_in_ms']}")
    windex(r)
    sid, tok = body["id"], body["token"]

    # Usable at once on every other node, with no min_index (api.md:
    # a node catches up before answering 403 or 404).
    r = a.post(f"/v1/sessions/{sid}/heartbeat", {"ttl": 25}, token=tok, node=n2, min_index=False)
    hb = expect_json(r, 200)
    served(r, n1, "a heartbeat forwarded to the home")
    eq(sorted(hb), ["expires_in_ms", "id", "ttl"], "keys of a heartbeat answer")
    eq((hb["id"], hb["ttl"]), (sid, 25), "heartbeat id, ttl")
    check(24000 <= hb["expires_in_ms"] <= 25000, f"expires_in_ms {hb['expires_in_ms']}")

    r = a.get(f"/v1/sessions/{sid}", node=n3, min_index=False)
    info = expect_json(r, 200)
    served(r, n1, "GET /v1/sessions/{id} of a session homed on n1")
    eq(set(info), SESSION_KEYS | {"held"}, "keys of GET /v1/sessions/{id}")
    eq(info["node"], "n1", "node")
    eq(info["held"], {"names": [], "props": [], "groups": []}, "held")
    check("token" not in json.dumps(info), "GET /v1/sessions/{id} shows the token")

    # What it holds, registered through the other nodes, sorted.
    for k, nd in (("b", n2), ("a", n3)):
        expect_status(a.put(name_path(f"s/{k}"), {"value": k}, token=tok, node=nd), 201)
    expect_status(a.put("/v1/props/p1", {}, token=tok, node=n2), 201)
    expect_status(a.put("/v1/groups/g1", None, token=tok, node=n3), 201)
    info = expect_json(a.get(f"/v1/sessions/{sid}", node=n2), 200)
    eq(info["held"], {"names": ["s/a", "s/b"], "props": ["p1"], "groups": ["g1"]}, "held")
    eq((info["names"], info["props"], info["groups"], info["queued"]), (2, 1, 1, 0), "counts")

    # Listing: every session of the cluster; the home's own rows in full,
    # the others' expires_in_ms and queued null.
    s2 = a.session(ttl=20, label="two", node=n2)
    s3 = a.session(ttl=20, node=n3)
    ids = sorted([sid, s2.id, s3.id])
    home = {sid: "n1", s2.id: "n2", s3.id: "n3"}
    for nd in (n1, n2, n3):
        r = a.get("/v1/sessions", node=nd)
        body = expect_json(r, 200)
        served(r, nd, "GET /v1/sessions")
        r.index
        eq(set(body), {"sessions", "next"}, "keys of the listing")
        eq([s["id"] for s in body["sessions"]], ids, f"sessions listed on {nd.name} (sorted by id)")
        eq(body["next"], None, "next")
        for row in body["sessions"]:
            eq(set(row), SESSION_KEYS, "keys of a listed session")
            eq(row["node"], home[row["id"]], "node of a listed session")
            if row["node"] == nd.name:
                check(isinstance(row["expires_in_ms"], int) and isinstance(row["queued"], int),
                      f"own session on {nd.name}: expires_in_ms/queued not numbers: {row}")
            else:
                eq((row["expires_in_ms"], row["queued"]), (None, None),
                   f"expires_in_ms, queued of a session homed on {row['node']} listed on {nd.name}")
        row1 = [s for s in body["sessions"] if s["id"] == sid][0]
        eq((row1["label"], row1["ttl"], row1["names"], row1["props"], row1["groups"]),
           ("api@host-1", 25, 2, 1, 1), f"label, ttl (25 since a heartbeat), names, props, groups of the "
                                        f"first session listed on {nd.name}")
    r = a.get("/v1/sessions?node=n2", node=n1)
    body = expect_json(r, 200)
    served(r, n2, "GET /v1/sessions?node=n2 (forwarded)")
    eq([s["id"] for s in body["sessions"]], [s2.id], "sessions of n2")
    row = body["sessions"][0]
    check(isinstance(row["expires_in_ms"], int) and 0 < row["expires_in_ms"] <= 20000 and row["queued"] == 0,
          f"?node=n2 lists every field: {row}")
    eq((row["label"], row["node"]), ("two", "n2"), "label, node")
    # pages
    body = expect_json(a.get("/v1/sessions?limit=2"), 200)
    eq([s["id"] for s in body["sessions"]], ids[:2], "first page")
    eq(body["next"], ids[1], "next of the first page")
    body = expect_json(a.get(f"/v1/sessions?limit=2&after={ids[1]}"), 200)
    eq(([s["id"] for s in body["sessions"]], body["next"]), (ids[2:], None), "second page")

    # Errors, wherever they are asked.
    expect_error(a.post(f"/v1/sessions/{sid}/heartbeat", node=n3), 401, "missing_token")
    expect_error(a.post(f"/v1/sessions/{sid}/heartbeat", token=s2.token, node=n3), 403, "bad_token")
    expect_error(a.post(f"/v1/sessions/{sid}/heartbeat", token="f" * 32, node=n2), 403, "bad_token")
    expect_error(a.post(f"/v1/sessions/{NO_SUCH_ID}/heartbeat", token=tok, node=n2), 404, "session_not_found")
    expect_error(a.get(f"/v1/sessions/{NO_SUCH_ID}", node=n3), 404, "session_not_found")
    expect_error(a.post("/v1/sessions", {"ttl": 0}), 400, "invalid_ttl")
    expect_error(a.put(name_path("x"), {"value": 1}, token="f" * 32), 403, "bad_token")

    # Delete through a node that is not the home: everything goes.
    r = a.delete(f"/v1/sessions/{sid}", token=tok, node=n3)
    expect_no_body(r, 204)
    served(r, n1, "DELETE of a session homed on n1")
    windex(r)
    expect_error(a.get(f"/v1/sessions/{sid}", node=n3), 404, "session_not_found")
    expect_error(a.post(f"/v1/sessions/{sid}/heartbeat", token=tok, node=n2), 404, "session_not_found")
    expect_error(a.delete(f"/v1/sessions/{sid}", token=tok, node=n1), 404, "session_not_found")
    for nd in (n1, n2, n3):
        expect_error(a.get(name_path("s/a"), node=nd), 404, "name_not_found")
        eq(expect_json(a.get("/v1/props/p1", node=nd), 200), {"key": "p1", "holders": []}, "prop after delete")
        eq(expect_json(a.get("/v1/groups/g1", node=nd), 200), {"group": "g1", "members": []}, "group after delete")
        body = expect_json(a.get("/v1/sessions", node=nd), 200)
        eq([s["id"] for s in body["sessions"]], sorted([s2.id, s3.id]), f"sessions on {nd.name} after delete")


@test()
def test_lease_across_nodes(ctx):
    """A token used on another node renews the lease; a session left alone
    expires on time on every node, with its names."""
    cl, a, (n1, n2, n3) = three(ctx)
    kept = a.session(ttl=2, node=n1)
    left = a.session(ttl=2, node=n1)
    expect_status(a.put(name_path("lease/left"), {"value": 1}, token=left.token, node=n2), 201)
    t_left = time.monotonic()  # the put is its last sign of life
    c2, c3 = n2.client(), n3.client()
    gone = None
    end = time.monotonic() + 4.5
    while time.monotonic() < end:
        # reads carrying kept's token, on nodes that are not its home
        expect_error(c2.get_name("lease/none", token=kept.token), 404, "name_not_found")
        expect_json(c3.get("/v1/names?limit=1", token=kept.token), 200)
        if gone is None:
            r = c3.get_name("lease/left")
            if r.status == 404:
                gone = time.monotonic() - t_left
            else:
                expect_json(r, 200)
        time.sleep(0.25)
    check(gone is not None, "a ttl 2 session's name still there on n3 4.5 s after its last sign of life")
    check(gone >= 1.9, f"a ttl 2 session expired after {gone:.2f} s: before its deadline")
    check(gone <= 3.6, f"a ttl 2 session's name went on n3 only after {gone:.2f} s (want within 1 s of 2 s)")
    ctx.note(f"ttl 2 session's name gone on another node {gone:.2f} s after its last sign of life")
    r = a.post(f"/v1/sessions/{kept.id}/heartbeat", token=kept.token, node=n1)
    check(r.status == 200, f"a session renewed only by reads with its token on other nodes expired: {r.desc()}")
    expect_error(a.post(f"/v1/sessions/{left.id}/heartbeat", token=left.token, node=n3), 404, "session_not_found")


# --------------------------------------------------------------------------
# Names


@test()
def test_names(ctx):
    cl, a, (n1, n2, n3) = three(ctx)
    s1 = a.session(node=n1)
    s2 = a.session(node=n2)
    k, v = "svc/db_worker", {"host": "10.0.0.5", "port": 5432}
    r = a.put(name_path(k), {"value": v}, token=s1.token, node=n3, min_index=False)
    eq(expect_json(r, 201), {"key": k, "session": s1.id, "value": v}, "PUT a name through n3")
    served(r, n1, "a write for a session homed on n1")
    i1 = windex(r)
    # read your writes on the node asked, with no min_index
    r = a.get(name_path(k), node=n3, min_index=False)
    eq(expect_json(r, 200), {"key": k, "session": s1.id, "value": v}, "GET on the node the write was asked")
    check(r.index >= i1, f"X-Rollcall-Index {r.index} of a read after the write at {i1}")
    served(r, n3, "a read")
    r = a.put(name_path(k), {"value": [1, 2]}, token=s1.token, node=n2)
    eq(expect_json(r, 200), {"key": k, "session": s1.id, "value": [1, 2]}, "PUT again: value replaced")
    check(windex(r) > i1, "the update's index is above the registration's")
    r = a.put(name_path(k), {"value": "mine"}, token=s2.token, node=n3)
    body = expect_error(r, 409, "name_taken")
    eq(body.get("owner"), s1.id, "owner in 409")
    for nd in (n1, n2, n3):
        r = a.get(name_path(k), node=nd)
        eq(expect_json(r, 200), {"key": k, "session": s1.id, "value": [1, 2]}, f"GET on {nd.name}")
        served(r, nd, "a read")
    eq(expect_json(a.get("/v1/names/svc%2Fdb_worker"), 200)["session"], s1.id, "%2F is /")
    expect_error(a.get(name_path("svc/none")), 404, "name_not_found")
    expect_error(a.put("/v1/names/", {"value": 1}, token=s1.token), 400, "invalid_key")
    expect_error(a.put(name_path("x"), {"value": 1}), 401, "missing_token")

    # await on one node, registered through another
    k2 = "svc/late"
    h = in_thread(lambda: a.get(name_path(k2) + "?wait=10", node=n3, min_index=False, timeout=15))
    time.sleep(0.3)
    r = a.put(name_path(k2), {"value": "here"}, token=s2.token, node=n1)
    expect_status(r, 201)
    t_put = time.monotonic()
    w = h.result(15)
    eq(expect_json(w, 200), {"key": k2, "session": s2.id, "value": "here"}, "await answer")
    served(w, n3, "the await")
    check(h.done_at - t_put < 3.0, f"await answered {h.done_at - t_put:.2f} s after the registration")
    r = a.get(name_path("svc/never") + "?wait=1", node=n2)
    expect_error(r, 404, "name_not_found")
    check(0.9 <= r.elapsed <= 3.0, f"await of 1 s answered after {r.elapsed:.2f} s")

    # delete
    expect_error(a.delete(name_path(k), token=s2.token, node=n1), 403, "not_owner")
    r = a.delete(name_path(k), token=s1.token, node=n2)
    expect_no_body(r, 204)
    served(r, n1, "a delete for a session homed on n1")
    windex(r)
    expect_error(a.get(name_path(k), node=n2, min_index=False), 404, "name_not_found")
    expect_error(a.delete(name_path(k), token=s1.token, node=n3), 404, "name_not_found")
    expect_error(a.get(name_path(k), node=n1), 404, "name_not_found")

    # listing
    made = {}
    for i, (key, s, nd) in enumerate((("p/d", s1, n1), ("p/b", s2, n3), ("p/a", s1, n2), ("p/c", s2, n1))):
        expect_status(a.put(name_path(key), {"value": i}, token=s.token, node=nd), 201)
        made[key] = {"key": key, "session": s.id, "value": i}
    for nd in (n1, n2, n3):
        r = a.get("/v1/names?prefix=p/&limit=3", node=nd)
        body = expect_json(r, 200)
        check(r.index >= a.seen, "X-Rollcall-Index of the listing below the last write's")
        eq(body, {"names": [made["p/a"], made["p/b"], made["p/c"]], "next": "p/c"}, f"first page on {nd.name}")
        body = expect_json(a.get("/v1/names?prefix=p/&limit=3&after=p/c", node=nd), 200)
        eq(body, {"names": [made["p/d"]], "next": None}, f"second page on {nd.name}")


# --------------------------------------------------------------------------
# Properties and groups


@test()
def test_props(ctx):
    cl, a, (n1, n2, n3) = three(ctx)
    s1, s2, s3 = a.session(node=n1), a.session(node=n2), a.session(node=n3)
    key = "job/123"
    path = "/v1/props/" + q(key, safe="/")
    r = a.put(path, {"value": "w1"}, token=s1.token, node=n2)
    eq(expect_json(r, 201), {"key": key, "session": s1.id, "value": "w1"}, "first holder")
    served(r, n1, "a prop set for a session homed on n1")
    windex(r)
    eq(expect_json(a.put(path, {"value": {"w": 2}}, token=s2.token, node=n3), 201),
       {"key": key, "session": s2.id, "value": {"w": 2}}, "second holder")
    eq(expect_json(a.put(path, {"value": "w1b"}, token=s1.token, node=n3), 200),
       {"key": key, "session": s1.id, "value": "w1b"}, "value replaced")
    want = {"key": key, "holders": [{"session": s1.id, "value": "w1b"}, {"session": s2.id, "value": {"w": 2}}]}
    for nd in (n1, n2, n3):
        eq(expect_json(a.get(path, node=nd), 200), want, f"holders on {nd.name}, in registration order")
    expect_error(a.delete(path, token=s3.token, node=n1), 404, "not_held")
    r = a.delete(path, token=s2.token, node=n1)
    expect_no_body(r, 204)
    served(r, n2, "a prop delete for a session homed on n2")
    eq(expect_json(a.get(path, node=n2), 200)["holders"], [{"session": s1.id, "value": "w1b"}], "after delete")
    expect_status(a.put("/v1/props/job/456", None, token=s3.token, node=n1), 201)
    for nd in (n1, n2, n3):
        eq(expect_json(a.get("/v1/props?prefix=job/", node=nd), 200),
           {"props": [{"key": "job/123", "holders": 1}, {"key": "job/456", "holders": 1}], "next": None},
           f"props listing on {nd.name}")
        eq(expect_json(a.get("/v1/props?prefix=job/&limit=1", node=nd), 200),
           {"props": [{"key": "job/123", "holders": 1}], "next": "job/123"}, "props page")
    eq(expect_json(a.get("/v1/props/none"), 200), {"key": "none", "holders": []}, "prop nobody holds")


@test()
def test_groups(ctx):
    cl, a, (n1, n2, n3) = three(ctx)
    ss = [a.session(node=nd) for nd in (n1, n2, n3)]
    g = "db_workers"
    for i, (s, nd) in enumerate(zip(ss, (n2, n3, n1))):
        r = a.put(f"/v1/groups/{g}", {"value": {"port": 5001 + i}}, token=s.token, node=nd)
        eq(expect_json(r, 201), {"group": g, "session": s.id, "value": {"port": 5001 + i}}, "join")
        served(r, cl.nodes[i], "a join for a session homed elsewhere")
        windex(r)
    eq(expect_json(a.put(f"/v1/groups/{g}", {"value": {"port": 6001}}, token=ss[0].token), 200),
       {"group": g, "session": ss[0].id, "value": {"port": 6001}}, "join again: value replaced")
    members = [{"session": ss[0].id, "value": {"port": 6001}}, {"session": ss[1].id, "value": {"port": 5002}},
               {"session": ss[2].id, "value": {"port": 5003}}]
    for nd in (n1, n2, n3):
        eq(expect_json(a.get(f"/v1/groups/{g}", node=nd), 200), {"group": g, "members": members},
           f"members on {nd.name}, in join order")
    # round_robin through one node visits every member once
    for nd in (n1, n2, n3):
        got = []
        for _ in range(3):
            body = expect_json(a.get(f"/v1/groups/{g}?pick=round_robin", node=nd), 200)
            eq(set(body), {"group", "member"}, "keys of a pick")
            check(body["member"] in members, f"picked {body['member']} is not a member")
            got.append(body["member"]["session"])
        eq(sorted(got), sorted(s.id for s in ss), f"3 round_robin picks through {nd.name}")
    # hash: the same member for the same key, whatever node is asked
    for key in ("user-42", "user-7", "x"):
        picks = {expect_json(a.get(f"/v1/groups/{g}?pick=hash&hash_key={key}", node=nd), 200)["member"]["session"]
                 for nd in (n1, n2, n3, n1, n2, n3)}
        eq(len(picks), 1, f"hash picks of {key} through the three nodes")
    for _ in range(4):
        body = expect_json(a.get(f"/v1/groups/{g}?pick=random"), 200)
        check(body["group"] == g and body["member"] in members, f"random pick {body}")
    expect_error(a.get(f"/v1/groups/{g}?pick=hash"), 400, "bad_request")
    expect_error(a.get(f"/v1/groups/{g}?pick=first"), 400, "bad_request")
    eq(expect_json(a.get("/v1/groups/nobody"), 200), {"group": "nobody", "members": []}, "empty group")
    expect_error(a.get("/v1/groups/nobody?pick=random"), 404, "group_empty")
    r = a.delete(f"/v1/groups/{g}", token=ss[1].token, node=n1)
    expect_no_body(r, 204)
    served(r, n2, "a leave for a session homed on n2")
    expect_error(a.delete(f"/v1/groups/{g}", token=ss[1].token, node=n3), 404, "not_held")
    expect_status(a.put("/v1/groups/db_other", None, token=ss[1].token), 201)
    for nd in (n1, n2, n3):
        eq(expect_json(a.get("/v1/groups?prefix=db_", node=nd), 200),
           {"groups": [{"group": "db_other", "members": 1}, {"group": g, "members": 2}], "next": None},
           f"groups listing on {nd.name}")
    # a member's session ends: it leaves at once, on every node
    expect_no_body(a.delete(f"/v1/sessions/{ss[2].id}", token=ss[2].token, node=n2), 204)
    for nd in (n1, n2, n3):
        eq(expect_json(a.get(f"/v1/groups/{g}", node=nd), 200)["members"], members[:1],
           f"members on {nd.name} after a member's session ended")


# --------------------------------------------------------------------------
# Messages and calls


def _recv(a, s, node, after=0, wait=0, **kw):
    return a.get(f"/v1/sessions/{s.id}/messages?after={after}&wait={wait}", token=s.token, node=node, **kw)


@test()
def test_messages(ctx):
    cl, a, (n1, n2, n3) = three(ctx)
    s1, s2, s3 = a.session(node=n1), a.session(node=n2), a.session(node=n3)
    expect_status(a.put(name_path("inbox"), None, token=s1.token, node=n2), 201)
    for s in (s1, s3):
        expect_status(a.put("/v1/props/bcast", None, token=s.token), 201)
    expect_status(a.put("/v1/groups/gg", None, token=s3.token), 201)

    r = a.post("/v1/send", {"to": {"name": "inbox"}, "body": {"n": 1}}, token=s2.token, node=n3)
    eq(expect_json(r, 202), {"delivered": 1}, "send to a name held by a session homed elsewhere")
    r = a.post("/v1/send", {"to": {"session": s1.id}, "body": {"n": 2}}, node=n2)
    eq(expect_json(r, 202), {"delivered": 1}, "send to a session homed elsewhere, no token")
    r = _recv(a, s1, n2)
    eq(expect_json(r, 200), {"messages": [
        {"seq": 1, "from": s2.id, "to": {"name": "inbox"}, "body": {"n": 1}},
        {"seq": 2, "from": None, "to": {"session": s1.id}, "body": {"n": 2}}], "last_seq": 2},
        "receive through n2 (forwarded to the home)")
    served(r, n1, "a receive for a session homed on n1")
    eq(expect_json(_recv(a, s1, n3, after=2), 200), {"messages": [], "last_seq": 2}, "after acknowledging")

    # a long-poll receive through n3 answered by a send through n2
    h = in_thread(lambda: _recv(a, s1, n3, after=2, wait=10, timeout=15))
    time.sleep(0.3)
    eq(expect_json(a.post("/v1/send", {"to": {"name": "inbox"}, "body": "three"}, token=s3.token, node=n2), 202),
       {"delivered": 1}, "send")
    t_send = time.monotonic()
    body = expect_json(h.result(15), 200)
    eq(body, {"messages": [{"seq": 3, "from": s3.id, "to": {"name": "inbox"}, "body": "three"}], "last_seq": 3},
       "the waiting receive")
    check(h.done_at - t_send < 3.0, f"the waiting receive answered {h.done_at - t_send:.2f} s after the send")

    # broadcasts count every node's receivers
    r = a.post("/v1/send", {"to": {"prop": "bcast"}, "body": "all"}, node=n2)
    eq(expect_json(r, 202), {"delivered": 2, "full": [], "unreachable": []}, "broadcast to a prop on n1 and n3")
    eq(expect_json(_recv(a, s3, n1), 200),
       {"messages": [{"seq": 1, "from": None, "to": {"prop": "bcast"}, "body": "all"}], "last_seq": 1},
       "s3 (home n3) receives through n1")
    eq(expect_json(a.post("/v1/send", {"to": {"group": "gg", "pick": "random"}, "body": 1}, node=n1), 202),
       {"delivered": 1}, "send to a group pick")
    eq(expect_json(a.post("/v1/send", {"to": {"group": "gg"}, "body": 2}, node=n1), 202),
       {"delivered": 1, "full": [], "unreachable": []}, "send to a whole group")
    eq(expect_json(a.post("/v1/send", {"to": {"prop": "nobody"}, "body": 2}), 202),
       {"delivered": 0, "full": [], "unreachable": []}, "broadcast to nobody")
    expect_error(a.post("/v1/send", {"to": {"name": "nobody"}, "body": 1}), 404, "name_not_found")
    expect_error(a.post("/v1/send", {"to": {"session": NO_SUCH_ID}, "body": 1}), 404, "session_not_found")
    expect_error(a.post("/v1/send", {"to": {"group": "nobody", "pick": "random"}, "body": 1}), 404, "group_empty")
    expect_error(a.get(f"/v1/sessions/{s1.id}/messages", token=s2.token, node=n3), 403, "bad_token")
    expect_error(a.get(f"/v1/sessions/{NO_SUCH_ID}/messages", token=s2.token, node=n3), 404,
                 "session_not_found")


@test()
def test_calls(ctx):
    cl, a, (n1, n2, n3) = three(ctx)
    srv, caller = a.session(node=n1), a.session(node=n2)
    expect_status(a.put(name_path("svc"), None, token=srv.token), 201)
    call = {"to": {"name": "svc"}, "body": {"q": "ping"}, "timeout_ms": 10000}
    h = in_thread(lambda: a.post("/v1/call", call, token=caller.token, node=n3, timeout=15))
    r = _recv(a, srv, n2, wait=5)
    body = expect_json(r, 200)
    eq(len(body["messages"]), 1, f"messages {body}")
    m = body["messages"][0]
    eq(set(m), {"seq", "from", "to", "body", "reply_to"}, "keys of a call's message")
    eq((m["seq"], m["from"], m["to"], m["body"]), (1, caller.id, {"name": "svc"}, {"q": "ping"}), "call message")
    check(HEX32.fullmatch(m["reply_to"] or ""), f"reply_to {m['reply_to']!r}")
    rid = m["reply_to"]
    expect_error(a.post(f"/v1/replies/{rid}", {"body": 1}, token=caller.token, node=n1), 403, "bad_token")
    expect_error(a.post(f"/v1/replies/{rid}", {"body": 1}, node=n1), 401, "missing_token")
    r = a.post(f"/v1/replies/{rid}", {"body": {"a": "pong"}}, token=srv.token, node=n3)
    expect_no_body(r, 204)
    w = h.result(15)
    eq(expect_json(w, 200), {"body": {"a": "pong"}, "from": srv.id}, "the call's answer")
    expect_error(a.post(f"/v1/replies/{rid}", {"body": 2}, token=srv.token, node=n2), 404, "call_not_found")
    expect_error(a.post(f"/v1/replies/{'0' * 32}", {"body": 2}, token=srv.token, node=n2), 404, "call_not_found")

    r = a.post("/v1/call", {"to": {"name": "svc"}, "body": 1, "timeout_ms": 500}, node=n2)
    expect_error(r, 504, "call_timeout")
    check(0.45 <= r.elapsed <= 3.0, f"a 500 ms call timed out after {r.elapsed:.2f} s")
    expect_error(a.post("/v1/call", {"to": {"prop": "p"}, "body": 1}), 400, "bad_request")
    expect_error(a.post("/v1/call", {"to": {"name": "nobody"}, "body": 1}), 404, "name_not_found")

    # the receiver's session ends while the call waits: receiver_gone at once
    h = in_thread(lambda: a.post("/v1/call", {"to": {"session": srv.id}, "body": 3, "timeout_ms": 20000},
                                 node=n3, timeout=25))
    expect_status(_recv(a, srv, n1, after=2, wait=5), 200)
    expect_no_body(a.delete(f"/v1/sessions/{srv.id}", token=srv.token, node=n2), 204)
    t_del = time.monotonic()
    expect_error(h.result(25), 503, "receiver_gone")
    check(h.done_at - t_del < 3.0, f"receiver_gone came {h.done_at - t_del:.2f} s after the delete")


# --------------------------------------------------------------------------
# Events


def _ev_keys(ev):
    return ({"index", "type", "session"} | ({"key"} if ev["type"].startswith(("name_", "prop_")) else set())
            | ({"group"} if ev["type"].startswith("group_") else set())
            | ({"value"} if ev["type"] in ("name_registered", "name_updated", "prop_set", "group_joined")
               else set()))


def _read_sse_event(resp):
    """One SSE event block from a streaming http.client response (blocks
    without data, such as a lone "retry:", are skipped)."""
    fields = []
    while True:
        line = resp.readline()
        if not line:
            raise Fail(f"event stream ended; fields so far {fields}")
        line = line.decode("utf-8").rstrip("\r\n")
        if line == "":
            if any(k == "data" for k, _ in fields):
                return dict(fields)
            fields = []
            continue
        if line.startswith(":"):
            continue
        k, _, v = line.partition(":")
        fields.append((k, v[1:] if v.startswith(" ") else v))


@test()
def test_events(ctx):
    cl, a, (n1, n2, n3) = three(ctx)
    s1 = a.session(node=n1)
    r = a.get("/v1/names?prefix=ev/", node=n2)
    eq(expect_json(r, 200), {"names": [], "next": None}, "empty listing")
    start = r.index
    w = []  # (index of the answer, the event expected)
    r = a.put(name_path("ev/a"), {"value": 1}, token=s1.token, node=n3)
    expect_status(r, 201)
    w.append({"index": r.index, "type": "name_registered", "session": s1.id, "key": "ev/a", "value": 1})
    r = a.put(name_path("ev/a"), {"value": 2}, token=s1.token, node=n2)
    expect_status(r, 200)
    w.append({"index": r.index, "type": "name_updated", "session": s1.id, "key": "ev/a", "value": 2})
    r = a.put("/v1/props/ev/p", {"value": "pv"}, token=s1.token, node=n1)
    expect_status(r, 201)
    w.append({"index": r.index, "type": "prop_set", "session": s1.id, "key": "ev/p", "value": "pv"})
    r = a.put("/v1/groups/ev/g", {"value": {"port": 1}}, token=s1.token, node=n3)
    expect_status(r, 201)
    w.append({"index": r.index, "type": "group_joined", "session": s1.id, "group": "ev/g", "value": {"port": 1}})
    r = a.delete(name_path("ev/a"), token=s1.token, node=n2)
    expect_status(r, 204)
    w.append({"index": r.index, "type": "name_unregistered", "session": s1.id, "key": "ev/a"})
    idx = [e["index"] for e in w]
    check(idx == sorted(idx) and len(set(idx)) == len(idx) and idx[0] > start,
          f"write indices {idx} after the listing's {start}: not increasing")

    for nd in (n1, n2, n3):
        r = a.get(f"/v1/events?after={start}&prefix=ev/&wait=5", node=nd, min_index=False)
        body = expect_json(r, 200)
        served(r, nd, "a long-poll")
        eq(body, {"events": w, "last": w[-1]["index"]}, f"events on {nd.name} after the listing's index")
        body = expect_json(a.get(f"/v1/events?after={idx[1]}&prefix=ev/&max=2", node=nd), 200)
        eq(body, {"events": w[2:4], "last": idx[3]}, f"events after {idx[1]}, max 2, on {nd.name}")
    # the end of a session: its releases, then session_deleted, all at the
    # delete's index, wherever they are read
    r = a.delete(f"/v1/sessions/{s1.id}", token=s1.token, node=n3)
    expect_status(r, 204)
    di = r.index
    for nd in (n1, n2, n3):
        body = expect_json(a.get(f"/v1/events?after={idx[-1]}&wait=5", node=nd), 200)
        evs = body["events"]
        eq(sorted((e["type"], e.get("key") or e.get("group")) for e in evs[:-1]),
           [("group_left", "ev/g"), ("prop_removed", "ev/p")], f"releases on {nd.name}")
        eq(evs[-1], {"index": di, "type": "session_deleted", "session": s1.id}, "last event")
        for e in evs:
            eq(e["index"], di, f"index of {e['type']} (the delete's)")
            eq(set(e), _ev_keys(e), f"keys of {e}")
        eq(body["last"], di, "last")

    # a long-poll waiting on one node, woken by a write through another
    s2 = a.session(node=n2)
    cur = a.seen
    h = in_thread(lambda: a.get(f"/v1/events?after={cur}&prefix=ev/&wait=10", node=n1, min_index=False,
                                timeout=15))
    time.sleep(0.3)
    r = a.put(name_path("ev/b"), {"value": "b"}, token=s2.token, node=n3)
    expect_status(r, 201)
    t_put = time.monotonic()
    body = expect_json(h.result(15), 200)
    eq(body, {"events": [{"index": r.index, "type": "name_registered", "session": s2.id, "key": "ev/b",
                          "value": "b"}], "last": r.index}, "the waiting long-poll")
    check(h.done_at - t_put < 3.0, f"the long-poll answered {h.done_at - t_put:.2f} s after the write")

    # the stream: the same events, each with its index as id
    conn = http.client.HTTPConnection(HOST, n2.port, timeout=10)
    try:
        conn.request("GET", f"/v1/events?after={start}&prefix=ev/", headers={"Accept": "text/event-stream"})
        resp = conn.getresponse()
        eq(resp.status, 200, "stream status")
        check((resp.getheader("Content-Type") or "").startswith("text/event-stream"),
              f"stream Content-Type {resp.getheader('Content-Type')!r}")
        eq(resp.getheader("X-Rollcall-Node"), "n2", "X-Rollcall-Node of a stream")
        for want in w[:3]:
            ev = _read_sse_event(resp)
            eq(ev.get("event"), want["type"], "event:")
            eq(ev.get("id"), str(want["index"]), "id:")
            eq(json.loads(ev.get("data", "null")), want, "data:")
    finally:
        conn.close()

    # an index beyond anything etcd has: reset at once; min_index likewise 503
    r = a.get("/v1/events?after=999999999999&wait=5", node=n3, min_index=False)
    body = expect_json(r, 200)
    check(r.elapsed < 3.0, f"after beyond etcd's revision answered after {r.elapsed:.2f} s")
    eq(len(body["events"]), 1, f"events {body}")
    ev = body["events"][0]
    eq((ev.get("type"), sorted(ev)), ("reset", ["index", "type"]), "the reset object")
    check(ev["index"] >= a.seen, f"reset index {ev['index']} below the last write's {a.seen}")
    r = a.get(name_path("ev/b"), node=n1, min_index=999999999999)
    expect_error(r, 503, "cluster_unavailable")
    check(r.elapsed < 3.0, f"min_index beyond etcd's revision answered after {r.elapsed:.2f} s")
    expect_error(a.get(name_path("ev/b") + "?min_index=x", node=n1, min_index=False), 400, "bad_request")


# --------------------------------------------------------------------------
# Operations: every answer names its node


@test()
def test_every_answer_names_its_node(ctx):
    cl, a, (n1, n2, n3) = three(ctx)
    for nd in cl.nodes:
        c = nd.client()
        r = c.get("/healthz")
        body = expect_json(r, 200)
        eq(body.get("status"), "ok", "healthz status")
        for path, status in (("/healthz", 200), ("/metrics", 200), ("/", 200), ("/v1/stats", 200),
                             ("/v1/nope", 404), ("/v1/names/x", 404), ("/v1/nodes", 200)):
            r = c.get(path)
            expect_status(r, status)
            eq(node_of(r), nd.name, f"X-Rollcall-Node of GET {path}")
        r = c.request("PATCH", "/v1/names/x")
        expect_status(r, 405)
        eq(node_of(r), nd.name, "X-Rollcall-Node of a 405")
        r = c.post("/v1/sessions", raw="{bad")
        expect_error(r, 400, "bad_request")
        eq(node_of(r), nd.name, "X-Rollcall-Node of a 400")
        c.close()


@test()
def test_clients_cannot_pass_for_a_node(ctx):
    """The node-to-node inputs need the cluster's secret: a client's guess
    is a 404 on /internal/deliver, and its X-Rollcall-Receiver is ignored."""
    cl, a, (n1, n2, n3) = three(ctx)
    holder = a.session(node=n2)
    other = a.session(node=n3)
    expect_status(a.put(name_path("pass/x"), None, token=holder.token, node=n2), 201)
    c1 = n1.client()
    body = [{"from": None, "to": {"session": other.id}, "body": 1, "receivers": [other.id]}]
    for hdrs in ({}, {"X-Rollcall-Forward": "0" * 32}, {"X-Rollcall-Forward": "not-a-secret"}):
        expect_error(c1.post("/internal/deliver", body, headers=hdrs), 404, "not_found")
    r = c1.post("/v1/send", {"to": {"name": "pass/x"}, "body": "hi"},
                headers={"X-Rollcall-Receiver": other.id, "X-Rollcall-Forward": "0" * 32})
    eq(expect_json(r, 202), {"delivered": 1}, "a send naming a receiver in a header")
    got = expect_json(a.get(f"/v1/sessions/{holder.id}/messages", token=holder.token, node=n1), 200)
    eq(len(got["messages"]), 1, "the name's holder got it")
    got = expect_json(a.get(f"/v1/sessions/{other.id}/messages", token=other.token, node=n1), 200)
    eq(got["messages"], [], "the session named in the header got nothing")
