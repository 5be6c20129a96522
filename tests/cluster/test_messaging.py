"""Messages and calls across nodes (api.md, Cluster, "Messages and calls"):
every send target with its receivers spread over 3 nodes, broadcast counts,
picks among all members, order per sender whichever nodes it uses, a
receiver's node killed while calls and sends go to it, a caller that goes
away, 1,000 concurrent calls across nodes, and the forwarder's counts."""

import asyncio
import json
import resource
import threading
import time

from harness import (HOST, Fail, RawConn, async_request, check, eq, expect_error, expect_json, expect_status,
                     in_thread, name_path, test)


def _drain(a, s, node=None, expect=None, wait=2):
    """Every message waiting for s (received and acknowledged), through node
    (default random); with expect, waits until that many have come."""
    got, after = [], 0
    deadline = time.monotonic() + 10
    while True:
        w = wait if expect is not None and len(got) < expect else 0
        r = a.get(f"/v1/sessions/{s.id}/messages?after={after}&wait={w}&max=1000", token=s.token, node=node)
        body = expect_json(r, 200)
        got += body["messages"]
        if body["messages"]:
            after = body["messages"][-1]["seq"]
        if expect is None or len(got) >= expect or time.monotonic() > deadline:
            if body["messages"]:
                continue  # acknowledge what came, and look again
            a.get(f"/v1/sessions/{s.id}/messages?after={after}&wait=0", token=s.token, node=node)
            return got


def _spread(a, nodes, per_node=2):
    """per_node sessions homed on each node, in node order."""
    return [a.session(node=n, ttl=60) for n in nodes for _ in range(per_node)]


@test(timeout=90)
def test_every_target_across_nodes(ctx):
    cl = ctx.cluster(3)
    a = cl.any()
    n1, n2, n3 = cl.nodes
    ss = _spread(a, cl.nodes)
    sender = a.session(node=n2)
    expect_status(a.put(name_path("tgt/x"), None, token=ss[5].token, node=n1), 201)
    for s in ss:
        expect_status(a.put("/v1/props/tgt-p", {"value": 1}, token=s.token), 201)
        expect_status(a.put("/v1/groups/tgt-g", None, token=s.token), 201)
    sent = {s.id: [] for s in ss}  # what each receiver must get, in order
    for k, via in enumerate(cl.nodes):
        body = {"k": k, "via": via.name}
        # a name and a session, homed elsewhere or here
        eq(expect_json(a.post("/v1/send", {"to": {"name": "tgt/x"}, "body": body}, token=sender.token, node=via),
                       202), {"delivered": 1}, f"send to a name through {via.name}")
        sent[ss[5].id].append(("name", body, sender.id))
        for s in ss:
            eq(expect_json(a.post("/v1/send", {"to": {"session": s.id}, "body": body}, node=via), 202),
               {"delivered": 1}, f"send to session homed on {s.data.get('node')} through {via.name}")
            sent[s.id].append(("session", body, None))
        # broadcasts: one forward per node, every receiver counted
        for kind, key in (("prop", "tgt-p"), ("group", "tgt-g")):
            r = expect_json(a.post("/v1/send", {"to": {kind: key}, "body": body}, token=sender.token, node=via), 202)
            eq(r, {"delivered": 6, "full": [], "unreachable": []}, f"broadcast to a {kind} through {via.name}")
            for s in ss:
                sent[s.id].append((kind, body, sender.id))
        # picks: one member of all six, wherever it lives
        for pick in ("random", "round_robin", "hash"):
            to = {"group": "tgt-g", "pick": pick}
            if pick == "hash":
                to["hash_key"] = "user-42"
            eq(expect_json(a.post("/v1/send", {"to": to, "body": {"pick": pick, "k": k}}, node=via), 202),
               {"delivered": 1}, f"send to a {pick} pick through {via.name}")
    got = {}
    for s in ss:
        msgs = _drain(a, s)
        got[s.id] = msgs
        plain = [(next(iter(m["to"])), m["body"], m["from"]) for m in msgs if "pick" not in m["body"]]
        eq(plain, sent[s.id], f"messages of session {s.id} (home {s.data.get('node')}), in order")
        check(all(m["to"] in ({"name": "tgt/x"}, {"session": s.id}, {"prop": "tgt-p"}, {"group": "tgt-g"})
                  or m["to"].get("pick") for m in msgs), f"targets {[m['to'] for m in msgs]}")
    picks = [(m["body"]["pick"], m["body"]["k"], sid) for sid, msgs in got.items() for m in msgs if "pick" in m["body"]]
    eq(len(picks), 9, f"picked messages received {picks}")
    hashed = {sid for p, _, sid in picks if p == "hash"}
    eq(len(hashed), 1, f"hash_key user-42 went to one member from every node: {hashed}")
    homes = {s.id: s.home for s in ss}
    ctx.note(f"random picks went to {[homes[sid] for p, _, sid in picks if p == 'random']}, "
             f"hash to {homes[next(iter(hashed))]}")


