#!/usr/bin/env python3
"""The node-loss figure of tests/bench/cluster.sh (`make bench-cluster`): how
long after `kill -9` of a node holding N names those names are gone on the
other nodes.

Usage: cluster_nodeloss.py --port P --pid PID --node NAME --poll P1,P2
                           [--names 10000] [--sessions 20] [--conns 64]
                           [--depth 2] [--prefix loss-] [--interval 0.02]
                           [--timeout 30]

1. Creates --sessions sessions (ttl 3600) on the node at port P (each must
   say "node": NAME) and registers --names names <prefix><i>, spread over
   them, pipelined over --conns keep-alive connections (--depth requests in
   flight on each); every answer must be 201.
2. Waits until each node of --poll shows the last name (GET /v1/names/KEY).
3. Starts one poller per --poll node, GET /v1/names?prefix=<prefix>&limit=1
   every --interval s (one keep-alive connection each), then kill -9 PID
   (only after /proc/PID/cmdline shows it is rollcall with --node NAME),
   and times until each poller sees "names": [] (and still [] on the next
   poll).

Prints "key=value" lines on stdout: registered, register_s, register_rate,
gone_ms_<port> for each poller (or "none" when not gone within --timeout),
gone_ms_max, polls, poll_errors, measured (1 or 0). Progress and problems
go to stderr. Exit status 1 when the figure could not be measured.

Python 3 standard library only."""

import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pipeline import HTTPError, request_bytes, run_pipelined  # noqa: E402

HOST = "127.0.0.1"


T0 = time.monotonic()


