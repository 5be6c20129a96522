"""The cluster flags on the command line (api.md, "Cluster": a bad flag
prints one line and exits 2), and GET /v1/nodes in single-node mode."""

import subprocess
import time

from harness import (HOST, RFC3339_UTC, check, e2e, eq, expect_json, free_ports, test)

# Nothing listens there: a flag the binary wrongly accepts leaves it
# retrying etcd, and run_binary then reports "did not exit".
NO_ETCD = "http://127.0.0.1:9"


def _bad(args):
    rc, out, err = e2e.run_binary(["--listen", f"{HOST}:{free_ports(1)[0]}"] + args, timeout=4.0)
    eq(rc, 2, f"exit code of {args}")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    eq(len(lines), 1, f"stderr lines of {args} ({err[:300]!r})")


def _good(args):
    """The same command line with good values starts (and keeps retrying
    an etcd that is not there): the refusals above are the flag's."""
    argv = [e2e.BIN, "--listen", f"{HOST}:{free_ports(1)[0]}"] + args
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        rc = p.wait(1.0)
        err = p.stderr.read().decode("utf-8", "replace")
        raise AssertionError(f"{argv[1:]}: good flags, but it exited {rc} within 1 s: {err[:300]!r}")
    except subprocess.TimeoutExpired:
        pass
    finally:
        p.kill()
        p.wait()
        p.stderr.close()


@test(etcd=None)
def test_node_ttl_2_exits_2(ctx):
    _bad(["--etcd", NO_ETCD, "--node", "a", "--node-ttl", "2"])
    _good(["--etcd", NO_ETCD, "--node", "a", "--node-ttl", "3"])


@test(etcd=None)
def test_node_ttl_out_of_range_exits_2(ctx):
    for v in ("0", "301", "abc", "-3", "3.5", ""):
        _bad(["--etcd", NO_ETCD, "--node", "a", "--node-ttl", v])
    _good(["--etcd", NO_ETCD, "--node", "a", "--node-ttl", "300"])


@test(etcd=None)
def test_node_empty_exits_2(ctx):
    _bad(["--etcd", NO_ETCD, "--node", ""])
    _good(["--etcd", NO_ETCD, "--node", "a.B_9:-z"])


@test(etcd=None)
def test_node_bad_name_exits_2(ctx):
    _bad(["--etcd", NO_ETCD, "--node", "bad name"])
    _bad(["--etcd", NO_ETCD, "--node", "a/b"])
    _bad(["--etcd", NO_ETCD, "--node", "x" * 65])
    _bad(["--node", "bad name"])  # checked without --etcd too


@test(etcd=None)
def test_etcd_empty_exits_2(ctx):
    _bad(["--etcd", ""])
    _good(["--etcd", NO_ETCD])


@test(etcd=None)
def test_single_node_lists_itself(ctx):
    """Without --etcd, GET /v1/nodes is the one node, named by --node."""
    port = free_ports(1)[0]
    name = "solo_1.a:b-" + "x" * 53  # 64 bytes of every allowed kind
    eq(len(name), 64, "name length")
    t0 = time.time()
    p = subprocess.Popen([e2e.BIN, "--listen", f"{HOST}:{port}", "--node", name],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        c = e2e.Client(port, timeout=5)
        deadline = time.monotonic() + 5
        while True:
            try:
                r = c.get("/healthz")
                break
            except OSError:
                check(p.poll() is None and time.monotonic() < deadline,
                      f"single node did not serve (rc {p.poll()})")
                time.sleep(0.05)
        expect_json(r, 200)
        s = c.session(ttl=30)
        body = expect_json(c.get("/v1/nodes"), 200)
        eq(list(body), ["nodes"], "keys of GET /v1/nodes")
        eq(len(body["nodes"]), 1, "one node")
        n = body["nodes"][0]
        eq(sorted(n), ["node", "sessions", "since", "url"], "keys of a node")
        eq(n["node"], name, "node")
        eq(n["url"], f"http://{HOST}:{port}", "url (the default --advertise)")
        eq(n["sessions"], 1, "sessions")
        check(RFC3339_UTC.fullmatch(n["since"] or ""), f"since {n['since']!r} is not RFC 3339 UTC")
        since = time.mktime(time.strptime(n["since"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        check(t0 - 5 <= since <= time.time() + 5, f"since {n['since']} is not the start ({t0})")
        c.delete_session(s.id, s.token)
        c.close()
    finally:
        p.kill()
        p.wait()
        p.stderr.close()