@test(timeout=90)
def test_round_robin_visits_every_member_of_the_cluster(ctx):
    cl = ctx.cluster(3)
    a = cl.any()
    n1 = cl.nodes[0]
    ss = _spread(a, cl.nodes)
    for s in ss:
        expect_status(a.put("/v1/groups/rr-g", None, token=s.token), 201)
    # all sends through n1: every member once before any again (api.md)
    for i in range(18):
        eq(expect_json(a.post("/v1/send", {"to": {"group": "rr-g", "pick": "round_robin"}, "body": i}, node=n1), 202),
           {"delivered": 1}, f"round-robin send {i}")
    order = {}
    for s in ss:
        for m in _drain(a, s):
            order[m["body"]] = s.id
    eq(sorted(order), list(range(18)), "every round-robin message arrived once")
    rounds = [[order[i] for i in range(r * 6, r * 6 + 6)] for r in range(3)]
    for r in rounds:
        eq(len(set(r)), 6, f"a round of 6 visits all 6 members (homes on n1, n2, n3): {r}")
    eq(rounds[0], rounds[1], "the second round in the same order")
    # through another node, its own turn: still all 6 in 6 sends
    n2 = cl.nodes[1]
    for i in range(100, 106):
        expect_status(a.post("/v1/send", {"to": {"group": "rr-g", "pick": "round_robin"}, "body": i}, node=n2), 202)
    seen = set()
    for s in ss:
        for m in _drain(a, s):
            seen.add(s.id)
    eq(len(seen), 6, "6 round-robin sends through n2 reach all 6 members")


@test(timeout=120)
def test_order_per_sender_whichever_nodes_it_uses(ctx):
    cl = ctx.cluster(3)
    a = cl.any()
    rcv = a.session(node=cl.nodes[1], ttl=60)
    expect_status(a.put(name_path("ord/in"), None, token=rcv.token), 201)
    senders = [a.session(node=cl.nodes[i % 3], ttl=60) for i in range(6)]
    per = 60
    errors = []

    def run(i):
        c = cl.any(min_index=False)
        try:
            for k in range(per):
                via = cl.nodes[(i + k) % 3]  # each send through the next node
                r = c.post("/v1/send", {"to": {"name": "ord/in"}, "body": {"s": i, "k": k}},
                           token=senders[i].token, node=via)
                if r.status != 202:
                    errors.append(f"sender {i} send {k}: {r.status} {r.body[:200]!r}")
                    return
        finally:
            c.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(senders))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    eq(errors, [], "every concurrent send answered 202")
    msgs = _drain(a, rcv, expect=per * len(senders))
    eq(len(msgs), per * len(senders), "every message received once")
    for i, s in enumerate(senders):
        ks = [m["body"]["k"] for m in msgs if m["body"]["s"] == i]
        eq(ks, list(range(per)), f"sender {i}'s messages in the order of their 202s")
        check(all(m["from"] == s.id for m in msgs if m["body"]["s"] == i), "from is the sender")