def say(msg):
    print("cluster_nodeloss: [%.1f s] %s" % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


def get_json(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    raw = r.read()
    try:
        return r.status, json.loads(raw.decode("utf-8"))
    except ValueError:
        return r.status, raw[:200]


def create_sessions(port, n, node):
    out = []
    bad = []
    req = request_bytes("POST", "/v1/sessions", HOST, json.dumps({"ttl": 3600}))

    def on(i, status, headers, body):
        try:
            b = json.loads(body)
        except ValueError:
            b = None
        if status != 201 or not isinstance(b, dict) or b.get("node") != node:
            bad.append("POST /v1/sessions: %d %s" % (status, body[:200]))
            return
        out.append((b["id"], b["token"]))

    run_pipelined(HOST, port, ((req, i) for i in range(n)), min(n, 8), 1, on, 60)
    if bad or len(out) != n:
        raise HTTPError("sessions not created on %s: %s" % (node, bad[:3]))
    return out


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


class Poller(threading.Thread):
    def __init__(self, port, prefix, interval, t_kill_box, deadline):
        super().__init__(daemon=True)
        self.port = port
        self.path = "/v1/names?prefix=%s&limit=1" % prefix
        self.interval = interval
        self.t_kill_box = t_kill_box
        self.deadline = deadline
        self.gone_at = None  # monotonic time of the first poll that saw []
        self.polls = 0
        self.errors = 0
        self.last_error = ""
        self.stop = threading.Event()
        self.started = threading.Event()

    def run(self):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
        nxt = time.monotonic()
        empty_since = None
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            t = time.monotonic()
            try:
                st, b = get_json(conn, self.path)
                self.polls += 1
                if st != 200 or not isinstance(b, dict) or not isinstance(b.get("names"), list):
                    self.errors += 1
                    self.last_error = "%d %s" % (st, str(b)[:200])
                elif not b["names"]:
                    if self.t_kill_box and empty_since is None:
                        empty_since = t
                    elif empty_since is not None:
                        self.gone_at = empty_since  # seen empty twice in a row
                        return
                    if not self.t_kill_box:
                        self.errors += 1
                        self.last_error = "no names before the kill"
                else:
                    empty_since = None
            except (OSError, http.client.HTTPException) as ex:
                self.errors += 1
                self.last_error = "%s: %s" % (type(ex).__name__, ex)
                conn.close()
                conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
            self.started.set()
            nxt += self.interval
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)
            else:
                nxt = time.monotonic()
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--poll", required=True)
    ap.add_argument("--names", type=int, default=10000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--prefix", default="loss-")
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--load-timeout", type=float, default=120.0)
    a = ap.parse_args()
    polls = [int(x) for x in a.poll.split(",") if x]
    res = {"measured": 0}

    def report():
        for k, v in res.items():
            print("%s=%s" % (k, v))

    try:
        sessions = create_sessions(a.port, a.sessions, a.node)
        bad = []
        ok = [0]

        def jobs():
            for i in range(a.names):
                sid, tok = sessions[i % len(sessions)]
                yield (request_bytes("PUT", "/v1/names/%s%05d" % (a.prefix, i), HOST,
                                     json.dumps({"value": {"i": i}}), tok), i)

        def on(i, status, headers, body):
            if status == 201:
                ok[0] += 1
            elif len(bad) < 5:
                bad.append("PUT %s%05d: %d %s" % (a.prefix, i, status, body[:200]))

        t0 = time.monotonic()
        run_pipelined(HOST, a.port, jobs(), a.conns, a.depth, on, a.load_timeout)
        t1 = time.monotonic()
        res["registered"] = ok[0]
        res["register_s"] = "%.2f" % (t1 - t0)
        res["register_rate"] = "%.0f" % (ok[0] / max(t1 - t0, 1e-9))
        say("%d names registered on %s in %.2f s (%.0f/s; %d sessions, %d connections x %d in flight)"
            % (ok[0], a.node, t1 - t0, ok[0] / max(t1 - t0, 1e-9), a.sessions, a.conns, a.depth))
        if ok[0] != a.names:
            say("PROBLEM: %d of %d registrations were not 201; first: %s" % (a.names - ok[0], a.names, bad))
            report()
            return 1

        last = "/v1/names/%s%05d" % (a.prefix, a.names - 1)
        for p in polls:
            c = http.client.HTTPConnection(HOST, p, timeout=5)
            deadline = time.monotonic() + 15
            while True:
                st, b = get_json(c, last)
                if st == 200:
                    break
                if time.monotonic() > deadline:
                    say("PROBLEM: node at port %d does not show %s after 15 s: %d %s" % (p, last, st, b))
                    report()
                    return 1
                time.sleep(0.05)
            c.close()

        argv = cmdline(a.pid)
        if not argv or b"rollcall" not in os.path.basename(argv[0]) or \
                b"--node" not in argv or argv[argv.index(b"--node") + 1] != a.node.encode():
            say("PROBLEM: pid %d is not rollcall --node %s (cmdline %r)" % (a.pid, a.node, argv[:8]))
            report()
            return 1

        box = []
        deadline = time.monotonic() + a.timeout + 5
        pollers = [Poller(p, a.prefix, a.interval, box, deadline) for p in polls]
        for t in pollers:
            t.start()
        for t in pollers:
            t.started.wait(5)
        time.sleep(0.2)  # a few polls that still see the names
        before_errors = sum(t.errors for t in pollers)
        t_kill = time.monotonic()
        box.append(t_kill)
        os.kill(a.pid, signal.SIGKILL)
        say("kill -9 %d (%s, holding %d names); polling %s every %.0f ms"
            % (a.pid, a.node, a.names, ",".join(map(str, polls)), a.interval * 1000))
        for t in pollers:
            t.join(a.timeout + 6)
        for t in pollers:
            t.stop.set()
        worst = None
        all_gone = True
        for t in pollers:
            if t.gone_at is None or t.gone_at - t_kill > a.timeout:
                res["gone_ms_%d" % t.port] = "none"
                all_gone = False
                say("PROBLEM: the names were still listed on port %d %.0f s after the kill%s"
                    % (t.port, a.timeout, "; last error: " + t.last_error if t.last_error else ""))
            else:
                ms = (t.gone_at - t_kill) * 1000
                res["gone_ms_%d" % t.port] = "%.0f" % ms
                worst = ms if worst is None else max(worst, ms)
        res["polls"] = sum(t.polls for t in pollers)
        res["poll_errors"] = sum(t.errors for t in pollers)
        if before_errors:
            say("PROBLEM: %d poll errors before the kill; last: %s"
                % (before_errors, "; ".join(t.last_error for t in pollers if t.last_error)))
        if all_gone and not before_errors:
            res["gone_ms_max"] = "%.0f" % worst
            res["measured"] = 1
        report()
        return 0 if res["measured"] else 1
    except (HTTPError, OSError, http.client.HTTPException, ValueError) as ex:
        say("PROBLEM: %s: %s" % (type(ex).__name__, ex))
        report()
        return 1


if __name__ == "__main__":
    sys.exit(main())
