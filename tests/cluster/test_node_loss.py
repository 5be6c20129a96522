"""A node lost (api.md, "Cluster", "A node lost"): kill -9 of a node holding
10,000 names, and a node paused (SIGSTOP) past --node-ttl, then resumed."""

import threading
import time

from harness import (check, eq, expect_error, expect_json, expect_status, name_path, test, wait_until)

NAMES = 10000
SESSIONS = 10


@test(timeout=120)
def test_kill9_node_with_10000_names(ctx):
    ttl = 4
    cl = ctx.cluster(3, ttl=ttl)
    a = cl.any()
    n1, n2, n3 = cl.nodes
    doomed = [a.session(ttl=120, node=n1) for _ in range(SESSIONS)]
    keep = [a.session(ttl=120, node=nd) for nd in (n2, n3)]
    for i, s in enumerate(keep):
        expect_status(a.put(name_path(f"loss/keep/{i}"), {"value": i}, token=s.token), 201)

    # 10,000 names through n1, on keep-alive connections from 8 threads
    per = NAMES // SESSIONS
    t0 = time.monotonic()
    top = [0]
    lock = threading.Lock()
    errs = []

    def reg(w, nthreads=8):
        c = n1.client(timeout=20)
        hi = 0
        try:
            for j in range(w, NAMES, nthreads):
                s = doomed[j // per]
                r = c.put_name(f"loss/a/{j:05d}", j, s.token)
                if r.status != 201:
                    raise AssertionError(f"registering name {j}: {r.desc()}")
                hi = max(hi, r.index)
        except BaseException as e:  # noqa: BLE001
            errs.append(e)
        with lock:
            top[0] = max(top[0], hi)

    ts = [threading.Thread(target=reg, args=(w,), daemon=True) for w in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(100)
    if errs:
        raise errs[0]
    reg_s = time.monotonic() - t0
    for nd in (n2, n3):
        body = expect_json(a.get("/v1/sessions?limit=1000", node=nd, min_index=top[0]), 200)
        held = sum(x["names"] for x in body["sessions"] if x["node"] == "n1")
        eq(held, NAMES, f"names of n1's sessions as listed on {nd.name}")
    before = max(a.seen, top[0])

    t_kill = time.monotonic()
    n1.kill()
    clients = {nd.name: nd.client(timeout=10) for nd in (n2, n3)}
    gone_at = {}

    def all_gone(nd):
        c = clients[nd.name]
        if expect_json(c.get("/v1/names?prefix=loss/a/&limit=1"), 200)["names"]:
            return False
        rows = expect_json(c.get("/v1/sessions?limit=1000"), 200)["sessions"]
        return not any(x["node"] == "n1" for x in rows)

    limit = ttl + 2
    while len(gone_at) < 2 and time.monotonic() - t_kill < limit + 4:
        for nd in (n2, n3):
            if nd.name not in gone_at and all_gone(nd):
                gone_at[nd.name] = time.monotonic() - t_kill
        time.sleep(0.05)
    ctx.note(f"registered {NAMES} names in {reg_s:.1f} s; after kill -9 of their node, gone on "
             + ", ".join(f"{k} after {v:.2f} s" for k, v in sorted(gone_at.items()))
             + f" (--node-ttl {ttl}, limit {limit} s)")
    for nd in (n2, n3):
        check(nd.name in gone_at, f"n1's sessions and names still on {nd.name} {limit + 4} s after its kill -9")
        check(gone_at[nd.name] <= limit,
              f"n1's sessions and names went on {nd.name} {gone_at[nd.name]:.2f} s after its kill -9 "
              f"(want within --node-ttl + 2 s = {limit} s)")

    # the usual events: every name unregistered, every session expired
    for nd in (n2, n3):
        body = expect_json(a.get(f"/v1/events?after={before}&max=1000&wait=5", node=nd, min_index=False,
                                 timeout=20), 200)
        evs = body["events"]
        while len(evs) < NAMES + SESSIONS:
            more = expect_json(a.get(f"/v1/events?after={body['last']}&max=1000&wait=2", node=nd,
                                     min_index=False, timeout=20), 200)
            if not more["events"]:
                break
            body = more
            evs += more["events"]
        kinds = {}
        for e in evs:
            kinds[e["type"]] = kinds.get(e["type"], 0) + 1
        eq(kinds, {"name_unregistered": NAMES, "session_expired": SESSIONS}, f"events of the loss on {nd.name}")
        eq(sorted(e["session"] for e in evs if e["type"] == "session_expired"), sorted(s.id for s in doomed),
           "sessions expired")
    # the other nodes' sessions are untouched
    for i, s in enumerate(keep):
        for nd in (n2, n3):
            eq(expect_json(a.get(name_path(f"loss/keep/{i}"), node=nd), 200)["session"], s.id,
               f"loss/keep/{i} on {nd.name}")
            expect_json(a.post(f"/v1/sessions/{s.id}/heartbeat", token=s.token, node=nd), 200)
    expect_error(a.post(f"/v1/sessions/{doomed[0].id}/heartbeat", token=doomed[0].token, node=n2), 404,
                 "session_not_found")
    nodes = expect_json(a.get("/v1/nodes", node=n3), 200)["nodes"]
    eq([n["node"] for n in nodes], ["n2", "n3"], "live nodes after the loss")


@test(timeout=60)
def test_paused_node_never_serves_dropped_sessions(ctx):
    ttl = 3
    cl = ctx.cluster(3, ttl=ttl)
    a = cl.any()
    n1, n2, n3 = cl.nodes
    s = a.session(ttl=120, node=n1)
    other = a.session(ttl=120, node=n2)
    expect_status(a.put(name_path("pause/s"), None, token=s.token), 201)
    expect_status(a.put(name_path("pause/other"), None, token=other.token), 201)
    c1 = n1.client(timeout=10)
    expect_json(c1.heartbeat(s.id, s.token), 200)  # a warm connection, used after the resume
    c2 = n2.client(timeout=10)
    expect_json(c2.get(f"/v1/names?prefix=pause/&min_index={a.seen}"), 200)

    n1.pause()
    t_stop = time.monotonic()
    t = wait_until(lambda: c2.get_name("pause/s").status == 404, ttl + 2 + 5, 0.05)
    check(t is not None, f"n1's session still on n2 {ttl + 7} s after SIGSTOP of n1")
    ctx.note(f"paused node's session dropped on n2 {t - t_stop:.2f} s after SIGSTOP")
    check(t - t_stop <= ttl + 2, f"the paused node's session went on n2 only {t - t_stop:.2f} s after SIGSTOP")
    time.sleep(0.5)
    # a heartbeat sent while it is stopped waits in its socket
    queued = threading.Thread(target=lambda: box.append(n1.client(timeout=15).heartbeat(s.id, s.token)),
                              daemon=True)
    box = []
    queued.start()
    time.sleep(0.3)

    n1.cont()
    t_cont = time.monotonic()
    polls = 0
    t = None  # when n1's names listing first agreed with n2's (when that poll was sent)
    while time.monotonic() - t_cont < 2.0 or (t is None and time.monotonic() - t_cont < 5.0):
        t_poll = time.monotonic()
        if t_poll - t_cont < 2.0:
            r = c1.heartbeat(s.id, s.token)
            polls += 1
            check(r.status != 200, f"n1 answered its dropped session as alive {time.monotonic() - t_cont:.3f} s "
                                   f"after SIGCONT: {r.desc()}")
            expect_error(r, 404, "session_not_found")
        if t is None:
            r1 = c1.get("/v1/names?prefix=pause/")
            r2 = c2.get("/v1/names?prefix=pause/")
            if r1.status == 200 and r2.status == 200 and r1.json == r2.json:
                t = t_poll
        if t_poll - t_cont >= 2.0:
            time.sleep(0.02)
    queued.join(15)
    check(box, "the heartbeat queued during the pause got no answer")
    check(box[0].status != 200, f"the heartbeat queued during the pause was answered as alive: {box[0].desc()}")
    check(t is not None, "n1's names listing still differs from n2's 5 s after SIGCONT")
    ctx.note(f"after SIGCONT: {polls} heartbeats, all 404; listings agree after {t - t_cont:.2f} s")
    check(t - t_cont <= 2.0, f"n1's names listing agreed with n2's only {t - t_cont:.2f} s after SIGCONT")
    eq([e["key"] for e in expect_json(c1.get("/v1/names?prefix=pause/"), 200)["names"]], ["pause/other"],
       "names on n1 after the resume")
    expect_error(a.get(f"/v1/sessions/{s.id}", node=n3), 404, "session_not_found")
    expect_json(a.post(f"/v1/sessions/{other.id}/heartbeat", token=other.token, node=n3), 200)
