#!/usr/bin/env python3
"""The etcd fail-over figure of tests/bench/cluster.sh (`make bench-cluster`):
how long name registrations stop when the etcd leader is killed.

Usage: cluster_failover.py --ports P1,P2 --nodes n1,n2 --etcd-state FILE
                           [--interval 0.02] [--before 2] [--after-max 30]
                           [--settle 8] [--inflight-wait 10]

FILE is what cluster_etcd.py wrote (ETCD_DIR, ETCD_PID_i, ETCD_URL_i).

A steady open-loop stream of registrations: every --interval s a new request
(each in its own thread, on its own connection, 15 s timeout), the nodes in
turn, PUT /v1/names/fo-<node>-<n> with the token of a session homed on that
node (a new one is made if a node says the session is gone: counted as
sessions_lost). After --before s the leader is found (POST
/v3/maintenance/status {} on each member: header.member_id == leader) and
killed with SIGKILL (its pid from FILE, checked against /proc/PID/cmdline);
the stream goes on until every node has acknowledged (201) a write sent
after the kill, then --settle s more (to see a second pause: a write that
went to the old leader fails only after etcd's 7 s request timeout); then the requests still out get up to
--inflight-wait s to end.

Prints "key=value" lines on stdout:
  leader            mI, the member killed (and leader_url)
  last_ack_ms       when the last write acknowledged before the kill was, ms
                    relative to the kill (negative)
  first_ack_ms      the first acknowledgement of a write sent after the kill
  first_ack_ms_P    the same, through the node at port P
  gap_ms            first_ack_ms - last_ack_ms: how long no write was acknowledged
  first_any_ack_ms  the first acknowledgement after the kill of any write
                    (one sent before it included)
  new_leader_ms     when a surviving member first reported a leader
  sent, acked, status_<code> (other answers), conn_errors
  inflight_at_kill  writes sent before the kill and unanswered then;
                    inflight_outcomes  how they ended (status:count,...),
                    inflight_max_ms    the longest of them (from the kill)
  late_failures     writes sent after every node had resumed that were not
                    acknowledged (late_sent: how many were sent then), with
                    late_first_ms, late_last_ms (when sent) and late_outcomes
  sessions_lost, measured (1 or 0)
Progress and problems go to stderr. Exit status 1 when not measured.

Python 3 standard library only."""

import argparse
import collections
import http.client
import json
import os
import signal
import sys
import threading
import time

HOST = "127.0.0.1"


T0 = time.monotonic()


