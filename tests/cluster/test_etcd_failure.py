"""etcd failing under the cluster (api.md, "Cluster", "etcd unavailable"):
the leader killed under a write load, quorum lost and regained, and a node
started while etcd is down. Each test starts (and breaks) its own etcd."""

import threading
import time

from harness import (Fail, check, eq, expect_error, expect_json, expect_status, in_thread, name_path, node_of,
                     test, wait_until)


def _healthz(c):
    """(status, body) of GET /healthz; (None, None) on a connection error."""
    try:
        r = c.get("/healthz")
    except OSError:
        return None, None
    return r.status, (r.json if r.status in (200, 503) else None)


@test(etcd="own", timeout=100)
def test_etcd_leader_killed_under_write_load(ctx):
    e = ctx.start_etcd(3)
    cl = ctx.cluster(3, ttl=4, etcd=e)
    a = cl.any()
    workers = [(nd, a.session(ttl=120, node=nd)) for nd in cl.nodes for _ in range(2)]
    clients = [nd.client(timeout=20) for nd, _ in workers]
    acked = {}      # key -> (session id, value, index)
    tries = []      # (worker, key, t_sent, t_done, status)
    lock = threading.Lock()
    t_kill = [None]

    def write(w, n):
        nd, s = workers[w]
        key = f"ld/w{w}/{n:05d}"
        deadline = time.monotonic() + 30
        while True:
            t_sent = time.monotonic()
            r = clients[w].put_name(key, n, s.token)
            with lock:
                tries.append((w, key, t_sent, time.monotonic(), r.status))
            if r.status in (200, 201):
                # 200 only after a 503: that earlier try took effect
                check(r.status == 201 or any(x[1] == key and x[4] == 503 for x in tries),
                      f"a first try answered 200: {r.desc()}")
                eq(r.json, {"key": key, "session": s.id, "value": n}, "answer of a write")
                with lock:
                    acked[key] = (s.id, n, r.index)
                return
            expect_error(r, 503, "cluster_unavailable")
            check(time.monotonic() < deadline, f"{key}: still 503 after 30 s of retries")
            time.sleep(0.05)

    stop = threading.Event()
    errs = []

    def loop(w):
        n = 0
        try:
            while not stop.is_set():
                write(w, n)
                n += 1
        except BaseException as ex:  # noqa: BLE001
            errs.append(ex)

    ts = [threading.Thread(target=loop, args=(w,), daemon=True) for w in range(len(workers))]
    for t in ts:
        t.start()
    time.sleep(1.5)
    leader = e.wait_leader(5)
    t_kill[0] = time.monotonic()
    e.kill(leader)

    # probes: a new write every 100 ms on a new connection, so that the
    # time writes resume is not hidden behind the workers' stalled requests
    probes = []

    def probe(k):
        nd, s = workers[k % len(workers)]
        key = f"ld/probe/{k:04d}"
        t_sent = time.monotonic()
        try:
            r = nd.client(timeout=20).put_name(key, k, s.token)
        except OSError as ex:
            errs.append(ex)
            return
        with lock:
            tries.append((None, key, t_sent, time.monotonic(), r.status))
            if r.status == 201:
                acked[key] = (s.id, k, r.index)
                probes.append(time.monotonic() - t_kill[0])
            elif r.status != 503:
                errs.append(AssertionError(f"probe {r.desc()}"))

    def resumed():
        with lock:
            return bool(probes) or bool(errs)

    k = 0
    while not resumed() and time.monotonic() - t_kill[0] < 20:
        threading.Thread(target=probe, args=(k,), daemon=True).start()
        k += 1
        time.sleep(0.1)
    time.sleep(2.0)
    stop.set()
    for t in ts:
        t.join(40)
    time.sleep(0.5)
    if errs:
        raise errs[0]
    with lock:
        n503 = sum(1 for x in tries if x[4] == 503)
    check(probes, "no write succeeded within 20 s of killing the etcd leader")
    back = min(probes)
    stalled = max((x[3] - x[2] for x in tries), default=0)
    new_leader = e.leader()
    ctx.note(f"etcd leader m{leader} killed (new leader m{new_leader}): writes resumed after {back:.2f} s "
             f"({k} probes); {len(acked)} writes acknowledged, {n503} answers 503, longest request {stalled:.2f} s")
    check(back <= 12.0, f"writes resumed only {back:.2f} s after the etcd leader was killed")
    check(stalled <= 11.0, f"a write took {stalled:.2f} s to answer (want 503 within 10 s)")
    top = max(v[2] for v in acked.values())
    for nd in cl.nodes:
        listed = {}
        after_key = ""
        while True:
            path = "/v1/names?prefix=ld/&limit=1000" + (f"&after={after_key}" if after_key else "")
            body = expect_json(a.get(path, node=nd, min_index=top), 200)
            for x in body["names"]:
                listed[x["key"]] = (x["session"], x["value"])
            if body["next"] is None:
                break
            after_key = body["next"]
        lost = [k for k, v in acked.items() if listed.get(k) != v[:2]]
        check(not lost, f"{len(lost)} acknowledged writes missing or changed on {nd.name}: {lost[:3]}")
    for nd, s in workers:  # no session was lost to a 1-2 s leader change
        expect_json(a.post(f"/v1/sessions/{s.id}/heartbeat", token=s.token, node=nd), 200)


