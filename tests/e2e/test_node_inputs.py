"""What cluster mode added to the request path, on a single node: min_index
on every /v1 request, GET /v1/nodes, ?node= on the sessions listing, and
the node-to-node inputs a client must not be able to use
(/internal/deliver, X-Rollcall-Forward, X-Rollcall-Receiver)."""

from harness import (check, eq, expect_error, expect_json, expect_status, test)


@test
def test_min_index_bad_values_are_400(ctx):
    c = ctx.client()
    for bad in ["x", "-1", "1.5", "", "%20", "1e3"]:
        expect_error(c.get(f"/v1/names?min_index={bad}"), 400, "bad_request")
        expect_error(c.post(f"/v1/sessions?min_index={bad}"), 400, "bad_request")


@test
def test_min_index_at_or_below_the_index_is_served(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session()
    r = c.put_name("mi/a", 1, s.token)
    expect_status(r, 201)
    for n in (0, r.index - 1, r.index):
        body = expect_json(c.get(f"/v1/names/mi/a?min_index={n}"), 200)
        eq(body["session"], s.id, f"min_index={n}")


@test
def test_min_index_beyond_a_single_node_is_503_at_once(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session()
    idx = c.get("/v1/names").index
    r = c.put_name(f"mi/{ctx.uid()}", 1, s.token, headers=None)
    expect_status(r, 201)
    r = c.get(f"/v1/names?min_index={r.index + 1}")
    expect_error(r, 503, "cluster_unavailable")
    check(r.elapsed < 1.0, f"answered after {r.elapsed:.2f} s")
    # a write refused this way changed nothing
    r = c.request("PUT", f"/v1/names/mi-never?min_index={idx + 1000}", token=s.token)
    expect_error(r, 503, "cluster_unavailable")
    expect_error(c.get_name("mi-never"), 404, "name_not_found")


@test
def test_nodes_on_a_single_node_lists_it(ctx):
    srv = ctx.start("--node", "solo-1")
    c = ctx.client(srv)
    c.session()
    body = expect_json(c.get("/v1/nodes"), 200)
    eq(len(body["nodes"]), 1, "one node")
    n = body["nodes"][0]
    eq((n["node"], n["url"], n["sessions"]), ("solo-1", f"http://127.0.0.1:{srv.port}", 1), "the node")
    check(n["since"].endswith("Z") and "T" in n["since"], f"since {n['since']!r}")
    eq(c.get("/v1/nodes").header("X-Rollcall-Node"), None, "no X-Rollcall-Node without --etcd")


@test
def test_sessions_node_filter(ctx):
    srv = ctx.start("--node", "solo-2")
    c = ctx.client(srv)
    s = c.session()
    body = expect_json(c.get("/v1/sessions?node=solo-2"), 200)
    eq([x["id"] for x in body["sessions"]], [s.id], "this node's sessions")
    eq(expect_json(c.get("/v1/sessions?node=elsewhere"), 200), {"sessions": [], "next": None}, "another name")
    expect_error(c.get("/v1/sessions?node=%01"), 400, "bad_request")
    expect_error(c.get("/v1/sessions?node=%ff"), 400, "bad_request")


@test
def test_a_client_cannot_use_the_node_to_node_path(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session()
    # a batch as nodes send them (cluster/mail.h): a message, a reply, a sign of life
    body = [{"from": None, "to": {"session": s.id}, "body": 1, "receivers": [s.id]},
            {"reply": "0" * 32, "by": s.id, "body": 1}, {"touch": s.id}]
    expect_error(c.post("/internal/deliver", body), 404, "not_found")
    expect_error(c.post("/internal/deliver", body, headers={"X-Rollcall-Forward": "0" * 32}), 404, "not_found")
    expect_error(c.post("/internal/deliver", raw="{"), 404, "not_found")
    got = expect_json(c.get(f"/v1/sessions/{s.id}/messages", token=s.token), 200)
    eq(got["messages"], [], "nothing delivered")


@test
def test_a_client_cannot_choose_the_receiver(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    holder, other = c.session(), c.session()
    expect_status(c.put_name("rc/x", 1, holder.token), 201)
    r = c.post("/v1/send", {"to": {"name": "rc/x"}, "body": "hi"},
               headers={"X-Rollcall-Receiver": other.id, "X-Rollcall-Forward": "0" * 32})
    eq(expect_json(r, 202), {"delivered": 1}, "send")
    eq(len(expect_json(c.get(f"/v1/sessions/{holder.id}/messages", token=holder.token), 200)["messages"]), 1,
       "the name's holder got it")
    eq(expect_json(c.get(f"/v1/sessions/{other.id}/messages", token=other.token), 200)["messages"], [],
       "the session named in the header did not")
