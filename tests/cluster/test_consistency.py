"""Consistency across nodes (api.md, "Cluster"): linearizable registration
(one winner per race, whatever the nodes), one index (list on one node,
follow the events on another: no gap, no duplicate), and atomic release (no
reader on any node sees part of an ended session)."""

import threading
import time

from harness import (Fail, check, dumps, eq, expect_error, expect_json, expect_status, name_path, node_of,
                     parallel, test, wait_until)


# --------------------------------------------------------------------------
# 200 races of one name through two nodes


@test(timeout=90)
def test_name_race_through_two_nodes(ctx):
    cl = ctx.cluster(3)
    a = cl.any()
    n1, n2, n3 = cl.nodes
    ss = (a.session(ttl=120, node=n1), a.session(ttl=120, node=n2))
    rounds = 200
    barrier = threading.Barrier(2)
    results = [[None, None] for _ in range(rounds)]
    errors = []

    def worker(w):
        s = ss[w]
        clients = {nd.name: nd.client(timeout=15) for nd in (n1, n2)}
        try:
            for i in range(rounds):
                # even rounds: each through its home; odd: through the other's
                nd = (n1, n2)[w] if i % 2 == 0 else (n2, n1)[w]
                barrier.wait(30)
                results[i][w] = clients[nd.name].put_name(f"race/{i:03d}", {"w": w, "i": i}, s.token)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
            barrier.abort()

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(w,), daemon=True) for w in (0, 1)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(80)
    if errors and not isinstance(errors[0], threading.BrokenBarrierError):
        raise errors[0]
    check(not errors and all(not t.is_alive() for t in ts), f"race workers failed: {errors[:1]}")
    wins = [0, 0]
    top = 0
    for i, (r0, r1) in enumerate(results):
        key = f"race/{i:03d}"
        got = sorted([r0.status, r1.status])
        check(got == [201, 409], f"round {i}: statuses {r0.status}, {r1.status} ({r0.desc()} / {r1.desc()}), "
                                 f"want one 201 and one 409")
        w = 0 if r0.status == 201 else 1
        win, lose = (r0, r1) if w == 0 else (r1, r0)
        wins[w] += 1
        eq(expect_json(win, 201), {"key": key, "session": ss[w].id, "value": {"w": w, "i": i}}, f"round {i} winner")
        eq(expect_error(lose, 409, "name_taken").get("owner"), ss[w].id, f"round {i}: owner in the 409")
        node_of(win), node_of(lose)
        top = max(top, win.index)
    ctx.note(f"200 races in {time.monotonic() - t0:.1f} s; wins s1 {wins[0]}, s2 {wins[1]}")
    for nd in (n1, n2, n3):
        body = expect_json(a.get("/v1/names?prefix=race/&limit=1000", node=nd, min_index=top), 200)
        owners = {e["key"]: e["session"] for e in body["names"]}
        eq(len(owners), rounds, f"names listed on {nd.name}")
        for i, (r0, r1) in enumerate(results):
            want = ss[0].id if r0.status == 201 else ss[1].id
            eq(owners[f"race/{i:03d}"], want, f"owner of race/{i:03d} on {nd.name}")
    for i in (0, 1, 199):  # and one by one, on both racing nodes
        want = ss[0].id if results[i][0].status == 201 else ss[1].id
        for nd in (n1, n2):
            eq(expect_json(a.get(name_path(f"race/{i:03d}"), node=nd, min_index=top), 200)["session"], want,
               f"GET race/{i:03d} on {nd.name}")


# --------------------------------------------------------------------------
# List on one node, follow on another