@test(timeout=120)
def test_receiver_node_killed_while_calls_and_sends_wait(ctx):
    ttl = 3
    cl = ctx.cluster(3, ttl=ttl)
    a = cl.any()
    n1, n2, n3 = cl.nodes
    w = a.session(node=n3, ttl=60)
    o = a.session(node=n2, ttl=60)
    expect_status(a.put(name_path("kill/w"), None, token=w.token, node=n3), 201)
    for s in (w, o):
        expect_status(a.put("/v1/props/kill-p", None, token=s.token), 201)
    # a call delivered to w (its message taken) and waiting for a reply
    h = in_thread(lambda: a.post("/v1/call", {"to": {"name": "kill/w"}, "body": "q", "timeout_ms": 30000},
                                 node=n1, timeout=40))
    got = _drain(a, w, node=n3, expect=1)
    eq(len(got), 1, "the worker got the call's message")
    t_kill = time.monotonic()
    n3.kill()
    # sends to it while its node is gone: nothing counted that was not delivered
    r = a.post("/v1/send", {"to": {"session": w.id}, "body": "lost"}, node=n1)
    if r.status == 503:
        expect_error(r, 503, "node_unreachable")
    else:  # already dropped: the session has ended with its node
        expect_error(r, 404, "session_not_found")
    r = expect_json(a.post("/v1/send", {"to": {"prop": "kill-p"}, "body": "b"}, node=n1), 202)
    if r["unreachable"]:
        eq(r, {"delivered": 1, "full": [], "unreachable": [w.id]}, "a broadcast with one home down")
    else:
        eq(r, {"delivered": 1, "full": [], "unreachable": []}, "a broadcast after the node was dropped")
    res = h.result(ttl + 10)
    expect_error(res, 503, "receiver_gone")
    took = h.done_at - t_kill
    check(took <= ttl + 2, f"receiver_gone {took:.2f} s after kill -9 of the receiver's node (limit {ttl + 2} s)")
    ctx.note(f"waiting call answered receiver_gone {took:.2f} s after kill -9 of its receiver's node")
    eq([m["body"] for m in _drain(a, o, node=n2)], ["b"], "the live receiver got the broadcast, once")
    # a new call to the dead node's session, before or after the drop
    r = a.post("/v1/call", {"to": {"session": w.id}, "body": 1, "timeout_ms": 5000}, node=n2)
    check((r.status, (r.json or {}).get("error")) in ((503, "receiver_gone"), (404, "session_not_found")),
          f"a call to a session of the killed node: {r.desc()}")
    stats = expect_json(a.get("/v1/stats", node=n1), 200)["cluster"]
    check(stats["forward_failures"] >= 1, f"forward_failures {stats['forward_failures']}")


