"""rollcallctl against the real server: each command, its output for people
and with --json, and its exit statuses (0 done, 1 not found or empty, 2 usage
or refused as bad, 4 unreachable or unable to serve, 5 a deadline)."""

import json
import os
import subprocess
import threading
import time

import harness
from harness import check, eq, expect_json, expect_status, test


def ctl(srv, *args, env=None, timeout=20):
    """Runs build/rollcallctl (next to the server binary) against srv:
    (exit status, stdout, stderr)."""
    exe = os.path.join(os.path.dirname(harness.BIN), "rollcallctl")
    e = dict(os.environ)
    e.pop("ROLLCALL_AUTH_TOKEN", None)
    e["ROLLCALL_URL"] = f"http://{harness.HOST}:{srv.port}" if srv else "http://127.0.0.1:1"
    e.update(env or {})
    p = subprocess.run([exe, *args], capture_output=True, text=True, env=e, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def rows(out):
    return [line.split() for line in out.strip().splitlines()]


@test
def test_lookup(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session()
    expect_status(c.put_name("db/main", {"port": 5432}, s.token), 201)
    rc, out, err = ctl(srv, "lookup", "db/main")
    eq(rc, 0, f"lookup: {err}")
    eq(rows(out), [["NAME", "SESSION", "VALUE"], ["db/main", s.id, '{"port":5432}']], "lookup, for people")
    rc, out, _ = ctl(srv, "--json", "lookup", "db/main")
    eq((rc, json.loads(out)), (0, {"key": "db/main", "session": s.id, "value": {"port": 5432}}), "lookup --json")
    rc, out, err = ctl(srv, "lookup", "nobody")
    eq((rc, out), (1, ""), "an unknown name: 1, nothing on stdout")
    check("name_not_found" in err, f"the error on stderr: {err!r}")
    # --wait: answered when the name comes
    t0 = time.monotonic()
    later = threading.Timer(0.5, lambda: c.put_name("late", None, s.token))
    later.start()
    rc, out, err = ctl(srv, "lookup", "late", "--wait", "5")
    eq(rc, 0, f"lookup --wait of a name registered meanwhile: {err}")
    check(time.monotonic() - t0 < 4, "answered when the name came")
    rc, _, _ = ctl(srv, "lookup", "never", "--wait", "1")
    eq(rc, 1, "lookup --wait that times out")


@test
def test_ls_each_kind(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session(label="ls@host")
    for k in ("ls/a", "ls/b", "other"):
        expect_status(c.put_name(k, 1, s.token), 201)
    expect_status(c.put("/v1/props/role", {"value": "db"}, token=s.token), 201)
    expect_status(c.put("/v1/groups/workers", None, token=s.token), 201)
    rc, out, _ = ctl(srv, "ls", "names", "--prefix", "ls/")
    eq((rc, rows(out)), (0, [["NAME", "SESSION", "VALUE"], ["ls/a", s.id, "1"], ["ls/b", s.id, "1"]]), "ls names")
    rc, out, _ = ctl(srv, "--json", "ls", "names")
    eq([json.loads(x)["key"] for x in out.splitlines()], ["ls/a", "ls/b", "other"], "ls names --json: a line each")
    eq(rows(ctl(srv, "ls", "props")[1]), [["PROPERTY", "HOLDERS"], ["role", "1"]], "ls props")
    eq(rows(ctl(srv, "ls", "groups")[1]), [["GROUP", "MEMBERS"], ["workers", "1"]], "ls groups")
    rc, out, _ = ctl(srv, "ls", "sessions")
    lines = rows(out)
    eq((rc, lines[0], lines[1][:2]), (0, ["SESSION", "LABEL", "EXPIRES", "NODE"], [s.id, "ls@host"]), "ls sessions")
    check(" ".join(lines[1][2:4]).startswith("in "), f"expiry relative: {lines[1]}")
    rc, out, _ = ctl(srv, "ls", "nodes")
    eq((rc, rows(out)[0]), (0, ["NODE", "URL", "SESSIONS", "SINCE"]), "ls nodes")
    rc, out, _ = ctl(srv, "ls", "names", "--prefix", "zzz")
    eq((rc, rows(out)), (1, [["NAME", "SESSION", "VALUE"]]), "an empty listing: 1")
    eq(ctl(srv, "ls", "things")[0], 2, "an unknown kind: 2")
    eq(ctl(srv, "ls", "nodes", "--prefix", "x")[0], 2, "--prefix on nodes: 2")


@test
def test_members(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    a, b = c.session(), c.session()
    expect_status(c.put("/v1/groups/pool", {"value": "a"}, token=a.token), 201)
    expect_status(c.put("/v1/groups/pool", {"value": "b"}, token=b.token), 201)
    rc, out, _ = ctl(srv, "members", "pool")
    eq((rc, rows(out)), (0, [["SESSION", "VALUE"], [a.id, '"a"'], [b.id, '"b"']]), "members in join order")
    picked = {ctl(srv, "--json", "members", "pool", "--pick", "round_robin")[1].strip() for _ in range(2)}
    eq(len(picked), 2, f"round_robin picks both in turn: {picked}")
    rc, out, _ = ctl(srv, "--json", "members", "pool", "--pick", "hash", "--hash-key", "k1")
    rc2, out2, _ = ctl(srv, "--json", "members", "pool", "--pick", "hash", "--hash-key", "k1")
    eq((rc, rc2, out), (0, 0, out2), "the same hash key, the same member")
    eq(ctl(srv, "members", "empty")[0], 1, "a group with no member: 1")
    eq(ctl(srv, "members", "empty", "--pick", "random")[0], 1, "a pick in an empty group: 1 (group_empty)")
    eq(ctl(srv, "members", "pool", "--pick", "hash")[0], 2, "hash without its key: 2 (400)")


@test
def test_send(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s, t = c.session(), c.session()
    expect_status(c.put_name("inbox", None, s.token), 201)
    for x in (s, t):
        expect_status(c.put("/v1/props/all", None, token=x.token), 201)
    rc, out, err = ctl(srv, "send", "name:inbox", '{"n": 1}')
    eq((rc, out), (0, "delivered 1\n"), f"send to a name: {err}")
    rc, out, _ = ctl(srv, "--json", "send", "prop:all", '"hi"')
    eq((rc, json.loads(out)), (0, {"delivered": 2, "full": []}), "send to a property's holders, --json")
    got = expect_json(c.get(f"/v1/sessions/{s.id}/messages", token=s.token), 200)["messages"]
    eq([(m["to"], m["body"]) for m in got], [({"name": "inbox"}, {"n": 1}), ({"prop": "all"}, "hi")], "received")
    rc, _, err = ctl(srv, "send", "name:nobody", "1")
    eq(rc, 1, "send to an unknown name: 1")
    check("name_not_found" in err, err)
    eq(ctl(srv, "send", "inbox", "1")[0], 2, "a target without its kind: 2")
    rc, _, err = ctl(srv, "send", "name:inbox", "not json")
    eq(rc, 2, "a body that is not JSON: 2")
    check("not JSON" in err, err)
    eq(ctl(srv, "send", "name:inbox")[0], 2, "send without a body: 2")


@test
def test_call(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    w = c.session()
    expect_status(c.put_name("svc", None, w.token), 201)

    def serve():
        c2 = ctx.client(srv)
        m = expect_json(c2.get(f"/v1/sessions/{w.id}/messages?wait=10", token=w.token), 200)["messages"][0]
        c2.post(f"/v1/replies/{m['reply_to']}", {"body": {"echo": m["body"]}}, token=w.token)

    th = threading.Thread(target=serve)
    th.start()
    rc, out, err = ctl(srv, "call", "name:svc", '{"q": 1}', "--timeout", "5000")
    th.join(10)
    eq((rc, json.loads(out)), (0, {"echo": {"q": 1}}), f"call prints the reply's body: {err}")
    rc, _, err = ctl(srv, "call", "name:svc", "1", "--timeout", "200")
    eq(rc, 5, "a call with no reply before its timeout: 5")
    check("call_timeout" in err, err)
    eq(ctl(srv, "call", "prop:x", "1")[0], 2, "a call to a property: 2 (400)")


@test
def test_stats_unreachable_auth_and_usage(ctx):
    srv = ctx.start("--auth-token", "sekrit")
    rc, _, err = ctl(srv, "stats")
    eq(rc, 2, "no token with --auth-token: 2 (401)")
    check("unauthorized" in err, err)
    rc, out, _ = ctl(srv, "stats", env={"ROLLCALL_AUTH_TOKEN": "sekrit"})
    eq(rc, 0, "the token from $ROLLCALL_AUTH_TOKEN")
    check(out.startswith("sessions"), f"stats for people: {out!r}")
    rc, out, _ = ctl(srv, "--auth-token", "sekrit", "--json", "stats")
    eq((rc, "parked" in json.loads(out)), (0, True), "stats --json, the token from --auth-token")
    rc, _, err = ctl(None, "stats")
    eq(rc, 4, "nothing listening: 4")
    check("unreachable" in err, err)
    eq(ctl(srv, "frobnicate")[0], 2, "an unknown command: 2")
    eq(ctl(srv)[0], 2, "no command: 2")
    eq(ctl(srv, "--url", "ftp://x", "stats")[0], 2, "a --url that is not http: 2")
    rc, out, _ = ctl(srv, "--help")
    eq(rc, 0, "--help")
    check("exit status" in out, "--help says the exit statuses")


def ctl_bg(srv, *args, env=None, port=None):
    """rollcallctl in the background (a Popen, text mode)."""
    exe = os.path.join(os.path.dirname(harness.BIN), "rollcallctl")
    e = dict(os.environ)
    e["ROLLCALL_URL"] = f"http://{harness.HOST}:{port or srv.port}"
    e["PATH"] = os.path.dirname(os.path.abspath(exe)) + ":" + e.get("PATH", "")
    e.update(env or {})
    return subprocess.Popen([exe, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)


def sessions_of(c):
    return expect_json(c.get("/v1/sessions"), 200)["sessions"]


@test
def test_run_passes_the_exit_status_and_ends_the_session(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    p = ctl_bg(srv, "run", "--name", "job", "--ttl", "5", "--", "sh", "-c",
               'test -n "$ROLLCALL_SESSION" && test -n "$ROLLCALL_TOKEN" && test -s "$ROLLCALL_SESSION_FILE" '
               '&& rollcallctl lookup job >/dev/null && exit 7')
    out, err = p.communicate(timeout=15)
    eq(p.returncode, 7, f"run exits with the command's status (the command saw its session): {err}")
    t0 = time.monotonic()
    wait_until_empty = harness.wait_until(lambda: sessions_of(c) == [], 1.0)
    check(wait_until_empty is not None, f"session gone within a second of the command's end ({time.monotonic() - t0:.2f} s)")
    eq(ctl(srv, "lookup", "job")[0], 1, "its name went with it")
    p = ctl_bg(srv, "run", "--name", "sig", "--", "sh", "-c", "kill -9 $$")
    p.communicate(timeout=15)
    eq(p.returncode, 128 + 9, "a command killed by signal 9: 137")


@test
def test_run_with_a_taken_name_starts_nothing(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session()
    expect_status(c.put_name("taken", None, s.token), 201)
    marker = os.path.join(ctx_tmp(), "started")
    rc, _, err = ctl(srv, "run", "--name", "taken", "--", "touch", marker)
    eq(rc, 3, f"a taken name: 3 ({err.strip()})")
    check(not os.path.exists(marker), "the command was not started")
    eq(len(sessions_of(c)), 1, "the session run made is gone")


def ctx_tmp():
    import tempfile
    return tempfile.mkdtemp(prefix="rollcallctl-test-")


@test
def test_sigterm_reaches_the_command_and_ends_the_session(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    tmp = ctx_tmp()
    mark, ready = os.path.join(tmp, "term"), os.path.join(tmp, "ready")
    p = ctl_bg(srv, "run", "--name", "svc", "--", "sh", "-c",
               f"trap 'echo got > {mark}; exit 0' TERM; touch {ready}; while :; do sleep 0.1; done")
    # the command has its trap in place (the name is registered before it starts)
    check(harness.wait_until(lambda: os.path.exists(ready), 5.0) is not None, "the command started")
    eq(ctl(srv, "lookup", "svc")[0], 0, "its name is held meanwhile")
    p.send_signal(15)
    p.communicate(timeout=10)
    eq(p.returncode, 0, "run exits with the command's status after it handled SIGTERM")
    check(os.path.exists(mark), "SIGTERM reached the command")
    eq(sessions_of(c), [], "the session was deleted")


@test
def test_wait_name_elects_one_leader_at_a_time(ctx):
    srv = ctx.start()
    log = os.path.join(ctx_tmp(), "log")
    ps = [ctl_bg(srv, "run", "--name", "leader", "--wait-name", "30", "--", "sh", "-c",
                 f"echo start {i} >> {log}; sleep 0.6; echo end {i} >> {log}") for i in range(3)]
    for p in ps:
        p.communicate(timeout=40)
        eq(p.returncode, 0, "each contender led once")
    lines = open(log).read().split()
    events = list(zip(lines[0::2], lines[1::2]))
    eq(len(events), 6, f"3 terms: {events}")
    for k in range(0, 6, 2):
        eq((events[k][0], events[k + 1][0], events[k][1]), ("start", "end", events[k + 1][1]),
           f"one leader at a time: {events}")
    eq(sorted(e[1] for e in events[0::2]), ["0", "1", "2"], "every contender led")


@test
def test_recv_reply_answers_calls_and_follows_a_restart(ctx):
    srv = ctx.start()
    port = srv.port
    p = ctl_bg(srv, "run", "--name", "echo", "--ttl", "3", "--", "rollcallctl", "recv", "--reply",
               "sed 's/ping/pong/'")
    try:
        check(harness.wait_until(lambda: ctl(srv, "lookup", "echo")[0] == 0, 5.0) is not None, "echo registered")
        rc, out, err = ctl(srv, "call", "name:echo", '"ping"', "--timeout", "5000")
        eq((rc, out.strip()), (0, '"pong"'), f"recv --reply answered the call: {err}")
        # the server restarts on the same port: run registers again, recv follows
        srv.kill()
        srv2 = ctx.start("--listen", f"{harness.HOST}:{port}", listen=False)
        t0 = time.monotonic()
        back = harness.wait_until(lambda: ctl(srv2, "lookup", "echo")[0] == 0, 8.0)
        check(back is not None, "the name registered again after the restart")
        print(f"    # registered again {back - t0:.2f} s after the new server started (--ttl 3)")
        ok = harness.wait_until(
            lambda: ctl(srv2, "call", "name:echo", '"ping"', "--timeout", "2000")[1].strip() == '"pong"', 8.0)
        check(ok is not None, "calls answered again after the restart")
    finally:
        p.send_signal(15)
        p.communicate(timeout=10)


@test
def test_watch_follows_changes_across_a_restart(ctx):
    srv = ctx.start()
    port = srv.port
    p = ctl_bg(srv, "--json", "watch", "--prefix", "w/")

    def streaming(server):
        return expect_json(ctx.client(server).get("/v1/stats"), 200)["streams_open"] == 1
    try:
        check(harness.wait_until(lambda: streaming(srv), 10.0) is not None, "watch opened its stream")
        c = ctx.client(srv)
        s = c.session()
        expect_status(c.put_name("w/one", 1, s.token), 201)
        expect_status(c.put_name("other", 1, s.token), 201)  # not under the prefix
        time.sleep(0.3)
        srv.kill()
        srv2 = ctx.start("--listen", f"{harness.HOST}:{port}", listen=False)
        # watch reconnects (every 0.5 s) with an index the new server is behind: reset, list again
        check(harness.wait_until(lambda: streaming(srv2), 10.0) is not None, "watch reconnected")
        c2 = ctx.client(srv2)
        s2 = c2.session()
        expect_status(c2.put_name("w/two", 2, s2.token), 201)
        time.sleep(1.0)
    finally:
        p.terminate()
        out, err = p.communicate(timeout=10)
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [(e["type"], e.get("key")) for e in events]
    check(("name_registered", "w/one") in kinds, f"the first server's event: {kinds}")
    check(("name_registered", "other") not in kinds, f"--prefix keeps others out: {kinds}")
    check(("reset", None) in kinds, f"a reset after the restart (the index went back): {kinds}")
    after_reset = kinds[kinds.index(("reset", None)):]
    check(("name_registered", "w/two") in after_reset, f"the stream goes on after the reset: {after_reset}")


KEEPALIVE_PROG = r"""
#include <rollcall.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static volatile int lost;
static void on_lost(void *ctx) { (void)ctx; lost = 1; }
int main(int argc, char **argv)
{
	struct rc *c = rc_new(argv[1], NULL);
	struct rc_session s;
	struct rc_result r = { 0 };
	struct rc_keepalive *k;
	char path[64];
	int i;

	(void)argc;
	if (rc_session_create(c, 2, "keepalive", &s, &r) != 201)
		return 10;
	k = rc_keepalive_start(argv[1], NULL, &s, on_lost, NULL);
	if (!k)
		return 11;
	sleep(5); /* 2.5 ttls: only the keep-alive's heartbeats keep it */
	snprintf(path, sizeof(path), "/v1/sessions/%s", s.id);
	printf("after 5 s: %d\n", rc_request(c, "GET", path, NULL, NULL, 0, &r));
	rc_session_delete(c, &s, &r); /* ended from here: the keep-alive hears 404 */
	for (i = 0; i < 30 && !lost; i++)
		usleep(100000);
	printf("lost: %d\n", lost);
	rc_keepalive_stop(k);
	rc_result_clear(&r);
	rc_free(c);
	return 0;
}
"""


@test
def test_librollcall_keepalive_thread(ctx):
    srv = ctx.start()
    build = os.path.dirname(os.path.abspath(harness.BIN))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tmp = ctx_tmp()
    src, exe = os.path.join(tmp, "ka.c"), os.path.join(tmp, "ka")
    with open(src, "w") as f:
        f.write(KEEPALIVE_PROG)
    san = [] if os.path.basename(build) == "build" else ["-fsanitize=address,undefined"]
    pc = subprocess.run(["pkg-config", "--cflags", "--libs", "libcurl", "libcjson"], capture_output=True, text=True)
    cc = subprocess.run(["cc", *san, "-I", os.path.join(os.path.dirname(root), "client"), "-o", exe, src,
                         os.path.join(build, "librollcall.a"), *pc.stdout.split(), "-pthread"],
                        capture_output=True, text=True, timeout=60)
    eq(cc.returncode, 0, f"a program on librollcall: {cc.stderr}")
    p = subprocess.run([exe, f"http://{harness.HOST}:{srv.port}"], capture_output=True, text=True, timeout=30)
    eq(p.returncode, 0, f"the program: {p.stderr}")
    eq(p.stdout.split("\n")[:2], ["after 5 s: 200", "lost: 1"],
       "a ttl-2 session kept 5 s by the keep-alive thread; its end told to on_lost")