@test(etcd="own", timeout=120)
def test_etcd_quorum_lost_and_regained(ctx):
    e = ctx.start_etcd(3)
    # --node-ttl 30: the outage is shorter, so nothing acknowledged may be lost
    cl = ctx.cluster(3, ttl=30, etcd=e)
    a = cl.any()
    n1, n2, n3 = cl.nodes
    ss = [a.session(ttl=120, node=nd) for nd in cl.nodes]
    for i, s in enumerate(ss):
        expect_status(a.put(name_path(f"q/pre/{i}"), {"value": i}, token=s.token), 201)
    top = a.seen
    for nd in cl.nodes:
        eq(len(expect_json(a.get("/v1/names?prefix=q/", node=nd, min_index=top), 200)["names"]), 3, "names")

    leader = e.wait_leader(5)
    down = [leader, 1 + leader % 3]
    for i in down:
        e.stop(i)
    t_stop = time.monotonic()

    # writes through every node: 503 cluster_unavailable within 10 s
    def w(i, what):
        nd, s = cl.nodes[i], ss[i]
        c = nd.client(timeout=20)
        if what == "name":
            return c.put_name(f"q/during/{i}", i, s.token)
        if what == "session":
            return c.post("/v1/sessions", {"ttl": 10})
        return c.put(f"/v1/props/q/p{i}", {"value": 1}, token=s.token)

    hs = [in_thread(w, i, what) for i in range(3) for what in ("name", "session", "prop")]
    # meanwhile: /healthz says degraded within 10 s, reads are served
    degraded = {}
    cs = [nd.client(timeout=5) for nd in cl.nodes]
    while len(degraded) < 3 and time.monotonic() - t_stop < 12:
        for nd, c in zip(cl.nodes, cs):
            if nd.name in degraded:
                continue
            st, body = _healthz(c)
            if st == 503:
                eq(body.get("status"), "degraded", f"/healthz of {nd.name} without quorum")
                degraded[nd.name] = time.monotonic() - t_stop
            elif st != 200:
                raise Fail(f"/healthz of {nd.name} without quorum: status {st}")
        time.sleep(0.2)
    for nd in cl.nodes:
        check(nd.name in degraded, f"/healthz of {nd.name} not 503 degraded 12 s after quorum was lost")
        check(degraded[nd.name] <= 10.5, f"/healthz of {nd.name} degraded only after {degraded[nd.name]:.1f} s")
    for h in hs:
        r = h.result(25)
        expect_error(r, 503, "cluster_unavailable")
        check(h.done_at - t_stop <= 11.0, f"{r.desc()} answered {h.done_at - t_stop:.1f} s after quorum was lost")
    slowest = max(h.done_at for h in hs) - t_stop
    for i, (nd, s) in enumerate(zip(cl.nodes, ss)):
        c = nd.client(timeout=10)
        r = c.put_name(f"q/again/{i}", i, s.token)  # the node knows now
        expect_error(r, 503, "cluster_unavailable")
        check(r.elapsed <= 10.5, f"a write while the node knows etcd is down took {r.elapsed:.1f} s")
        r = c.delete_name(f"q/pre/{i}", s.token)
        expect_error(r, 503, "cluster_unavailable")
        # reads from the node's copy, heartbeats, sends and receives work
        for j in range(3):
            r = c.get_name(f"q/pre/{j}")
            eq(expect_json(r, 200), {"key": f"q/pre/{j}", "session": ss[j].id, "value": j}, f"read on {nd.name}")
            check(r.elapsed < 2.0, f"a read without quorum took {r.elapsed:.1f} s")
        eq(node_of(r), nd.name, "X-Rollcall-Node")
        expect_json(c.get("/v1/names?prefix=q/"), 200)
        expect_json(c.heartbeat(s.id, s.token), 200)
        to = ss[(i + 1) % 3]
        eq(expect_json(c.post("/v1/send", {"to": {"session": to.id}, "body": i}), 202), {"delivered": 1},
           f"send through {nd.name} without quorum")
    for i, (nd, s) in enumerate(zip(cl.nodes, ss)):
        body = expect_json(nd.client().get(f"/v1/sessions/{s.id}/messages?after=0", token=s.token), 200)
        eq([m["body"] for m in body["messages"]], [(i - 1) % 3], f"messages received on {nd.name}")
    ctx.note(f"quorum lost: /healthz degraded after "
             + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(degraded.items()))
             + f"; the first writes all 503 within {slowest:.1f} s")

    for i in down:
        e.restart(i, wait=False)
    e.wait_healthy()
    e.wait_leader(10)
    t_up = time.monotonic()
    ok_at = {}
    n = 0
    while len(ok_at) < 3 and time.monotonic() - t_up < 15:
        for i, (nd, s) in enumerate(zip(cl.nodes, ss)):
            if nd.name in ok_at:
                continue
            n += 1
            r = nd.client(timeout=12).put_name(f"q/after/{i}/{n}", n, s.token)
            if r.status == 201:
                ok_at[nd.name] = time.monotonic() - t_up
            else:
                expect_error(r, 503, "cluster_unavailable")
        time.sleep(0.1)
    healthy = wait_until(lambda: all(_healthz(c)[0] == 200 for c in cs), 10.0, 0.1)
    ctx.note("etcd back: writes work again after "
             + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(ok_at.items()))
             + (f"; /healthz 200 after {healthy - t_up:.1f} s" if healthy else ""))
    for nd in cl.nodes:
        check(nd.name in ok_at and ok_at[nd.name] <= 10.5,
              f"writes through {nd.name} not working 10 s after etcd had a leader again")
    check(healthy is not None and healthy - t_up <= 10.5, "/healthz not 200 on every node 10 s after etcd came back")
    # nothing acknowledged was lost; the sessions lived on
    for nd in cl.nodes:
        body = expect_json(a.get("/v1/names?prefix=q/pre/", node=nd), 200)
        eq([(x["key"], x["session"]) for x in body["names"]], [(f"q/pre/{i}", ss[i].id) for i in range(3)],
           f"names acknowledged before the outage, on {nd.name}")
        for x in expect_json(a.get("/v1/names?prefix=q/during/", node=nd), 200)["names"]:
            check(x["session"] == ss[int(x["key"].rsplit("/", 1)[1])].id, f"a 503 write took effect wrongly: {x}")
    for nd, s in zip(cl.nodes, ss):
        expect_json(a.post(f"/v1/sessions/{s.id}/heartbeat", token=s.token, node=nd), 200)