@test(timeout=60)
def test_caller_that_goes_away_cancels_the_call_on_every_node(ctx):
    cl = ctx.cluster(3)
    a = cl.any()
    n1, n2, n3 = cl.nodes
    w = a.session(node=n2)
    expect_status(a.put(name_path("gone/w"), None, token=w.token), 201)
    before = expect_json(a.get("/v1/stats", node=n1), 200)["calls"]["caller_gone"]
    raw = RawConn(n1.port)
    body = json.dumps({"to": {"name": "gone/w"}, "body": "hello", "timeout_ms": 20000})
    raw.send(f"POST /v1/call HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             f"Content-Length: {len(body)}\r\n\r\n{body}")
    msgs = _drain(a, w, node=n3, expect=1)
    eq(len(msgs), 1, "the call's message reached the worker")
    rid = msgs[0]["reply_to"]
    raw.sock.close()
    deadline = time.monotonic() + 5
    while expect_json(a.get("/v1/stats", node=n1), 200)["calls"]["caller_gone"] == before:
        check(time.monotonic() < deadline, "the caller's node never saw the caller go")
        time.sleep(0.05)
    for via in (n2, n3, n1):
        expect_error(a.post(f"/v1/replies/{rid}", {"body": "late"}, token=w.token, node=via), 404, "call_not_found")


@test(timeout=180)
def test_1000_concurrent_calls_across_nodes(ctx):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1400
    if soft < want and (hard == resource.RLIM_INFINITY or hard >= want):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    callers = min(1000, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 200)
    if callers < 1000:
        ctx.note(f"the file limit allows {callers} callers")
    cl = ctx.cluster(3)
    a = cl.any()
    n1, n2, n3 = cl.nodes
    workers = [a.session(node=n, ttl=120) for n in (n2, n3, n1, n2, n3, n1)]
    for s in workers:
        expect_status(a.put("/v1/groups/cc-g", None, token=s.token), 201)
    stop = time.monotonic() + 120
    worked = {}
    state = {}

    async def worker(s):
        reader, writer = await asyncio.open_connection(HOST, cl.node(s.home).port)
        after = 0
        n = 0
        while time.monotonic() < stop:
            st, body = await async_request(reader, writer, "GET", f"/v1/sessions/{s.id}/messages?after={after}&wait=1&max=500",
                                   token=s.token)
            if st != 200:
                raise Fail(f"worker receive: {st} {body}")
            for m in body["messages"]:
                after = m["seq"]
                st, rb = await async_request(reader, writer, "POST", f"/v1/replies/{m['reply_to']}", {"body": m["body"]},
                                     token=s.token)
                if st != 204:
                    raise Fail(f"reply: {st} {rb}")
                n += 1
            worked[s.id] = n
            if state["done"].is_set():
                break
        writer.close()

    async def caller(i):
        node = cl.nodes[i % 3]
        reader, writer = await asyncio.open_connection(HOST, node.port)
        body = {"to": {"group": "cc-g", "pick": "round_robin"}, "body": {"caller": i, "x": "y" * (i % 7)},
                "timeout_ms": 60000}
        st, ans = await async_request(reader, writer, "POST", "/v1/call", body)
        writer.close()
        return i, st, ans

    async def main():
        state["done"] = asyncio.Event()
        ws = [asyncio.create_task(worker(s)) for s in workers]
        t0 = time.monotonic()
        results = await asyncio.gather(*(caller(i) for i in range(callers)))
        took = time.monotonic() - t0
        state["done"].set()
        await asyncio.gather(*ws)
        return results, took

    results, took = asyncio.run(main())
    bad = [(i, st, ans) for i, st, ans in results
           if st != 200 or ans.get("body") != {"caller": i, "x": "y" * (i % 7)}]
    eq(bad[:5], [], f"every one of {callers} concurrent calls answered 200 with its own body")
    eq(sum(worked.values()), callers, f"replies by worker {worked}")
    homes = {s.id: s.home for s in workers}
    ctx.note(f"{callers} concurrent calls through n1, n2, n3 to 6 workers on 3 nodes answered in {took:.2f} s; "
             f"replies per worker's home {[(homes[k], v) for k, v in worked.items()]}")
    for nd in cl.nodes:
        calls = expect_json(a.get("/v1/stats", node=nd), 200)["calls"]
        eq(calls["pending"], 0, f"calls pending on {nd.name}")


@test(timeout=60)
def test_forward_counts_by_peer(ctx):
    cl = ctx.cluster(3)
    a = cl.any()
    n1, n2, n3 = cl.nodes
    s = a.session(node=n2)
    for i in range(20):
        expect_status(a.post("/v1/send", {"to": {"session": s.id}, "body": i}, node=n1), 202)
    st = expect_json(a.get("/v1/stats", node=n1), 200)["cluster"]
    check(st["messages_forwarded"] >= 20, f"messages_forwarded {st['messages_forwarded']}")
    p = st["peers"].get("n2")
    check(p is not None, f"n2 in peers {st['peers']}")
    check(1 <= p["forwards"] <= 20 and p["items"] >= 20 and p["failed"] == 0, f"n2's counts {p}")
    check(p["latency_ms_avg"] > 0 and p["latency_ms_max"] >= p["latency_ms_avg"], f"n2's round trips {p}")
    eq(set(p), {"forwards", "failed", "items", "queued", "latency_ms_avg", "latency_ms_max"}, "keys of a peer")
    m = n1.client().get("/metrics")
    expect_status(m, 200)
    text = m.body.decode()
    for name in ('rollcall_peer_forwards_total{peer="n2"}', 'rollcall_peer_items_total{peer="n2"}',
                 'rollcall_peer_forward_failures_total{peer="n2"} 0', 'rollcall_peer_forward_seconds_count{peer="n2"}',
                 "rollcall_messages_forwarded_total"):
        check(name in text, f"/metrics has {name}")