def say(msg):
    print("cluster_failover: [%.1f s] %s" % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


def call(port, method, path, body=None, headers=None, timeout=15.0):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        h = dict(headers or {})
        if data is not None:
            h["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        raw = r.read()
        try:
            return r.status, json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            return r.status, raw[:200]
    finally:
        conn.close()


def read_state(path):
    st = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k:
                st[k] = v
    return st


def port_of(url):
    return int(url.rstrip("/").rsplit(":", 1)[1])


def member_status(url):
    try:
        st, b = call(port_of(url), "POST", "/v3/maintenance/status", {}, timeout=1.0)
    except (OSError, http.client.HTTPException):
        return None
    return b if st == 200 and isinstance(b, dict) else None


def find_leader(members):
    """(index, url) of the member that says it is the leader, or None."""
    for i, url in members:
        s = member_status(url)
        if not s or s.get("errors"):
            continue
        mid = (s.get("header") or {}).get("member_id")
        if mid and s.get("leader") == mid:
            return i, url
    return None


class Node:
    def __init__(self, name, port):
        self.name = name
        self.port = port
        self.token = None
        self.gen = 0  # bumped with each new session
        self.lock = threading.Lock()
        self.lost = 0

    def new_session(self, seen_gen):
        """A new session homed here, unless another thread made one since
        seen_gen. True when there is a usable token."""
        with self.lock:
            if self.gen != seen_gen and self.token:
                return True
            try:
                st, b = call(self.port, "POST", "/v1/sessions", {"ttl": 3600}, timeout=15)
            except (OSError, http.client.HTTPException):
                return False
            if st != 201 or not isinstance(b, dict) or b.get("node") != self.name:
                return False
            if self.token:
                self.lost += 1
            self.token = b["token"]
            self.gen += 1
            return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", required=True)
    ap.add_argument("--nodes", required=True)
    ap.add_argument("--etcd-state", required=True)
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--before", type=float, default=2.0)
    ap.add_argument("--after-max", type=float, default=30.0)
    ap.add_argument("--settle", type=float, default=8.0)
    ap.add_argument("--inflight-wait", type=float, default=10.0)
    a = ap.parse_args()
    nodes = [Node(n, int(p)) for n, p in zip(a.nodes.split(","), a.ports.split(","))]
    state = read_state(a.etcd_state)
    members = []
    i = 1
    while "ETCD_URL_%d" % i in state:
        members.append((i, state["ETCD_URL_%d" % i]))
        i += 1
    res = collections.OrderedDict(measured=0)

    def report():
        for k, v in res.items():
            print("%s=%s" % (k, v))

    for n in nodes:
        if not n.new_session(-1):
            say("PROBLEM: could not create a session on %s (port %d)" % (n.name, n.port))
            report()
            return 1

    say("a session on each of %s; the stream starts" % ",".join(n.name for n in nodes))
    lock = threading.Lock()
    records = []  # [node, t_sent, t_done or None, status or None]
    t_kill_box = []
    seq = [0]

    def one(node, rec, n):
        gen, tok = node.gen, node.token
        try:
            st, b = call(node.port, "PUT", "/v1/names/fo-%s-%d" % (node.name, n),
                         {"value": {"n": n}}, {"X-Session-Token": tok}, timeout=15)
        except (OSError, http.client.HTTPException):
            st, b = -1, None
        t = time.monotonic()
        with lock:
            rec[2], rec[3] = t, st
        err = b.get("error") if isinstance(b, dict) else None
        if st in (403, 404) and err in ("bad_token", "session_not_found"):
            node.new_session(gen)

    threads = []
    t_start = time.monotonic()
    deadline_kill = t_start + a.before
    resumed_at = None
    stop_at = None
    killed = None
    watcher_result = {}

    def watch_leader(killed_index):
        others = [(i, u) for i, u in members if i != killed_index]
        end = time.monotonic() + a.after_max
        while time.monotonic() < end:
            ld = find_leader(others)
            if ld:
                watcher_result["t"] = time.monotonic()
                watcher_result["leader"] = ld[0]
                return
            time.sleep(0.05)

    k = 0
    nxt = time.monotonic()
    while True:
        now = time.monotonic()
        if killed is None and now >= deadline_kill:
            with lock:
                acked = sum(1 for r in records if r[3] == 201)
            if acked == 0:
                say("PROBLEM: no write was acknowledged in the %.0f s before the kill" % a.before)
                break
            ld = find_leader(members)
            if not ld:
                say("PROBLEM: no etcd member says it is the leader")
                break
            idx, url = ld
            pid = int(state.get("ETCD_PID_%d" % idx, "0"))
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                argv = []
            want = ("--data-dir=%s/" % state.get("ETCD_DIR", "?")).encode()
            if not any(x.startswith(want) and x.endswith(b"/m%d" % idx) for x in argv):
                say("PROBLEM: pid %d is not etcd member m%d of %s" % (pid, idx, state.get("ETCD_DIR")))
                break
            with lock:
                t_kill = time.monotonic()
                t_kill_box.append(t_kill)
            os.kill(pid, signal.SIGKILL)
            killed = idx
            res["leader"] = "m%d" % idx
            res["leader_url"] = url
            say("kill -9 etcd leader m%d (pid %d, %s) with writes going on through %s"
                % (idx, pid, url, ",".join(n.name for n in nodes)))
            w = threading.Thread(target=watch_leader, args=(idx,), daemon=True)
            w.start()
        if killed is not None and resumed_at is None:
            with lock:
                done = {r[0].port for r in records if r[3] == 201 and r[1] >= t_kill}
            if len(done) == len(nodes):
                resumed_at = now
                stop_at = now + a.settle
        if stop_at is not None and now >= stop_at:
            break
        if killed is not None and now >= t_kill + a.after_max:
            say("PROBLEM: writes did not resume on every node within %.0f s of the kill" % a.after_max)
            break
        node = nodes[k % len(nodes)]
        k += 1
        seq[0] += 1
        rec = [node, time.monotonic(), None, None]
        with lock:
            records.append(rec)
        th = threading.Thread(target=one, args=(node, rec, seq[0]), daemon=True)
        th.start()
        threads.append(th)
        nxt += a.interval
        d = nxt - time.monotonic()
        if d > 0:
            time.sleep(d)
        else:
            nxt = time.monotonic()

    t_stop = time.monotonic()
    end = t_stop + a.inflight_wait
    for th in threads:
        th.join(max(0.0, end - time.monotonic()))
    say("stream of %.1f s; the writes still out then ended within %.1f s"
        % (t_stop - t_start, time.monotonic() - t_stop))
    with lock:
        recs = [list(r) for r in records]
    res["sent"] = len(recs)
    res["acked"] = sum(1 for r in recs if r[3] == 201)
    codes = collections.Counter(r[3] for r in recs if r[3] != 201)
    for c, n in sorted(codes.items(), key=lambda x: (x[0] is None, x[0] or 0)):
        res["status_%s" % ("unanswered" if c is None else ("conn_error" if c == -1 else c))] = n
    res["sessions_lost"] = sum(n.lost for n in nodes)
    if not t_kill_box:
        report()
        return 1
    t_kill = t_kill_box[0]
    ms = lambda t: "%.0f" % ((t - t_kill) * 1000)  # noqa: E731
    before = [r[2] for r in recs if r[3] == 201 and r[2] <= t_kill]
    after_sent = [r[2] for r in recs if r[3] == 201 and r[1] >= t_kill]
    after_any = [r[2] for r in recs if r[3] == 201 and r[2] > t_kill]
    if before:
        res["last_ack_ms"] = ms(max(before))
    if after_any:
        res["first_any_ack_ms"] = ms(min(after_any))
    for n in nodes:
        x = [r[2] for r in recs if r[3] == 201 and r[1] >= t_kill and r[0] is n]
        res["first_ack_ms_%d" % n.port] = ms(min(x)) if x else "none"
    if "t" in watcher_result:
        res["new_leader_ms"] = ms(watcher_result["t"])
        res["new_leader"] = "m%d" % watcher_result["leader"]
    inflight = [r for r in recs if r[1] < t_kill and (r[2] is None or r[2] > t_kill)]
    res["inflight_at_kill"] = len(inflight)
    oc = collections.Counter("unanswered" if r[3] is None else str(r[3]) for r in inflight)
    res["inflight_outcomes"] = ",".join("%s:%d" % kv for kv in sorted(oc.items())) or "-"
    ended = [r[2] for r in inflight if r[2] is not None]
    if ended:
        res["inflight_max_ms"] = ms(max(ended))
    # Writes sent after every node had resumed that still failed: a second
    # pause (e.g. a request that went to the old leader timing out later).
    if resumed_at is not None:
        late = [r for r in recs if r[1] >= resumed_at and r[3] != 201]
        res["late_failures"] = len(late)
        res["late_sent"] = sum(1 for r in recs if r[1] >= resumed_at)
        if late:
            res["late_first_ms"] = ms(min(r[1] for r in late))
            res["late_last_ms"] = ms(max(r[1] for r in late))
            lc = collections.Counter("unanswered" if r[3] is None else str(r[3]) for r in late)
            res["late_outcomes"] = ",".join("%s:%d" % kv for kv in sorted(lc.items()))
    if before and after_sent and resumed_at is not None:
        res["first_ack_ms"] = ms(min(after_sent))
        res["gap_ms"] = "%.0f" % ((min(after_sent) - max(before)) * 1000)
        res["measured"] = 1
    report()
    say("done")
    return 0 if res["measured"] else 1


if __name__ == "__main__":
    sys.exit(main())