@test(timeout=90)
def test_list_then_follow_no_gap_no_duplicate(ctx):
    cl = ctx.cluster(3)
    a = cl.any()
    n1, n2, n3 = cl.nodes
    writers = [(a.session(ttl=60, node=n1), n1), (a.session(ttl=60, node=n3), n3), (a.session(ttl=60, node=n2), n1)]
    log = []  # (index, type, key, session, value) of every write answered
    log_lock = threading.Lock()

    def record(r, kind, key, s, value):
        with log_lock:
            log.append((r.index, kind, key, s.id, dumps(value)))

    def write(w, n):
        s, nd = writers[w]
        c = clients[w]
        key = f"gap/w{w}/{n % 7}"
        if n % 3 == 2:
            r = c.delete_name(key, s.token)
            if r.status == 204:
                record(r, "name_unregistered", key, s, None)
            else:
                expect_error(r, 404, "name_not_found")
        else:
            v = {"w": w, "n": n}
            r = c.put_name(key, v, s.token)
            if r.status == 201:
                record(r, "name_registered", key, s, v)
            elif r.status == 200:
                record(r, "name_updated", key, s, v)
            else:
                raise Fail(f"writer {w}: {r.desc()}")

    clients = [nd.client(timeout=15) for _, nd in writers]
    for n in range(6):  # a few names before the listing
        for w in range(len(writers)):
            write(w, n)
    stop = threading.Event()
    errs = []

    def loop(w):
        n = 6
        try:
            while not stop.is_set():
                write(w, n)
                n += 1
        except BaseException as e:  # noqa: BLE001
            errs.append(e)

    ts = [threading.Thread(target=loop, args=(w,), daemon=True) for w in range(len(writers))]
    for t in ts:
        t.start()
    time.sleep(0.5)
    c1, c2 = n1.client(timeout=15), n2.client(timeout=15)
    r = c1.get("/v1/names?prefix=gap/&limit=1000")
    listing = {e["key"]: (e["session"], dumps(e["value"])) for e in expect_json(r, 200)["names"]}
    start = r.index
    events = []
    cur = start
    final = None
    t_end = time.monotonic() + 3.0
    polls = 0
    while True:
        if time.monotonic() >= t_end and not stop.is_set():
            stop.set()
            for t in ts:
                t.join(20)
            if errs:
                raise errs[0]
            final = max(x[0] for x in log)
        r = c2.get(f"/v1/events?after={cur}&prefix=gap/&wait=2&max=1000")
        body = expect_json(r, 200)
        polls += 1
        for e in body["events"]:
            check(e.get("type") != "reset", f"a reset while following from {start} (at {e})")
        events.extend(body["events"])
        if body["events"]:
            check(body["last"] == body["events"][-1]["index"], f"last {body['last']} is not the last event's index")
        check(body["last"] >= cur, f"last went back from {cur} to {body['last']}")
        cur = body["last"]
        if stop.is_set() and cur >= final:
            break
        check(time.monotonic() < t_end + 15, f"events on n2 did not reach the last write's index {final} "
                                             f"within 15 s (at {cur})")
    got = [(e["index"], e["type"], e["key"], e["session"], dumps(e.get("value"))) for e in events]
    idx = [g[0] for g in got]
    check(idx == sorted(idx), "event indices not in order")
    check(all(i > start for i in idx), f"an event at or below the listing's index {start}")
    dups = len(got) - len(set(got))
    check(dups == 0, f"{dups} duplicate events")
    want = sorted(x for x in log if x[0] > start)
    ctx.note(f"listing at {start} with {len(listing)} names; {len(got)} events followed on n2 in {polls} polls; "
             f"{len(log)} writes in all")
    if got != want:
        missing = [x for x in want if x not in got][:3]
        extra = [x for x in got if x not in want][:3]
        raise Fail(f"events after the listing differ from the writes answered after it: "
                   f"{len(got)} events, {len(want)} writes; missing {missing}; unexpected {extra}")
    # the listing is exactly the writes up to its index; listing + events is the end state
    state = {}
    for ix, kind, key, sid, v in sorted(log):
        if ix > start:
            break
        if kind == "name_unregistered":
            state.pop(key, None)
        else:
            state[key] = (sid, v)
    eq(listing, state, f"the listing at index {start} against the writes answered up to it")
    for ix, kind, key, sid, v in got:
        if kind == "name_unregistered":
            state.pop(key, None)
        else:
            state[key] = (sid, v)
    for nd in (n1, n2, n3):
        body = expect_json(a.get("/v1/names?prefix=gap/&limit=1000", node=nd, min_index=final), 200)
        eq({e["key"]: (e["session"], dumps(e["value"])) for e in body["names"]}, state,
           f"listing on {nd.name} against the listing on n1 plus the events followed on n2")


# --------------------------------------------------------------------------
# Atomic release