@test(etcd="own", timeout=60)
def test_node_started_while_etcd_down(ctx):
    e = ctx.start_etcd(1, start=False)
    node = ctx.start_node("early", e.urls, ttl=3, prefix=ctx.prefix, wait_ready=False)
    c = node.client(timeout=12)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0:
        st, body = _healthz(c)
        eq(st, 503, "/healthz status of a node that never reached etcd")
        eq(body.get("status"), "degraded", "/healthz status field")
        for method, path in (("GET", "/v1/names"), ("POST", "/v1/sessions"), ("GET", "/v1/nodes"),
                             ("GET", "/v1/names/x"), ("GET", "/v1/sessions")):
            r = c.request(method, path)
            expect_error(r, 503, "cluster_unavailable")
            eq(node_of(r), "early", "X-Rollcall-Node")
            check(r.elapsed < 2.0, f"{method} {path} took {r.elapsed:.1f} s to answer 503")
        time.sleep(0.2)
    e.start()
    t_up = time.monotonic()
    ok = wait_until(lambda: _healthz(c)[0] == 200, 15.0, 0.1)
    check(ok is not None, "/healthz not 200 15 s after etcd came up")
    ctx.note(f"a node started without etcd served {ok - t_up:.1f} s after etcd came up")
    s = c.session(ttl=10)
    expect_status(c.put_name("early/a", 1, s.token), 201)
    eq(expect_json(c.get_name("early/a"), 200), {"key": "early/a", "session": s.id, "value": 1}, "name")
    nodes = expect_json(c.get("/v1/nodes"), 200)["nodes"]
    eq([(n["node"], n["url"], n["sessions"]) for n in nodes], [("early", node.url, 1)], "nodes")


@test(etcd="own", timeout=90)
def test_sigterm_while_writes_wait_on_etcd(ctx):
    """Writes waiting on an etcd with no quorum when SIGTERM comes: the node
    still exits 0 within its grace (those requests end with it), rather
    than libmicrohttpd aborting over connections still parked."""
    e = ctx.start_etcd(3)
    cl = ctx.cluster(1, ttl=30, etcd=e)
    n1 = cl.nodes[0]
    a = cl.any()
    s = a.session(ttl=120, node=n1)
    leader = e.wait_leader(5)
    for i in (leader, 1 + leader % 3):
        e.stop(i)
    hs = [in_thread(lambda i=i: n1.client(timeout=20).put_name(f"t/{i}", i, s.token)) for i in range(8)]
    time.sleep(1.0)  # the writes are out to etcd, parked
    t0 = time.monotonic()
    rc = n1.stop(timeout=10)
    eq(rc, 0, f"exit status after SIGTERM with writes parked; stderr: {n1.log_tail()}")
    check(time.monotonic() - t0 < 5, f"exited {time.monotonic() - t0:.1f} s after SIGTERM")
    for h in hs:
        try:
            r = h.result(15)
            check(r.status in (503,), f"a parked write answered {r.status} at shutdown")
        except Exception:
            pass  # or its connection closed unanswered: the node was stopping
