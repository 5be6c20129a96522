"""The nodes of a cluster: GET /v1/nodes, a node that leaves on SIGTERM, and
a node started under the name of one still registered (api.md, "Cluster")."""

import calendar
import time

from harness import (RFC3339_UTC, check, eq, expect_error, expect_json, expect_no_body, expect_status,
                     name_path, test, wait_until)


def _since(s):
    check(isinstance(s, str) and RFC3339_UTC.fullmatch(s), f"since {s!r} is not RFC 3339 UTC")
    return calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))


def _nodes(a, nd, **kw):
    r = a.get("/v1/nodes", node=nd, **kw)
    body = expect_json(r, 200)
    eq(list(body), ["nodes"], "keys of GET /v1/nodes")
    for n in body["nodes"]:
        eq(sorted(n), ["node", "sessions", "since", "url"], "keys of a node")
    return body["nodes"]


@test()
def test_nodes_listing(ctx):
    t0 = time.time()
    cl = ctx.cluster(names=["node-b", "node-a", "node-c"])
    a = cl.any()
    nb, na, nc = cl.nodes
    for nd in (na, na, nc):
        a.session(node=nd)
    want = {"node-a": (na, 2), "node-b": (nb, 0), "node-c": (nc, 1)}
    since = {}
    for nd in cl.nodes:
        nodes = _nodes(a, nd)
        eq([n["node"] for n in nodes], ["node-a", "node-b", "node-c"], f"nodes listed on {nd.name}, in name order")
        for n in nodes:
            node, count = want[n["node"]]
            eq(n["url"], node.url, f"url of {n['node']} (its --advertise, by default http:// + --listen)")
            eq(n["sessions"], count, f"sessions of {n['node']} listed on {nd.name}")
            t = _since(n["since"])
            check(t0 - 2 <= t <= time.time() + 2, f"since of {n['node']} {n['since']} is not when it joined")
            check(since.setdefault(n["node"], n["since"]) == n["since"],
                  f"since of {n['node']} differs between nodes: {since[n['node']]} and {n['since']}")
    check(since["node-b"] <= since["node-a"] <= since["node-c"], f"since is not the join order: {since}")


@test()
def test_sigterm_leaves_at_once(ctx):
    """On SIGTERM a node leaves: its sessions end at once, as expired, on
    every node; the others' sessions stay."""
    cl = ctx.cluster(3)
    a = cl.any()
    n1, n2, n3 = cl.nodes
    s1 = a.session(node=n1)
    s3 = a.session(node=n3)
    expect_status(a.put(name_path("leave/s1"), None, token=s1.token), 201)
    expect_status(a.put(name_path("leave/s3"), None, token=s3.token), 201)
    before = a.seen
    for nd in (n1, n2):  # both copies have everything before the stop
        expect_json(a.get("/v1/names?prefix=leave/", node=nd), 200)
    t0 = time.monotonic()
    eq(n3.stop(5.0), 0, "exit code of a node after SIGTERM")
    stopped = time.monotonic() - t0
    c1, c2 = n1.client(), n2.client()

    def gone():
        for c in (c1, c2):
            if c.get_name("leave/s3").status != 404:
                return False
            body = expect_json(c.get("/v1/nodes"), 200)
            if [n["node"] for n in body["nodes"]] != ["n1", "n2"]:
                return False
        return True

    t = wait_until(gone, 5.0, 0.05)
    check(t is not None, "a SIGTERMed node's session and entry still there on n1/n2 5 s after it exited")
    ctx.note(f"SIGTERM: exit after {stopped:.2f} s; its session gone on the others {t - t0:.2f} s after the signal")
    check(t - t0 <= 2.5, f"a SIGTERMed node's sessions ended only {t - t0:.2f} s after the signal (want at once)")
    body = expect_json(a.get(f"/v1/events?after={before}&wait=5", node=n2, min_index=False), 200)
    got = [(e["type"], e["session"], e.get("key")) for e in body["events"]]
    eq(got, [("name_unregistered", s3.id, "leave/s3"), ("session_expired", s3.id, None)],
       "events of a node's leave")
    expect_json(a.post(f"/v1/sessions/{s1.id}/heartbeat", token=s1.token, node=n2), 200)
    eq(expect_json(a.get(name_path("leave/s1"), node=n1), 200)["session"], s1.id, "the other session's name")


@test()
def test_node_name_taken_over(ctx):
    """A node started under the name of a node still registered takes the
    name over: the earlier holder's sessions end as expired, and the earlier
    process, still running, ends its own."""
    cl = ctx.cluster(3)
    a = cl.any()
    n1, n2, n3 = cl.nodes
    old = a.session(node=n3)
    expect_status(a.put(name_path("take/old"), None, token=old.token), 201)
    before = a.seen
    n3.any_exit = True  # it may end itself once it finds itself dropped
    t0 = time.monotonic()
    new = cl.add_node("n3")
    c1, cold = n1.client(), n3.client()

    def dropped():
        if c1.get_name("take/old").status != 404:
            return False
        nodes = expect_json(c1.get("/v1/nodes"), 200)["nodes"]
        return [(n["node"], n["url"]) for n in nodes] == [("n1", n1.url), ("n2", n2.url), ("n3", new.url)]

    t = wait_until(dropped, 3 + 3.0, 0.05)
    check(t is not None, "the earlier n3's session still there, or /v1/nodes not showing the new n3, "
                         f"on n1 {3 + 3} s after the new n3 started")
    ctx.note(f"takeover: the earlier holder's session gone on n1 {t - t0:.2f} s after the new n3 started")
    evs = expect_json(a.get(f"/v1/events?after={before}&wait=5", node=n1, min_index=False), 200)["events"]
    eq([(e["type"], e["session"]) for e in evs if e["type"].startswith("session_")], [("session_expired", old.id)],
       "the earlier holder's session ends as expired")
    # the earlier process, if it still runs, never serves the old session again
    if n3.running():
        def ended():
            try:
                r = cold.heartbeat(old.id, old.token)
            except OSError:
                return True
            return r.status in (404, 503)
        check(wait_until(ended, 3 + 2.0, 0.05) is not None,
              "the earlier n3 still answers its session's heartbeat after the name was taken over")
    s = a.session(node=new)
    expect_json(a.post(f"/v1/sessions/{s.id}/heartbeat", token=s.token, node=n1), 200)
    expect_error(a.post(f"/v1/sessions/{old.id}/heartbeat", token=old.token, node=n2), 404, "session_not_found")
    expect_no_body(a.delete(f"/v1/sessions/{s.id}", token=s.token, node=n2), 204)
