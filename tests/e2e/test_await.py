"""GET /v1/names/{key}?wait=S: await a name."""

import threading
import time

from harness import (RawConn, check, eq, expect_error, expect_json,
                     expect_status, in_thread, name_path, test)


@test
def test_wait_present_answers_at_once(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    expect_status(c.put_name(k, "here", s.token), 201)
    r = c.get(name_path(k) + "?wait=5")
    eq(expect_json(r, 200), {"key": k, "session": s.id, "value": "here"}, "body")
    check(r.elapsed < 0.5, f"took {r.elapsed:.2f} s")
    r = c.get(name_path(k) + "?wait=300")
    expect_status(r, 200)
    check(r.elapsed < 0.5, f"wait=300 on a present name took {r.elapsed:.2f} s")


@test
def test_wait_answers_when_registered(ctx):
    k = ctx.uid()
    c = ctx.client()
    s = c.session()
    t0 = time.monotonic()
    waiter = in_thread(lambda: ctx.client().get(name_path(k) + "?wait=5"))
    time.sleep(0.5)
    check(waiter.done_at is None, "the waiter answered before the name was registered")
    expect_status(c.put_name(k, {"port": 8080}, s.token), 201)
    r = waiter.result(10)
    waited = waiter.done_at - t0
    eq(expect_json(r, 200), {"key": k, "session": s.id, "value": {"port": 8080}}, "body")
    check(0.45 <= waited <= 1.5, f"waiter answered after {waited:.2f} s (registered at 0.5 s)")


@test
def test_wait_times_out_404(ctx):
    c = ctx.client()
    r = c.get(name_path(ctx.uid()) + "?wait=1")
    expect_error(r, 404, "name_not_found")
    check(0.99 <= r.elapsed <= 2.0, f"wait=1 answered after {r.elapsed:.2f} s")
    r = c.get(name_path(ctx.uid()) + "?wait=0")
    expect_error(r, 404, "name_not_found")
    check(r.elapsed < 0.5, f"wait=0 took {r.elapsed:.2f} s")


@test
def test_wait_bad_values(ctx):
    c = ctx.client()
    k = ctx.uid()
    for bad in ["-1", "1.5", "abc", "", "301", "1000000000000000000000", "+1", "%2B1", "1e1", " 1"]:
        r = c.get(name_path(k) + "?wait=" + bad.replace(" ", "%20"))
        expect_error(r, 400, "bad_request")
        check(r.elapsed < 0.5, f"wait={bad!r} took {r.elapsed:.2f} s")


@test
def test_wait_percent_decoded(ctx):
    c = ctx.client()
    k = ctx.uid()
    s = c.session()
    expect_status(c.put_name(k, 1, s.token), 201)
    expect_json(c.get(name_path(k) + "?wait=%33"), 200)  # wait=3
    r = c.get(name_path(ctx.uid()) + "?w%61it=%31")  # wait=1, name encoded too
    expect_error(r, 404, "name_not_found")
    check(r.elapsed >= 0.99, f"w%61it=%31 not read as wait=1 (answered in {r.elapsed:.2f} s)")


@test
def test_wait_invalid_key(ctx):
    c = ctx.client()
    r = c.get("/v1/names/%00?wait=5")
    expect_error(r, 400, "invalid_key")
    check(r.elapsed < 0.5, "invalid key waited")


@test
def test_wait_then_expiry_of_holder(ctx):
    # a waiter sees the name of a ttl 1 session; after it expires a new
    # waiter waits again
    c = ctx.client()
    k = ctx.uid()
    s = c.session(ttl=1)
    w = in_thread(lambda: ctx.client().get(name_path(k) + "?wait=5"))
    time.sleep(0.2)
    expect_status(c.put_name(k, "first", s.token), 201)
    eq(expect_json(w.result(), 200)["value"], "first", "awaited value")
    time.sleep(2.0)
    expect_error(c.get_name(k), 404, "name_not_found")
    r = c.get(name_path(k) + "?wait=1")
    expect_error(r, 404, "name_not_found")


def _many_waiters(ctx, keys):
    """One raw connection per key waiting with wait=10; register them all;
    every waiter must get 200 with its key."""
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session()
    conns = []
    for k in keys:
        rc = RawConn(srv, timeout=10)
        rc.send(f"GET {name_path(k)}?wait=10 HTTP/1.1\r\nHost: x\r\n\r\n")
        conns.append(rc)
    time.sleep(0.7)
    # nobody has an answer yet
    for rc in conns[:10]:
        rc.sock.setblocking(False)
        try:
            data = rc.sock.recv(10)
        except BlockingIOError:
            data = None
        rc.sock.setblocking(True)
        rc.sock.settimeout(10)
        check(data is None, f"a waiter got {data!r} before registration")
    t0 = time.monotonic()
    for k in sorted(set(keys)):
        expect_status(c.put_name(k, {"k": k}, s.token), 201)
    for k, rc in zip(keys, conns):
        status, _, body = rc.read_response()
        eq(status, 200, f"waiter for {k}: {body[:100]!r}")
        import json
        eq(json.loads(body)["key"], k, "awaited key")
        rc.close()
    took = time.monotonic() - t0
    check(took < 3.0, f"waiters answered only after {took:.2f} s")
    expect_json(c.healthz(), 200)
    srv.stop_clean()


@test
def test_100_waiters_same_key(ctx):
    _many_waiters(ctx, ["same/key"] * 100)


@test
def test_100_waiters_distinct_keys(ctx):
    _many_waiters(ctx, [f"k/{i:03d}" for i in range(100)])


@test
def test_100_waiters_threads(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session()
    results = [None] * 100

    def run(i):
        results[i] = ctx.client(srv, timeout=15).get("/v1/names/thr?wait=10")
    ts = [threading.Thread(target=run, args=(i,)) for i in range(100)]
    for t in ts:
        t.start()
    time.sleep(1.0)
    check(all(r is None for r in results), "a waiter answered before registration")
    expect_status(c.put_name("thr", "v", s.token), 201)
    for t in ts:
        t.join(10)
    statuses = [r.status if r else None for r in results]
    eq(statuses.count(200), 100, f"waiters answered 200 (statuses {set(statuses)})")
    srv.stop_clean()


@test
def test_waiters_that_disconnect(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session()
    conns = []
    for i in range(20):
        rc = RawConn(srv)
        rc.send(f"GET /v1/names/gone?wait={1 + i % 3} HTTP/1.1\r\nHost: x\r\n\r\n")
        conns.append(rc)
    time.sleep(0.3)
    for rc in conns:
        rc.close()
    time.sleep(0.2)
    expect_json(c.healthz(), 200)
    expect_status(c.put_name("gone", 1, s.token), 201)
    time.sleep(3.2)  # past every waiter's deadline
    expect_json(c.healthz(), 200)
    eq(expect_json(c.get_name("gone"), 200)["value"], 1, "value")
    srv.stop_clean()


@test
def test_sigterm_answers_pending_waits(ctx):
    srv = ctx.start()
    waiters = [in_thread(lambda i=i: ctx.client(srv, timeout=10).get(f"/v1/names/never{i % 2}?wait=30"))
               for i in range(6)]
    time.sleep(0.7)
    check(all(w.done_at is None for w in waiters), "a waiter answered early")
    t0 = time.monotonic()
    srv.stop_clean()
    for w in waiters:
        r = w.result(5)
        expect_error(r, 503, "shutting_down")
    took = max(w.done_at for w in waiters) - t0
    check(took < 2.0, f"waiters answered {took:.2f} s after SIGTERM")
