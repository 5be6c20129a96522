"""X-Rollcall-Index: present on every /v1 answer, counts applied changes."""

import time

from harness import (check, eq, expect_error, expect_json, expect_status, test)


class Index:
    """Tracks the index on a server of its own and checks each step."""

    def __init__(self, c):
        self.c = c
        self.value = c.get("/v1/sessions").index

    def now(self):
        return self.c.get("/v1/names?limit=1").index

    def step(self, delta, what, r=None):
        """The response r (or a fresh read) shows the index moved by delta."""
        got = r.index if r is not None else self.now()
        eq(got - self.value, delta, f"index change after {what}")
        self.value = got


@test
def test_index_counts_changes(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    ix = Index(c)
    r = c.post("/v1/sessions")
    a = expect_json(r, 201)
    ix.step(1, "session_created (in the POST answer)", r)
    ix.step(0, "a read")
    b = c.session()
    ix.step(1, "second session")
    r = c.put_name("k1", 1, a["token"])
    ix.step(1, "name_registered (in the PUT answer)", r)
    r = c.put_name("k1", 2, a["token"])
    expect_status(r, 200)
    ix.step(1, "name_updated", r)
    r = c.put_name("k1", 3, b.token)
    expect_status(r, 409)
    ix.step(0, "a 409", r)
    expect_status(c.heartbeat(a["id"], a["token"]), 200)
    ix.step(0, "a heartbeat")
    expect_status(c.heartbeat(a["id"], a["token"], {"ttl": 100}), 200)
    ix.step(0, "a heartbeat changing the ttl")
    expect_status(c.get_name("k1"), 200)
    expect_status(c.get_session(a["id"]), 200)
    expect_status(c.get("/v1/sessions"), 200)
    ix.step(0, "reads")
    expect_status(c.delete_name("nope", a["token"]), 404)
    expect_status(c.delete_name("k1", b.token), 403)
    expect_status(c.post("/v1/sessions", {"ttl": 0}), 400)
    expect_status(c.put_name("k2", 1, "0" * 32), 403)
    ix.step(0, "failed requests")
    r = c.delete_name("k1", a["token"])
    expect_status(r, 204)
    ix.step(1, "name_unregistered", r)
    for k in ["x", "y", "z"]:
        expect_status(c.put_name(k, k, a["token"]), 201)
    ix.step(3, "three names")
    r = c.delete_session(a["id"], a["token"])
    expect_status(r, 204)
    ix.step(4, "delete of a session with 3 names (3 name_unregistered + session_deleted)", r)
    r = c.delete_session(b.id, b.token)
    ix.step(1, "delete of a session with no name", r)
    srv.stop_clean()


@test
def test_index_counts_expiry(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    ix = Index(c)
    s = c.session(ttl=1)
    expect_status(c.put_name("e1", 1, s.token), 201)
    expect_status(c.put_name("e2", 2, s.token), 201)
    ix.step(3, "session + 2 names")
    t0 = time.monotonic()
    while c.get_session(s.id).status == 200:
        check(time.monotonic() - t0 < 3, "ttl 1 session did not expire")
        time.sleep(0.05)
    ix.step(3, "expiry of a session with 2 names (2 name_unregistered + session_expired)")
    srv.stop_clean()


@test
def test_index_unchanged_by_value_limit_and_bad_bodies(ctx):
    srv = ctx.start("--max-body", "1000", "--max-value", "100")
    c = ctx.client(srv)
    s = c.session()
    ix = Index(c)
    expect_status(c.put_name("v", "x" * 200, s.token), 413)
    expect_status(c.put_name("v", token=s.token, raw="{"), 400)
    expect_status(c.put_name("v", token=s.token, raw='{"value": "' + "x" * 1200 + '"}'), 413)
    expect_status(c.put("/v1/names/%FF", {"value": 1}, token=s.token), 400)
    ix.step(0, "refused PUTs")
    srv.stop_clean()


@test
def test_index_header_on_every_v1_answer(ctx):
    c = ctx.client()
    k = ctx.uid()
    s, o = c.session(), c.session()
    rs = [
        c.post("/v1/sessions"),
        c.get("/v1/sessions"),
        c.get_session(s.id),
        c.heartbeat(s.id, s.token),
        c.put_name(k, 1, s.token),
        c.put_name(k, 2, s.token),
        c.get_name(k),
        c.head(f"/v1/names/{k}"),
        c.get(f"/v1/names?prefix={k}"),
        c.put_name(k, 3, o.token),              # 409
        c.get_name(k + "x"),                    # 404 name_not_found
        c.put_name(k + "x", 1),                 # 401
        c.put_name(k + "x", 1, "0" * 32),       # 403
        c.post("/v1/sessions", {"ttl": 0}),     # 400 invalid_ttl
        c.get_session("0123456789abcdef"),      # 404 session_not_found
        c.delete_name(k, s.token),              # 204
        c.delete_session(s.id, s.token),        # 204
    ]
    last = -1
    for r in rs:
        i = r.index
        check(i >= last, f"{r.method} {r.path}: index went back from {last} to {i}")
        last = i
