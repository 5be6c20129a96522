"""The lease in real time, with ttl 1 sessions."""

import time

from harness import check, eq, expect_error, expect_json, expect_status, test


def _gone_time(c, sid, key, t_limit):
    """Polls until the session 404s; returns the monotonic time at which the
    first 404 answer arrived, or None past t_limit. Checks that the name goes
    with the session (never a session gone and its name still there)."""
    while time.monotonic() < t_limit:
        r = c.get_session(sid)
        if r.status == 404:
            expect_error(r, 404, "session_not_found")
            t = time.monotonic()
            expect_error(c.get_name(key), 404, "name_not_found")
            return t
        expect_status(r, 200)
        time.sleep(0.03)
    return None


@test
def test_ttl1_session_expires_with_its_name(ctx):
    c = ctx.client()
    key = ctx.uid() + "/lease"
    t_send = time.monotonic()
    s = c.session(ttl=1)
    t_created = time.monotonic()
    expect_status(c.put_name(key, "v", s.token), 201)
    time.sleep(max(0, t_send + 0.5 - time.monotonic()))
    expect_json(c.get_session(s.id), 200)
    eq(expect_json(c.get_name(key), 200)["session"], s.id, "name owner at 0.5 s")
    t_gone = _gone_time(c, s.id, key, t_created + 2.5)
    check(t_gone is not None, "ttl 1 session still alive 2.5 s after creation")
    check(t_gone - t_created <= 2.0, f"expired {t_gone - t_created:.2f} s after creation (want <= 2.0)")
    check(t_gone - t_send >= 1.0, f"expired after {t_gone - t_send:.2f} s, before its 1 s deadline")


@test
def test_after_expiry_token_and_heartbeat_refused(ctx):
    c = ctx.client()
    key = ctx.uid()
    s = c.session(ttl=1)
    expect_status(c.put_name(key, 1, s.token), 201)
    t0 = time.monotonic()
    check(_gone_time(c, s.id, key, t0 + 2.5) is not None, "session did not expire")
    expect_error(c.heartbeat(s.id, s.token), 404, "session_not_found")
    expect_error(c.put_name(key, 1, s.token), 403, "bad_token")
    expect_error(c.delete_name(key, s.token), 403, "bad_token")
    expect_error(c.delete_session(s.id, s.token), 404, "session_not_found")
    ids = [e["id"] for e in expect_json(c.get(f"/v1/sessions?after={s.id[:-1]}&limit=5"), 200)["sessions"]]
    check(s.id not in ids, "expired session still listed")
    # the name is free again
    t = c.session()
    expect_status(c.put_name(key, 2, t.token), 201)


@test
def test_heartbeat_keeps_session_alive(ctx):
    c = ctx.client()
    key = ctx.uid()
    t_created = time.monotonic()
    s = c.session(ttl=1)
    expect_status(c.put_name(key, 1, s.token), 201)
    time.sleep(max(0, t_created + 0.7 - time.monotonic()))
    t_hb = time.monotonic()
    expect_json(c.heartbeat(s.id, s.token), 200)
    time.sleep(max(0, t_created + 1.4 - time.monotonic()))
    expect_json(c.get_session(s.id), 200)
    eq(expect_json(c.get_name(key), 200)["session"], s.id, "name at 1.4 s after a heartbeat at 0.7 s")
    t_gone = _gone_time(c, s.id, key, t_hb + 2.5)
    check(t_gone is not None, "session never expired after its last heartbeat")
    check(t_gone - t_hb >= 1.0, f"expired {t_gone - t_hb:.2f} s after the heartbeat (< 1 s)")
    check(t_gone - t_hb <= 2.1, f"expired {t_gone - t_hb:.2f} s after the heartbeat (> 2 s)")


@test
def test_token_on_read_renews_lease(ctx):
    c = ctx.client()
    t_created = time.monotonic()
    s = c.session(ttl=1)
    time.sleep(0.6)
    # a route that needs no token; the token still renews the lease (to ~1.6 s)
    expect_error(c.get_name(ctx.uid(), token=s.token), 404, "name_not_found")
    time.sleep(max(0, t_created + 1.25 - time.monotonic()))
    expect_json(c.get_session(s.id), 200)  # past the first deadline (1.0 s)
    # renewed again with ~0.3 s to spare (to ~2.3 s)
    expect_json(c.get("/v1/sessions?limit=1", token=s.token), 200)
    time.sleep(max(0, t_created + 1.95 - time.monotonic()))
    expect_json(c.get_session(s.id), 200)  # past the second deadline (~1.6 s)


@test
def test_put_name_renews_lease(ctx):
    c = ctx.client()
    u = ctx.uid()
    t_created = time.monotonic()
    s = c.session(ttl=1)
    for i in range(4):  # a PUT every 0.6 s for 2.4 s
        time.sleep(0.6)
        expect_status(c.put_name(f"{u}/{i}", i, s.token), 201)
    check(time.monotonic() - t_created >= 2.4, "timing")
    expect_json(c.get_session(s.id), 200)


@test
def test_get_without_token_does_not_renew(ctx):
    c = ctx.client()
    t_created = time.monotonic()
    s = c.session(ttl=1)
    # reads without the token, every 0.1 s: the session still expires
    gone = None
    while time.monotonic() < t_created + 2.5:
        if c.get_session(s.id).status == 404:
            gone = time.monotonic()
            break
        c.get("/v1/sessions?limit=1")
        time.sleep(0.1)
    check(gone is not None and gone - t_created <= 2.0, "reads without token kept the session alive")


@test
def test_heartbeat_ttl_change_takes_effect(ctx):
    c = ctx.client()
    t_created = time.monotonic()
    s = c.session(ttl=1)
    time.sleep(0.3)
    eq(expect_json(c.heartbeat(s.id, s.token, {"ttl": 3}), 200)["ttl"], 3, "ttl")
    time.sleep(max(0, t_created + 2.2 - time.monotonic()))
    expect_json(c.get_session(s.id), 200)
    # and back down to 1: expires within ~2 s of that heartbeat
    t_hb = time.monotonic()
    expect_json(c.heartbeat(s.id, s.token, {"ttl": 1}), 200)
    gone = _gone_time(c, s.id, ctx.uid(), t_hb + 2.5)
    check(gone is not None and 1.0 <= gone - t_hb <= 2.1,
          f"after heartbeat ttl=1: gone at {None if gone is None else round(gone - t_hb, 2)} s")


@test
def test_invalid_token_on_read_ignored(ctx):
    c = ctx.client()
    for tok in ["f" * 32, "nonsense", ""]:
        expect_error(c.get_name(ctx.uid(), token=tok), 404, "name_not_found")
        expect_json(c.get("/v1/sessions?limit=1", token=tok), 200)
        expect_json(c.get("/v1/names?limit=1", token=tok), 200)
    s = c.session()
    expect_json(c.get_session(s.id, token="f" * 32), 200)
    expect_json(c.post("/v1/sessions", token="f" * 32), 201)


@test
def test_many_ttl1_sessions_expire(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    u = ctx.uid()
    t0 = time.monotonic()
    for i in range(200):
        s = c.session(ttl=1)
        expect_status(c.put_name(f"{u}/{i}", i, s.token), 201)
    t_made = time.monotonic()
    time.sleep(max(0, t_made + 2.2 - time.monotonic()))
    b = expect_json(c.get("/v1/sessions"), 200)
    eq(b["sessions"], [], "sessions left 2 s after the last ttl 1 session")
    b = expect_json(c.get(f"/v1/names?prefix={u}"), 200)
    eq(b["names"], [], "names left")
    srv.stop_clean()
