"""Waiting at scale: the open-file limit raised and logged, --max-connections
held, parked requests counted by kind, and thousands of parked receives each
answered by one message."""

import asyncio
import re
import resource
import socket
import time

from harness import (HOST, RawConn, async_request, check, eq, expect_json, expect_status, in_thread, name_path,
                     test, wait_until)

ROOM_RE = re.compile(r"rollcall: open files: limit (\d+) \(hard limit (\d+)\), room for (\d+) connections")


def _room_line(srv):
    wait_until(lambda: any(ROOM_RE.search(ln) for ln in srv.stderr_lines), 2.0)
    for ln in srv.stderr_lines:
        m = ROOM_RE.search(ln)
        if m:
            return tuple(int(x) for x in m.groups())
    raise AssertionError(f"no open-file line in {srv.stderr_lines}")


@test
def test_open_file_limit_raised_to_the_hard_limit_and_logged(ctx):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard = 4096 if hard == resource.RLIM_INFINITY or hard > 4096 else hard
    srv = ctx.start(nofile=(256, hard))
    limit, hard_seen, room = _room_line(srv)
    eq((limit, hard_seen), (hard, hard), "the soft limit raised to the hard one")
    check(0 < room < limit, f"room for {room} connections under a limit of {limit}")
    lowered = [ln for ln in srv.stderr_lines if "--max-connections" in ln]
    if room < 10000:  # the default --max-connections
        eq(lowered, [f"rollcall: --max-connections 10000 is more than the open-file limit leaves room for: "
                     f"lowered to {room}"], "the line saying --max-connections was lowered")
    expect_status(ctx.client(srv).get("/healthz"), 200)
    srv2 = ctx.start("--max-connections", "100", nofile=(256, hard))
    _room_line(srv2)
    eq([ln for ln in srv2.stderr_lines if "--max-connections" in ln], [], "no line when it fits")


@test
def test_connections_over_max_connections_are_closed(ctx):
    srv = ctx.start("--max-connections", "3")
    held = []
    for _ in range(3):
        rc = RawConn(srv)
        rc.send(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n\r\n")
        eq(rc.read_response()[0], 200, "a connection within the limit")
        held.append(rc)
    extra = RawConn(srv)
    extra.send(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n\r\n")
    check(extra.closed_by_peer(3.0), "a 4th connection over --max-connections 3 is closed unanswered")
    held.pop().sock.close()

    def fourth_served():
        try:
            rc = RawConn(srv, timeout=2)
            rc.send(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n\r\n")
            ok = rc.read_response()[0] == 200
            held.append(rc)
            return ok
        except (OSError, EOFError):
            return False
    wait_until(fourth_served, 5.0)
    for rc in held:
        rc.sock.close()


def _parked(c):
    st = expect_json(c.get("/v1/stats"), 200)
    return st["parked"]


@test
def test_parked_requests_counted_by_kind(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    zero = {"awaits": 0, "receives": 0, "calls": 0, "event_polls": 0, "streams": 0, "all": 0}
    eq(_parked(c), zero, "nothing parked at start")
    rx, rx2 = c.session(), c.session()
    r = c.put_name("park/svc", None, rx.token)
    expect_status(r, 201)
    idx = int(r.header("X-Rollcall-Index"))
    waits = [
        in_thread(lambda: ctx.client(srv).get(name_path("park/none") + "?wait=20")),
        in_thread(lambda: ctx.client(srv).get(f"/v1/sessions/{rx2.id}/messages?wait=20",
                                              headers={"X-Session-Token": rx2.token})),
        in_thread(lambda: ctx.client(srv).get(f"/v1/events?after={idx}&wait=20")),
        in_thread(lambda: ctx.client(srv).post("/v1/call", {"to": {"name": "park/svc"}, "body": 1,
                                                            "timeout_ms": 20000}, timeout=25)),
    ]
    stream = RawConn(srv)
    stream.send(f"GET /v1/events HTTP/1.1\r\nHost: {HOST}\r\nAccept: text/event-stream\r\n\r\n")
    want = {"awaits": 1, "receives": 1, "calls": 1, "event_polls": 1, "streams": 1, "all": 5}
    wait_until(lambda: _parked(c) == want, 5.0)
    eq(_parked(c), want, f"parked by kind (index {idx})")
    m = c.get("/metrics")
    text = m.body.decode()
    for kind, n in (("await", 1), ("receive", 1), ("call", 1), ("event_poll", 1), ("stream", 1), ("all", 5)):
        check(f'rollcall_parked{{kind="{kind}"}} {n}\n' in text, f"/metrics rollcall_parked kind {kind} = {n}")
    # each ends: the counts go back to 0
    msgs = expect_json(c.get(f"/v1/sessions/{rx.id}/messages?wait=5", headers={"X-Session-Token": rx.token}),
                       200)["messages"]
    expect_status(c.post(f"/v1/replies/{msgs[0]['reply_to']}", {"body": 2}, headers={"X-Session-Token": rx.token}),
                  204)
    expect_status(c.post("/v1/send", {"to": {"session": rx2.id}, "body": 1}), 202)
    expect_status(c.put_name("park/none", None, rx2.token), 201)
    stream.sock.close()
    for w in waits[:2] + waits[3:]:
        w.result(10)
    wait_until(lambda: _parked(c)["streams"] == 0 and _parked(c)["calls"] == 0 and _parked(c)["receives"] == 0
               and _parked(c)["awaits"] == 0, 5.0)
    left = _parked(c)
    eq((left["awaits"], left["receives"], left["calls"], left["streams"]), (0, 0, 0, 0), f"after they ended: {left}")


@test
def test_thousands_of_parked_receives_each_answered(ctx):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 5000
    if soft < want + 200 and (hard == resource.RLIM_INFINITY or hard >= want + 200):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want + 200, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    n = min(want, soft - 200)
    print(f"    # {n} parked receives (file limit {soft})")
    srv = ctx.start()
    port = srv.port

    async def main():
        r0, w0 = await asyncio.open_connection(HOST, port)
        sessions = []
        for _ in range(n):
            st, s = await async_request(r0, w0, "POST", "/v1/sessions", {"ttl": 120})
            assert st == 201, st
            sessions.append(s)

        async def receive(s):
            r, w = await asyncio.open_connection(HOST, port)
            got = await async_request(r, w, "GET", f"/v1/sessions/{s['id']}/messages?wait=60", token=s["token"])
            w.close()
            return got

        tasks = [asyncio.create_task(receive(s)) for s in sessions]
        deadline = time.monotonic() + 60
        while True:  # until every receive is parked
            st, stats = await async_request(r0, w0, "GET", "/v1/stats")
            if stats["parked"]["receives"] >= n or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        parked = stats["parked"]["receives"]
        t0 = time.monotonic()
        for i, s in enumerate(sessions):
            st, _ = await async_request(r0, w0, "POST", "/v1/send", {"to": {"session": s["id"]}, "body": i})
            assert st == 202, st
        results = await asyncio.gather(*tasks)
        took = time.monotonic() - t0
        w0.close()
        return parked, results, took

    parked, results, took = asyncio.run(main())
    eq(parked, n, f"{n} receives parked at once")
    bad = [(i, st, b) for i, (st, b) in enumerate(results)
           if st != 200 or [m["body"] for m in b["messages"]] != [i]]
    eq(bad[:3], [], f"each of {n} parked receives answered with its own one message")
    print(f"    # {n} sends answered and {n} parked receives woken in {took:.2f} s")