@test(timeout=90)
def test_release_is_atomic_on_other_nodes(ctx):
    cl = ctx.cluster(3)
    a = cl.any()
    n1, n2, n3 = cl.nodes
    s = a.session(ttl=60, node=n1)
    other = a.session(ttl=60, node=n2)
    keys = [f"rel/{i:03d}" for i in range(300)]
    local = threading.local()

    def reg(key):
        if not hasattr(local, "c"):
            local.c = n1.client(timeout=15)
        r = local.c.put_name(key, key, s.token)
        expect_status(r, 201)
        return r.index

    top = max(parallel(reg, keys, threads=6))
    r = a.put(name_path("rel/zz-other"), {"value": 1}, token=other.token, node=n2)
    expect_status(r, 201)
    top = max(top, r.index)
    for nd in (n2, n3):
        body = expect_json(a.get("/v1/names?prefix=rel/&limit=1000", node=nd, min_index=top), 200)
        eq(len(body["names"]), 301, f"names on {nd.name} before the release")

    stop = threading.Event()
    seen = {}
    errs = []

    def reader(nd, kind):
        c = nd.client(timeout=15)
        gone_at = None
        n = 0
        try:
            while not stop.is_set():
                n += 1
                if kind == "names":
                    body = expect_json(c.get("/v1/names?prefix=rel/&limit=1000"), 200)
                    mine = sum(1 for e in body["names"] if e["session"] == s.id)
                    check(any(e["key"] == "rel/zz-other" for e in body["names"]),
                          f"{nd.name}: another session's name vanished")
                    check(mine in (0, 300), f"{nd.name}: a names listing showed {mine} of the 300 names")
                elif kind == "sessions":
                    body = expect_json(c.get("/v1/sessions?limit=1000"), 200)
                    rows = [x for x in body["sessions"] if x["id"] == s.id]
                    mine = rows[0]["names"] if rows else 0
                    check(mine in (0, 300), f"{nd.name}: the session listed with {mine} names")
                else:
                    r = c.get(f"/v1/sessions/{s.id}")
                    if r.status == 404:
                        expect_error(r, 404, "session_not_found")
                        mine = 0
                    else:
                        body = expect_json(r, 200)
                        mine = len(body["held"]["names"])
                        check(mine == 300 and body["names"] == 300,
                              f"{nd.name}: GET /v1/sessions/{{id}} showed {mine} held names, names={body['names']}")
                if mine == 0 and gone_at is None:
                    gone_at = time.monotonic()
                elif mine and gone_at is not None:
                    raise Fail(f"{nd.name} ({kind}): the session's names came back after they were gone")
        except BaseException as e:  # noqa: BLE001
            errs.append(e)
        seen[(nd.name, kind)] = (n, gone_at)

    ts = [threading.Thread(target=reader, args=args, daemon=True)
          for args in ((n3, "names"), (n3, "sessions"), (n3, "session"), (n2, "names"))]
    for t in ts:
        t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    r = a.delete(f"/v1/sessions/{s.id}", token=s.token, node=n1)
    expect_status(r, 204)
    di = r.index
    c3, c2 = n3.client(), n2.client()

    def released():
        return all(len(expect_json(c.get("/v1/names?prefix=rel/&limit=1000"), 200)["names"]) == 1
                   for c in (c3, c2))

    wait_until(lambda: errs or released(), 10.0, 0.05)
    time.sleep(0.5)
    stop.set()
    for t in ts:
        t.join(20)
    if errs:
        raise errs[0]
    polls = ", ".join(f"{k[0]}/{k[1]} {v[0]} polls" + (f", gone after {v[1] - t0:.2f} s" if v[1] else "")
                      for k, v in sorted(seen.items()))
    ctx.note(f"release of 300 names: {polls}")
    for k, (n, gone_at) in seen.items():
        check(gone_at is not None, f"{k}: the released names still there 10 s after the delete")
    # one index for the whole release, in one answer (more than max rather
    # than cut an index in two)
    for nd in (n2, n3):
        body = expect_json(a.get(f"/v1/events?after={di - 1}&max=100&wait=5", node=nd, min_index=di), 200)
        evs = body["events"]
        eq(len(evs), 301, f"events of the release on {nd.name} in one long-poll answer with max=100")
        eq({e["index"] for e in evs}, {di}, "indices of the release's events")
        eq(sorted(e["key"] for e in evs[:-1]), keys, "keys released")
        eq({e["type"] for e in evs[:-1]}, {"name_unregistered"}, "types of the releases")
        eq(evs[-1], {"index": di, "type": "session_deleted", "session": s.id}, "the last event")
