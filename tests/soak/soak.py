#!/usr/bin/env python3
"""rollcall soak test: hundreds of sessions at once for a bounded time, then
checks of the end state. Python 3 standard library only (what `make test`
installs on Debian 12); what `make soak` runs.

Usage: tests/soak/soak.py path/to/rollcall [--seconds S] [--sessions N]
                          [--rate R] [--seed X]

  --seconds S   how long the load runs (default $SOAK_SECONDS, else 60)
  --sessions N  sessions alive at once, about (default 300)
  --rate R      sends per second, all senders together, at most (default 600)
  --max-queue Q passed to the server (default: its own, 10000); a small one
                makes mailboxes fill, so 429 mailbox_full and "full" lists
                come into play

It starts the server on 127.0.0.1:0 (reading "rollcall: listening on
127.0.0.1:PORT" from its stderr), with --event-buffer 4096 so that the event
ring is full before the memory baseline is taken. Then, for S seconds:

  receivers   stable sessions that long-poll their mailboxes (wait=5) and
              acknowledge with after=<last seq handled>; one in five keeps its
              lease by the long-poll alone (ttl 3, no heartbeat); now and then
              one drops its connection in the middle of a long-poll, or does
              not acknowledge a batch, so messages come again and are
              deduplicated by seq. The first few also answer calls (group
              soak/calls).
  quiet       stable sessions that never long-poll: their heartbeater drains
              their mailboxes every 5 s, so messages wait in them at the end.
  heartbeaters  threads that heartbeat the stable sessions and make them
              register, update and release churn names, props and groups,
              checking the exact answers (201/200/204/404) and, now and then,
              that GET /v1/sessions/{id} holds exactly what was registered.
  mortals     one thread per slot, each making sessions one after another
              (ttl 1-5) that register names, props and groups, heartbeat a
              while, and then either stop heartbeating and must expire (seen
              alive before the deadline, gone within 1 s after it, entries
              gone), or delete themselves, or stall and are replaced by a new
              session that first gets 409 name_taken (owner = the old one)
              and, once the old one expired, 201 for the same names.
  senders     send to names, sessions, props, groups with and without pick
              (random, round_robin, hash), with and without a token; every
              body carries a unique id; 202's "delivered" is recorded.
  callers     POST /v1/call to group soak/calls (pick), timeout 10 s; a few
              mortal sessions join that group and never answer, so
              503 receiver_gone is an expected answer; 200 must carry the
              echo of the call's id from the member that answered.

At the end (load stopped, mortals finished, receivers drained with a last
receive that acknowledges everything) it checks:

  1. registry: /v1/sessions lists exactly the sessions expected alive; no
     name, prop or group entry belongs to a session that is not alive; each
     alive session holds exactly what it registered (GET /v1/sessions/{id}).
  2. messages: for every session alive at the end, the seqs received are
     exactly 1..last_seq, each once, with distinct message ids (no loss, no
     duplicate); every message sent to it by session id or by its stable
     name, and every broadcast to a prop or group it held from the start,
     is among them; no message id was received by more sessions than the
     202 said it was delivered to; every message received was sent, and its
     "to" and "from" are what the sender gave.
  3. stats: /v1/stats sessions, names, props, group_members and
     queued_messages equal what the listings show (same event index before
     and after), calls pending is 0, answered and receiver_gone match the
     callers' counts, expirations match the sessions seen to expire; after
     the quiet mailboxes are drained queued_messages is 0, and after every
     session is deleted all counts are 0 and the listings are empty.
  4. memory: VmRSS after every session was deleted is at most the warm-up
     level plus max(20 % of it, 10 MiB). The warm-up level is VmRSS with the
     load running, at the end of the warm-up (the first 20 % of the run,
     10 s at most, 3 s at least).
  5. the server is still healthy (GET /healthz) and exits 0 on SIGTERM.

Plus checks that hold all along: every answer is one the contract allows,
no session expired early nor more than 1 s late, every long-poll answer
starts at after+1 with consecutive seqs, every call got its own echo.

It prints the operations done (by kind, and rates) and each check with
PASS or FAIL, and exits 1 if any check failed (2 on bad usage). Everything
runs on 127.0.0.1; the whole run is capped at S + 60 seconds; the server
started here is stopped on every path.
"""

import argparse
import collections
import http.client
import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

HOST = "127.0.0.1"
LISTEN_RE = re.compile(r"rollcall: listening on 127\.0\.0\.1:(\d+)")
MIB = 1024 * 1024
now = time.monotonic

N_PROPS = 8          # stable props soak/p/0..7, held by every stable session
N_GROUPS = 6         # stable groups soak/g/0..5
CALL_GROUP = "soak/calls"
WAIT = 5             # long-poll seconds
EXPIRY_SLACK = 0.02  # ms rounding of the server's clock, seconds
HASH_KEYS = ["user-%d" % i for i in range(40)]


def qkey(key):
    """A key in a path: percent-encoded, '/' kept (it is part of the key)."""
    return urllib.parse.quote(key, safe="/")


def qarg(v):
    return urllib.parse.quote(str(v), safe="")


class TransportError(Exception):
    pass


class Resp:
    __slots__ = ("status", "obj", "headers", "t0", "t1", "raw")

    def __init__(self, status, obj, headers, t0, t1, raw):
        self.status, self.obj, self.headers = status, obj, headers
        self.t0, self.t1, self.raw = t0, t1, raw

    def err(self):
        return self.obj.get("error") if isinstance(self.obj, dict) else None

    def short(self):
        return "%d %s" % (self.status, self.raw[:200].decode("utf-8", "replace"))


# --------------------------------------------------------------------------
# Shared state


class Sess:
    """A session we created, with what it should hold and its mailbox ledger."""

    def __init__(self, sid, token, ttl, role, label):
        self.sid, self.token, self.ttl, self.role, self.label = sid, token, ttl, role, label
        self.names, self.props, self.groups = {}, {}, {}   # key -> value (expected)
        self.lock = threading.Lock()
        self.lb = 0.0      # server's lease deadline >= lb + ttl
        self.ub = 0.0      # server's lease deadline <= ub + ttl (unless a receive pends)
        self.ledger = {}   # seq -> (message id, to, from)
        self.after = 0     # highest seq acknowledged (sent as after=)
        self.final_last_seq = None
        self.redeliveries = 0
        self.ended = None  # None, "deleted", "expired"
        self.hb_every = 0.0
        self.last_hb = 0.0
        self.last_drain = 0.0

    def sign(self, r, ok=True, lb=None):
        with self.lock:
            if ok:
                self.lb = max(self.lb, r.t0 if lb is None else lb)
            self.ub = max(self.ub, r.t1)


class SendRec:
    __slots__ = ("mid", "kind", "to", "frm", "status", "delivered", "full", "t0", "stable")

    def __init__(self, mid, kind, to, frm, stable):
        self.mid, self.kind, self.to, self.frm, self.stable = mid, kind, to, frm, stable
        self.status = None
        self.delivered = None
        self.full = []
        self.t0 = now()


class Soak:
    def __init__(self, args):
        self.args = args
        self.port = None
        self.proc = None
        self.stop_load = threading.Event()
        self.drain = threading.Event()
        self.stop_all = threading.Event()
        self.vlock = threading.Lock()
        self.viol_count = collections.Counter()
        self.viol_examples = collections.defaultdict(list)
        self.notes = collections.Counter()
        self.counters = []
        self.clock = threading.Lock()
        self.sessions = {}          # sid -> Sess, every session ever created
        self.sent = {}              # message id -> SendRec
        self.calls = {}             # call id -> [status, error]
        self.call_outcomes = collections.Counter()
        self.mortal_pool = collections.deque(maxlen=400)  # (sid, [names])
        self.stable_names = []      # (name, sid)
        self.stable_sessions = []   # receivers + quiet
        self.responders = set()
        self.prop_holders = collections.defaultdict(set)   # stable prop -> sids
        self.group_holders = collections.defaultdict(set)  # stable group -> sids
        self.expired_seen = set()
        self.stderr_lines = collections.deque(maxlen=300)
        self.expiry_log_lines = 0
        self.rss = []               # (t, kB)

    def counter(self):
        c = collections.Counter()
        with self.clock:
            self.counters.append(c)
        return c

    def viol(self, kind, detail):
        with self.vlock:
            self.viol_count[kind] += 1
            if len(self.viol_examples[kind]) < 6:
                self.viol_examples[kind].append(detail)

    def note(self, kind, n=1):
        with self.vlock:
            self.notes[kind] += n

    def server_alive(self):
        return self.proc is not None and self.proc.poll() is None


# --------------------------------------------------------------------------
# HTTP


class Conn:
    """One keep-alive connection (http.client); answers parsed as JSON."""

    def __init__(self, soak, ops, timeout=30.0):
        self.soak, self.ops, self.timeout = soak, ops, timeout
        self.c = None
        self.used = 0.0

    def close(self):
        if self.c is not None:
            try:
                self.c.close()
            except Exception:
                pass
            self.c = None

    def _open(self):
        # The server closes connections idle for --idle-timeout (60 s); one
        # idle half of that is opened again rather than raced.
        if self.c is not None and now() - self.used > 30.0:
            self.close()
        self.used = now()
        if self.c is None:
            self.c = http.client.HTTPConnection(HOST, self.soak.port, timeout=self.timeout)

    def req(self, op, method, path, body=None, token=None):
        self._open()
        headers = {}
        data = None
        if token:
            headers["X-Session-Token"] = token
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        t0 = now()
        try:
            self.c.request(method, path, body=data, headers=headers)
            r = self.c.getresponse()
            raw = r.read()
            status, hdrs = r.status, r.headers
            if r.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            self.soak.viol("transport", "%s %s: %s: %s" % (method, path, type(e).__name__, e))
            raise TransportError("%s %s: %s" % (method, path, e))
        t1 = now()
        self.ops[op] += 1
        obj = None
        if raw:
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = None
        return Resp(status, obj, hdrs, t0, t1, raw)

    def abandon(self, method, path, token, hold):
        """Sends a request and closes the connection without reading the
        answer (a client that crashed in the middle of a long-poll)."""
        self._open()
        try:
            self.c.request(method, path, headers={"X-Session-Token": token})
            time.sleep(hold)
        except (OSError, http.client.HTTPException):
            pass
        self.close()
        self.ops["receive_abandoned"] += 1


def expect(soak, r, allowed, what):
    """allowed: {status: error code or None (any)}; records anything else."""
    if r.status in allowed:
        want = allowed[r.status]
        if want is None or r.err() == want or (isinstance(want, tuple) and r.err() in want):
            return True
    soak.viol("unexpected_answer", "%s -> %s" % (what, r.short()))
    return False


# --------------------------------------------------------------------------
# Session helpers


def create_session(soak, cl, ttl, role, label):
    try:
        r = cl.req("session_create", "POST", "/v1/sessions", {"ttl": ttl, "label": label})
    except TransportError:
        return None
    if not expect(soak, r, {201: None}, "POST /v1/sessions ttl=%d" % ttl):
        return None
    o = r.obj
    if not (isinstance(o, dict) and o.get("ttl") == ttl and isinstance(o.get("id"), str)
            and isinstance(o.get("token"), str)):
        soak.viol("unexpected_answer", "POST /v1/sessions ttl=%d -> %s" % (ttl, r.short()))
        return None
    s = Sess(o["id"], o["token"], ttl, role, label)
    s.sign(r)
    soak.sessions[s.sid] = s
    return s


def premature(soak, s, r, what):
    """A 404 session_not_found for s: a violation when the request was
    answered before the earliest deadline the lease allows; else the client
    lagged (noted). Marks s expired either way."""
    if r.t1 < s.lb + s.ttl:
        soak.viol("lease_early", "%s: session %s (ttl %d) gone %.3f s before its earliest "
                  "deadline -> %s" % (what, s.sid, s.ttl, s.lb + s.ttl - r.t1, r.short()))
    else:
        soak.note("client_lag_expiry")
        soak.note("client_lag_expiry_" + s.role)
    mark_ended(soak, s, "expired")


def mark_ended(soak, s, how):
    if s.ended is None:
        s.ended = how
        if how == "expired":
            soak.expired_seen.add(s.sid)


def heartbeat(soak, cl, s, what="heartbeat"):
    """True while alive; False when the session is gone (handled)."""
    r = cl.req("heartbeat", "POST", "/v1/sessions/%s/heartbeat" % s.sid, None, s.token)
    if r.status == 200:
        s.sign(r)
        s.last_hb = r.t1
        if not (isinstance(r.obj, dict) and r.obj.get("id") == s.sid and r.obj.get("ttl") == s.ttl):
            soak.viol("unexpected_answer", "heartbeat %s -> %s" % (s.sid, r.short()))
        return True
    if r.status == 404 and r.err() == "session_not_found":
        premature(soak, s, r, what)
        return False
    expect(soak, r, {}, "POST /v1/sessions/%s/heartbeat" % s.sid)
    s.sign(r, ok=False)
    return True


def put_entry(soak, cl, s, kind, key, value, expect_new, op=None):
    """PUT a name, prop or group for s; checks 201 (new) or 200 (held)."""
    base = {"names": "/v1/names/", "props": "/v1/props/", "groups": "/v1/groups/"}[kind]
    r = cl.req(op or ("%s_put" % kind[:-1]), "PUT", base + qkey(key), {"value": value}, s.token)
    want = 201 if expect_new else 200
    if r.status == 404 and r.err() == "session_not_found":
        premature(soak, s, r, "PUT %s%s" % (base, key))
        return None
    if r.status == 403 and r.err() == "bad_token":
        # the token is unknown: the session is gone (expired)
        premature(soak, s, r, "PUT %s%s" % (base, key))
        return None
    s.sign(r, ok=r.status < 300)
    if r.status != want:
        soak.viol("unexpected_answer", "PUT %s%s by %s (expected %d) -> %s"
                  % (base, key, s.sid, want, r.short()))
        return r
    o = r.obj if isinstance(r.obj, dict) else {}
    keyf = "group" if kind == "groups" else "key"
    if o.get(keyf) != key or o.get("session") != s.sid or o.get("value") != value:
        soak.viol("unexpected_answer", "PUT %s%s by %s -> %s" % (base, key, s.sid, r.short()))
    getattr(s, kind)[key] = value
    return r


def del_entry(soak, cl, s, kind, key):
    base = {"names": "/v1/names/", "props": "/v1/props/", "groups": "/v1/groups/"}[kind]
    held = key in getattr(s, kind)
    r = cl.req("%s_delete" % kind[:-1], "DELETE", base + qkey(key), None, s.token)
    if r.status in (403, 404) and r.err() in ("session_not_found", "bad_token"):
        premature(soak, s, r, "DELETE %s%s" % (base, key))
        return None
    s.sign(r, ok=r.status < 300)
    if held:
        expect(soak, r, {204: None}, "DELETE %s%s by %s (held)" % (base, key, s.sid))
    else:
        code = "name_not_found" if kind == "names" else "not_held"
        expect(soak, r, {404: code}, "DELETE %s%s by %s (not held)" % (base, key, s.sid))
    getattr(s, kind).pop(key, None)
    return r


def check_held(soak, cl, s):
    """GET /v1/sessions/{id}: held must be exactly what s registered."""
    r = cl.req("session_get", "GET", "/v1/sessions/%s" % s.sid)
    if r.status == 404:
        return r
    if not expect(soak, r, {200: None}, "GET /v1/sessions/%s" % s.sid):
        return r
    held = r.obj.get("held", {}) if isinstance(r.obj, dict) else {}
    for kind in ("names", "props", "groups"):
        want = sorted(getattr(s, kind), key=lambda k: k.encode("utf-8"))
        if held.get(kind) != want:
            soak.viol("registry_inline", "GET /v1/sessions/%s held.%s = %s, registered %s"
                      % (s.sid, kind, json.dumps(held.get(kind))[:300], json.dumps(want)[:300]))
    return r


# --------------------------------------------------------------------------
# Mailboxes


def msg_id(body):
    if isinstance(body, dict):
        return body.get("id") or body.get("call")
    return None


def handle_batch(soak, s, after, r, what):
    """Records a receive answer in s's ledger; returns the new messages.
    Every answer must start at after+1 with consecutive seqs."""
    o = r.obj if isinstance(r.obj, dict) else {}
    msgs = o.get("messages")
    last = o.get("last_seq")
    if not isinstance(msgs, list) or not isinstance(last, int):
        soak.viol("unexpected_answer", "%s -> %s" % (what, r.short()))
        return []
    new = []
    for i, m in enumerate(msgs):
        seq = m.get("seq")
        if seq != after + 1 + i:
            soak.viol("mailbox_order", "%s (session %s, after=%d): message %d has seq %s, "
                      "expected %d; seqs %s" % (what, s.sid, after, i, seq, after + 1 + i,
                                                [x.get("seq") for x in msgs][:20]))
        if not isinstance(seq, int) or seq > last:
            soak.viol("mailbox_order", "%s: seq %s > last_seq %s" % (what, seq, last))
            continue
        mid = msg_id(m.get("body"))
        rec = (mid, m.get("to"), m.get("from"))
        old = s.ledger.get(seq)
        if old is not None:
            s.redeliveries += 1
            if old[0] != mid:
                soak.viol("mailbox_order", "%s: session %s seq %d was message %s, now %s"
                          % (what, s.sid, seq, old[0], mid))
            continue
        s.ledger[seq] = rec
        new.append(m)
    if s.ledger and max(s.ledger) > last:
        soak.viol("mailbox_order", "%s: last_seq %d below a seq already received (%d)"
                  % (what, last, max(s.ledger)))
    return new


def drain_mailbox(soak, cl, s, op="receive_drain"):
    """Receives with wait=0 until nothing is left, acknowledging all.
    Returns the last answer's last_seq, or None when the session is gone."""
    while True:
        after = s.after
        r = cl.req(op, "GET", "/v1/sessions/%s/messages?after=%d&wait=0&max=1000"
                   % (s.sid, after), None, s.token)
        if r.status == 404 and r.err() == "session_not_found":
            premature(soak, s, r, "receive")
            return None
        if not expect(soak, r, {200: None}, "GET /v1/sessions/%s/messages" % s.sid):
            return None
        s.sign(r)
        handle_batch(soak, s, after, r, "drain")
        if s.ledger:
            s.after = max(s.after, max(s.ledger))
        if not r.obj["messages"]:
            return r.obj["last_seq"]


# --------------------------------------------------------------------------
# Threads


def receiver_loop(soak, s, rng):
    ops = soak.counter()
    cl = Conn(soak, ops, timeout=WAIT + 20)
    try:
        while not soak.drain.is_set() and s.ended is None:
            after = s.after
            path = "/v1/sessions/%s/messages?after=%d&wait=%d&max=100" % (s.sid, after, WAIT)
            if rng.random() < 0.01:
                cl.abandon("GET", path, s.token, rng.uniform(0.05, 0.5))
                continue
            try:
                r = cl.req("receive", "GET", path, None, s.token)
            except TransportError:
                time.sleep(0.2)
                continue
            if r.status == 404 and r.err() == "session_not_found":
                premature(soak, s, r, "receive")
                return
            if not expect(soak, r, {200: None}, "GET %s" % path):
                time.sleep(0.2)
                continue
            empty = not r.obj.get("messages")
            # The lease's countdown restarts when the receive ends: at least
            # wait seconds after it was sent when it timed out empty.
            s.sign(r, lb=r.t0 + WAIT if empty and r.t1 >= r.t0 + WAIT else r.t0)
            new = handle_batch(soak, s, after, r, "receive")
            for m in new:
                if m.get("reply_to"):
                    answer_call(soak, cl, s, m)
            if s.ledger and rng.random() >= 0.05:   # 5 %: no acknowledgement
                s.after = max(s.after, max(s.ledger))
        if s.ended is None:
            s.final_last_seq = drain_mailbox(soak, cl, s)
    except TransportError:
        pass
    finally:
        cl.close()


def answer_call(soak, cl, s, m):
    cid = msg_id(m.get("body"))
    r = cl.req("reply", "POST", "/v1/replies/%s" % m["reply_to"],
               {"body": {"echo": cid, "by": s.sid}}, s.token)
    s.sign(r, ok=r.status < 300)
    if r.status != 204:
        soak.viol("calls", "POST /v1/replies/%s (call %s) by %s -> %s"
                  % (m["reply_to"], cid, s.sid, r.short()))


CHURN_NAMES = 4
CHURN_PROPS = ["soak/cp/é%d" % i for i in range(10)]
CHURN_GROUPS = ["soak/cg/%d" % i for i in range(6)]


def churn(soak, cl, s, rng):
    """One registry change by s whose exact answer is known (only this
    thread changes what s holds)."""
    x = rng.random()
    if x < 0.22:
        key = "soak/c/%s/%d" % (s.sid, rng.randrange(CHURN_NAMES))
        if key in s.names and rng.random() < 0.5:
            del_entry(soak, cl, s, "names", key)
        else:
            put_entry(soak, cl, s, "names", key, {"v": rng.randrange(1000)}, key not in s.names)
    elif x < 0.44:
        key = rng.choice(CHURN_PROPS)
        if key in s.props and rng.random() < 0.5:
            del_entry(soak, cl, s, "props", key)
        else:
            put_entry(soak, cl, s, "props", key, rng.randrange(1000), key not in s.props)
    elif x < 0.66:
        key = rng.choice(CHURN_GROUPS)
        if key in s.groups and rng.random() < 0.5:
            del_entry(soak, cl, s, "groups", key)
        else:
            put_entry(soak, cl, s, "groups", key, {"addr": "10.0.0.%d" % rng.randrange(256)},
                      key not in s.groups)
    elif x < 0.80:
        # replace the value of the session's stable name
        stable = [k for k in s.names if not k.startswith("soak/c/")]
        if stable:
            put_entry(soak, cl, s, "names", stable[0], {"v": rng.randrange(1000)}, False,
                      op="name_update")
    elif x < 0.90:
        # not held: exact 404s
        key = "soak/c/%s/absent" % s.sid
        del_entry(soak, cl, s, "names", key)
    else:
        check_held(soak, cl, s)


def heartbeater_loop(soak, mine, rng):
    ops = soak.counter()
    cl = Conn(soak, ops)
    churnable = [s for s in mine if s.role in ("recv", "recv_only", "quiet")]
    try:
        while not soak.stop_all.is_set():
            t = now()
            draining = soak.drain.is_set()
            for s in mine:
                if s.ended:
                    continue
                if s.role == "recv_only" and not draining:
                    continue   # its long-poll keeps it
                every = min(s.hb_every, s.ttl / 3.0) if draining else s.hb_every
                if t - s.last_hb >= every:
                    heartbeat(soak, cl, s)
                if (s.role == "quiet" and not soak.stop_load.is_set()
                        and t - s.last_drain >= 5.0):
                    s.last_drain = t
                    drain_mailbox(soak, cl, s, op="receive_quiet")
            if churnable and not soak.stop_load.is_set():
                s = rng.choice(churnable)
                if not s.ended:
                    churn(soak, cl, s, rng)
                time.sleep(rng.uniform(0.01, 0.05))
            else:
                time.sleep(0.1)
    except TransportError:
        pass
    finally:
        cl.close()


def sleep_keeping(soak, cl, until, keep):
    """Sleeps until `until`, heartbeating the sessions in keep at ttl/3."""
    while True:
        t = now()
        if t >= until:
            return
        nxt = until
        for k in keep:
            if k.ended:
                continue
            due = k.last_hb + k.ttl / 3.0
            if due <= t:
                heartbeat(soak, cl, k)
                due = k.last_hb + k.ttl / 3.0
            nxt = min(nxt, due)
        time.sleep(max(0.0, min(nxt, until) - now()))


def verify_gone(soak, cl, s, what):
    """After s ended: GET of the session is 404, and none of its entries
    is still held by it."""
    r = cl.req("verify", "GET", "/v1/sessions/%s" % s.sid)
    if r.status == 200:
        return r
    expect(soak, r, {404: "session_not_found"}, "GET /v1/sessions/%s (%s)" % (s.sid, what))
    for key in s.names:
        r2 = cl.req("verify", "GET", "/v1/names/" + qkey(key))
        if r2.status == 200 and isinstance(r2.obj, dict) and r2.obj.get("session") == s.sid:
            soak.viol("registry_inline", "%s: name %s still held by ended session %s"
                      % (what, key, s.sid))
        elif r2.status not in (200, 404):
            expect(soak, r2, {}, "GET /v1/names/%s" % key)
    for kind, path, field in (("props", "/v1/props/", "holders"), ("groups", "/v1/groups/", "members")):
        for key in getattr(s, kind):
            r2 = cl.req("verify", "GET", path + qkey(key))
            if not expect(soak, r2, {200: None}, "GET %s%s" % (path, key)):
                continue
            if any(h.get("session") == s.sid for h in r2.obj.get(field, [])):
                soak.viol("registry_inline", "%s: %s%s still lists ended session %s"
                          % (what, path, key, s.sid))
    return r


def verify_expiry(soak, cl, s, keep, rng):
    """s has stopped heartbeating. Alive before its earliest deadline, gone
    within 1 s after its latest one, and then its entries are gone too."""
    early = s.lb + s.ttl
    sleep_keeping(soak, cl, early - rng.uniform(0.15, 0.5), keep)
    r = cl.req("verify", "GET", "/v1/sessions/%s" % s.sid)
    if r.status == 404 and r.err() == "session_not_found":
        if r.t1 < early:
            soak.viol("lease_early", "session %s (ttl %d) gone %.3f s before its earliest deadline"
                      % (s.sid, s.ttl, early - r.t1))
        else:
            soak.note("alive_check_too_late")   # this client lagged: no verdict
    else:
        expect(soak, r, {200: None}, "GET /v1/sessions/%s before its deadline" % s.sid)
    late = s.ub + s.ttl + 1.0 + EXPIRY_SLACK
    sleep_keeping(soak, cl, late, keep)
    r = verify_gone(soak, cl, s, "expiry")
    if r.status == 200:
        soak.viol("lease_late", "session %s (ttl %d) still alive %.3f s after its latest deadline "
                  "(GET sent %.3f s after it) -> %s" % (s.sid, s.ttl, r.t1 - (s.ub + s.ttl),
                                                        r.t0 - (s.ub + s.ttl), r.short()))
        # leave it to the end-of-slot cleanup
        return False
    mark_ended(soak, s, "expired")
    soak.note("verified_expiries")
    return True


def end_session(soak, cl, s, what):
    """DELETE s if it is still ours to end (204, or 404 when it expired)."""
    if s.ended is not None or not soak.server_alive():
        return
    r = cl.req("session_delete", "DELETE", "/v1/sessions/%s" % s.sid, None, s.token)
    if r.status == 404 and r.err() == "session_not_found":
        premature(soak, s, r, what)
    elif expect(soak, r, {204: None}, "DELETE /v1/sessions/%s (%s)" % (s.sid, what)):
        mark_ended(soak, s, "deleted")


def mortal_loop(soak, slot, rng):
    ops = soak.counter()
    cl = Conn(soak, ops)
    gen = 0
    carry = None      # (names, props, groups) a replacement registers again
    nxt = None        # the replacement session, already created
    live = []
    try:
        while not soak.stop_load.is_set():
            gen += 1
            fate = rng.choices(("expire", "delete", "replace"), (35, 30, 35))[0]
            if nxt is not None:
                s, nxt = nxt, None
            else:
                ttl = rng.randint(1, 3) if fate != "delete" else rng.randint(2, 5)
                s = create_session(soak, cl, ttl, "mortal", "soak-m%d-%d" % (slot, gen))
                if s is None:
                    time.sleep(0.5)
                    continue
            live = [s]
            if carry is None:
                names = {"soak/m/%d/%d/%d" % (slot, gen, j): {"slot": slot, "gen": gen}
                         for j in range(rng.randint(1, 3))}
                props = {"soak/p/%d" % rng.randrange(N_PROPS): gen}
                if rng.random() < 0.5:
                    props["soak/mp/%d" % rng.randrange(10)] = gen
                groups = {"soak/g/%d" % rng.randrange(N_GROUPS): {"slot": slot}}
                if rng.random() < 0.5:
                    groups["soak/mg/%d" % rng.randrange(10)] = {"slot": slot}
                if rng.random() < 0.006:
                    groups[CALL_GROUP] = {"flaky": True}   # joins, never answers
                carry = (names, props, groups)
            names, props, groups = carry
            carry = None
            ok = True
            for kind, entries in (("names", names), ("props", props), ("groups", groups)):
                for key, value in entries.items():
                    if s.ended or put_entry(soak, cl, s, kind, key, value, True) is None:
                        ok = False
                        break
            if not ok or s.ended:
                continue
            s.last_hb = now()
            soak.mortal_pool.append((s.sid, list(names)))
            # live a while
            t_end = now() + rng.uniform(0.5, 4.0)
            while now() < t_end and not soak.stop_load.is_set() and not s.ended:
                time.sleep(max(0.0, min(t_end, s.last_hb + s.ttl / 3.0) - now()))
                if now() >= t_end or soak.stop_load.is_set():
                    break
                x = rng.random()
                if x < 0.15:
                    drain_mailbox(soak, cl, s, op="receive_mortal")
                    s.last_hb = now()
                elif x < 0.25 and names:
                    key = rng.choice(list(names))
                    if put_entry(soak, cl, s, "names", key, {"upd": gen}, False,
                                 op="name_update") is not None:
                        s.last_hb = now()
                else:
                    heartbeat(soak, cl, s)
            if s.ended:
                continue
            if soak.stop_load.is_set():
                break
            if fate == "delete":
                r = cl.req("session_delete", "DELETE", "/v1/sessions/%s" % s.sid, None, s.token)
                if r.status == 404 and r.err() == "session_not_found":
                    premature(soak, s, r, "DELETE session")
                    continue
                if expect(soak, r, {204: None}, "DELETE /v1/sessions/%s" % s.sid):
                    mark_ended(soak, s, "deleted")
                    r = verify_gone(soak, cl, s, "delete")
                    if r.status == 200:
                        soak.viol("registry_inline", "GET /v1/sessions/%s after its DELETE 204 -> %s"
                                  % (s.sid, r.short()))
                    hb = cl.req("heartbeat", "POST", "/v1/sessions/%s/heartbeat" % s.sid, None, s.token)
                    expect(soak, hb, {404: "session_not_found"}, "heartbeat after DELETE")
                    soak.note("verified_deletes")
            elif fate == "expire":
                if not verify_expiry(soak, cl, s, [], rng):
                    end_session(soak, cl, s, "late expiry")
            else:
                # replaced: a new session comes while the old one stalls
                ttl2 = rng.randint(1, 3)
                s2 = create_session(soak, cl, ttl2, "mortal", "soak-m%d-%d-new" % (slot, gen))
                if s2 is None:
                    continue
                live = [s, s2]
                s2.last_hb = now()
                key = next(iter(names))
                r = cl.req("name_put", "PUT", "/v1/names/" + qkey(key), {"value": 1}, s2.token)
                s2.sign(r)
                if r.status == 409:
                    if not (isinstance(r.obj, dict) and r.obj.get("error") == "name_taken"
                            and r.obj.get("owner") == s.sid):
                        soak.viol("unexpected_answer", "PUT /v1/names/%s by the replacement -> %s "
                                  "(owner should be %s)" % (key, r.short(), s.sid))
                    else:
                        soak.note("verified_takeover_409")
                elif r.status == 201:
                    if r.t1 < s.lb + s.ttl:
                        soak.viol("lease_early", "name %s of live session %s taken by %s -> %s"
                                  % (key, s.sid, s2.sid, r.short()))
                    s2.names[key] = 1
                else:
                    expect(soak, r, {}, "PUT /v1/names/%s by the replacement" % key)
                if not verify_expiry(soak, cl, s, [s2], rng):
                    end_session(soak, cl, s, "late expiry")
                    end_session(soak, cl, s2, "replacement of a late expiry")
                    continue
                hb = cl.req("heartbeat", "POST", "/v1/sessions/%s/heartbeat" % s.sid, None, s.token)
                expect(soak, hb, {404: "session_not_found"}, "heartbeat of an expired session")
                if s2.ended:
                    continue
                if s2.names:   # it got the name early (client lag): start afresh
                    end_session(soak, cl, s2, "replacement")
                    continue
                carry = (names, props, groups)
                nxt = s2
                soak.note("replacements")
        # stop: delete what is left
    except TransportError:
        pass
    finally:
        for s in live:
            try:
                end_session(soak, cl, s, "end of the load")
            except TransportError:
                pass
        cl.close()


def choose_target(soak, rng):
    """(kind, to, stable): stable means every receipt can be predicted."""
    x = rng.random()
    if x < 0.18:
        name, _ = rng.choice(soak.stable_names)
        return "name", {"name": name}, True
    if x < 0.30:
        try:
            sid, names = soak.mortal_pool[rng.randrange(len(soak.mortal_pool))]
        except (IndexError, ValueError):
            return "name", {"name": rng.choice(soak.stable_names)[0]}, True
        return "name_mortal", {"name": rng.choice(names)}, False
    if x < 0.40:
        return "session", {"session": rng.choice(soak.stable_sessions).sid}, True
    if x < 0.48:
        try:
            sid, _ = soak.mortal_pool[rng.randrange(len(soak.mortal_pool))]
        except (IndexError, ValueError):
            sid = rng.choice(soak.stable_sessions).sid
        return "session_mortal", {"session": sid}, False
    if x < 0.62:
        return "prop", {"prop": "soak/p/%d" % rng.randrange(N_PROPS)}, True
    if x < 0.68:
        return "prop_churn", {"prop": rng.choice(CHURN_PROPS + ["soak/mp/%d" % rng.randrange(10)])}, False
    if x < 0.80:
        return "group", {"group": "soak/g/%d" % rng.randrange(N_GROUPS)}, True
    if x < 0.84:
        return "group_churn", {"group": rng.choice(CHURN_GROUPS + ["soak/mg/%d" % rng.randrange(10)])}, False
    pick = rng.choice(("random", "round_robin", "hash"))
    to = {"group": "soak/g/%d" % rng.randrange(N_GROUPS), "pick": pick}
    if pick == "hash":
        to["hash_key"] = rng.choice(HASH_KEYS)
    if x < 0.96:
        return "group_pick", to, True
    to["group"] = rng.choice(CHURN_GROUPS)
    return "group_pick_churn", to, False


def sender_loop(soak, k, me, rng, per_thread_rate):
    ops = soak.counter()
    cl = Conn(soak, ops)
    n = 0
    interval = 1.0 / per_thread_rate
    t_next = now()
    try:
        while not soak.stop_load.is_set():
            n += 1
            mid = "s%d-%d" % (k, n)
            kind, to, stable = choose_target(soak, rng)
            tok = me.token if rng.random() < 0.5 else None
            body = {"id": mid}
            if rng.random() < 0.05:
                body["pad"] = "x" * rng.randrange(100, 4000)
            rec = SendRec(mid, kind, to, me.sid if tok else None, stable)
            soak.sent[mid] = rec
            r = cl.req("send_" + kind, "POST", "/v1/send", {"to": to, "body": body}, tok)
            if tok:
                me.sign(r)
            rec.status = r.status
            o = r.obj if isinstance(r.obj, dict) else {}
            if r.status == 202:
                rec.delivered = o.get("delivered")
                rec.full = o.get("full") or []
                single = kind.startswith("name") or kind.startswith("session") or "pick" in kind
                if not isinstance(rec.delivered, int) or (single and rec.delivered != 1) \
                        or (single and "full" in o) or (not single and not isinstance(o.get("full"), list)):
                    soak.viol("unexpected_answer", "POST /v1/send to %s -> %s" % (json.dumps(to), r.short()))
                if rec.full:
                    soak.note("broadcast_full", len(rec.full))
            elif stable:
                if expect(soak, r, {429: "mailbox_full"}, "POST /v1/send to %s (stable target)"
                          % json.dumps(to)):
                    soak.note("send_%s_%s" % (kind, r.err()))
            else:
                allowed = {"name_mortal": {404: "name_not_found", 429: "mailbox_full"},
                           "session_mortal": {404: "session_not_found", 429: "mailbox_full"},
                           "group_pick_churn": {404: "group_empty", 429: "mailbox_full"}}.get(kind, {})
                if expect(soak, r, allowed, "POST /v1/send to %s" % json.dumps(to)):
                    soak.note("send_%s_%s" % (kind, r.err()))
            t_next += interval
            d = t_next - now()
            if d > 0:
                time.sleep(d)
            elif d < -1.0:
                t_next = now()
    except TransportError:
        pass
    finally:
        cl.close()


def caller_loop(soak, k, me, rng):
    ops = soak.counter()
    cl = Conn(soak, ops, timeout=30)
    n = 0
    try:
        while not soak.stop_load.is_set():
            n += 1
            cid = "c%d-%d" % (k, n)
            pick = rng.choice(("round_robin", "random"))
            tok = me.token if rng.random() < 0.5 else None
            soak.calls[cid] = None
            r = cl.req("call", "POST", "/v1/call",
                       {"to": {"group": CALL_GROUP, "pick": pick}, "body": {"call": cid},
                        "timeout_ms": 10000}, tok)
            if tok:
                me.sign(r)
            soak.calls[cid] = (r.status, r.err())
            if r.status == 200:
                o = r.obj if isinstance(r.obj, dict) else {}
                b = o.get("body") if isinstance(o.get("body"), dict) else {}
                if b.get("echo") != cid or o.get("from") != b.get("by") or o.get("from") not in soak.responders:
                    soak.viol("calls", "POST /v1/call %s -> %s" % (cid, r.short()))
                soak.call_outcomes["answered"] += 1
            elif r.status == 503 and r.err() == "receiver_gone":
                soak.call_outcomes["receiver_gone"] += 1
            elif r.status == 429 and r.err() == "mailbox_full":   # with a small --max-queue
                soak.call_outcomes["mailbox_full"] += 1
            else:
                soak.call_outcomes[str(r.status) + " " + str(r.err())] += 1
                soak.viol("calls", "POST /v1/call %s (pick %s) -> %s" % (cid, pick, r.short()))
            time.sleep(rng.uniform(0.0, 0.02))
    except TransportError:
        pass
    finally:
        cl.close()


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def sanitized(pid):
    """True when the process has AddressSanitizer's runtime mapped."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            return "libasan" in f.read()
    except OSError:
        return False


def rss_loop(soak, t_start):
    while not soak.stop_all.is_set():
        v = rss_kb(soak.proc.pid)
        if v is not None:
            soak.rss.append((now() - t_start, v))
        soak.stop_all.wait(1.0)


# --------------------------------------------------------------------------
# Server process


def start_server(soak, binary):
    argv = [binary, "--listen", HOST + ":0", "--event-buffer", "4096"]
    if soak.args.max_queue:
        argv += ["--max-queue", str(soak.args.max_queue)]
    soak.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
    ready = threading.Event()

    def reader():
        for raw in soak.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if "expired (ttl" in line:
                soak.expiry_log_lines += 1
            else:
                soak.stderr_lines.append(line)
            m = LISTEN_RE.search(line)
            if m and soak.port is None:
                soak.port = int(m.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=reader, daemon=True).start()
    if not ready.wait(10.0) or soak.port is None:
        raise RuntimeError("the server did not print its listen line within 10 s: %s; stderr: %s"
                           % (argv, list(soak.stderr_lines)[-5:]))
    return argv


def stop_server(soak, timeout=10.0):
    """SIGTERM; returns the exit status, or None when it had to be killed."""
    p = soak.proc
    if p is None:
        return None
    if p.poll() is not None:
        return p.returncode
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return None


# --------------------------------------------------------------------------
# End-of-run checks


def list_all(soak, cl, path, field, keyf):
    """Every entry of a paged listing; checks order and next."""
    out = []
    after = None
    index = set()
    while True:
        url = "%s?limit=1000" % path + ("" if after is None else "&after=%s" % qarg(after))
        r = cl.req("list", "GET", url)
        if not expect(soak, r, {200: None}, "GET " + url):
            raise RuntimeError("listing failed: GET %s -> %s" % (url, r.short()))
        index.add(r.headers.get("X-Rollcall-Index"))
        page = r.obj.get(field, [])
        out.extend(page)
        nxt = r.obj.get("next")
        if nxt is None:
            break
        if not page or nxt != page[-1][keyf]:
            soak.viol("final_registry", "GET %s: next %r is not the page's last key" % (url, nxt))
            break
        after = nxt
    keys = [e[keyf] for e in out]
    if keys != sorted(keys, key=lambda k: k.encode("utf-8")) or len(set(keys)) != len(keys):
        soak.viol("final_registry", "GET %s: entries not sorted by key or repeated" % path)
    return out, index


def snapshot(soak, cl):
    """Stats, listings and details; retried until nothing changed meanwhile."""
    for attempt in range(5):
        st1 = cl.req("stats", "GET", "/v1/stats")
        sessions, i1 = list_all(soak, cl, "/v1/sessions", "sessions", "id")
        names, i2 = list_all(soak, cl, "/v1/names", "names", "key")
        props, i3 = list_all(soak, cl, "/v1/props", "props", "key")
        groups, i4 = list_all(soak, cl, "/v1/groups", "groups", "group")
        holders = {}
        for p in props:
            r = cl.req("list", "GET", "/v1/props/" + qkey(p["key"]))
            if expect(soak, r, {200: None}, "GET /v1/props/%s" % p["key"]):
                holders[p["key"]] = r.obj.get("holders", [])
                i4.add(r.headers.get("X-Rollcall-Index"))
        members = {}
        for g in groups:
            r = cl.req("list", "GET", "/v1/groups/" + qkey(g["group"]))
            if expect(soak, r, {200: None}, "GET /v1/groups/%s" % g["group"]):
                members[g["group"]] = r.obj.get("members", [])
                i4.add(r.headers.get("X-Rollcall-Index"))
        details = {}
        for s in sessions:
            r = cl.req("list", "GET", "/v1/sessions/" + s["id"])
            if r.status == 200:
                details[s["id"]] = r.obj
                i4.add(r.headers.get("X-Rollcall-Index"))
        st2 = cl.req("stats", "GET", "/v1/stats")
        idx = i1 | i2 | i3 | i4
        if (st1.status == 200 and st2.status == 200 and len(idx) == 1
                and st1.obj.get("events") == st2.obj.get("events")
                and str(st1.obj.get("events")) in idx):
            return dict(stats=st1.obj, sessions=sessions, names=names, props=props,
                        groups=groups, holders=holders, members=members, details=details,
                        index=idx.pop())
        time.sleep(1.0)
    raise RuntimeError("the registry kept changing while it was listed (5 tries)")


def get_stats(soak, cl):
    r = cl.req("stats", "GET", "/v1/stats")
    if r.status != 200 or not isinstance(r.obj, dict):
        soak.viol("unexpected_answer", "GET /v1/stats -> %s" % r.short())
        raise RuntimeError("GET /v1/stats -> %s" % r.short())
    return r.obj


class Checks:
    def __init__(self):
        self.rows = []   # (ok, name, details[])

    def add(self, name, problems, info=""):
        self.rows.append((not problems, name, info, problems))

    def failed(self):
        return [r for r in self.rows if not r[0]]


def check_registry(soak, snap, expected_live):
    problems = []
    live = {s["id"] for s in snap["sessions"]}
    want = {s.sid for s in expected_live}
    for sid in sorted(live - want):
        s = soak.sessions.get(sid)
        problems.append("session %s is alive but should not be (%s)"
                        % (sid, "unknown to the soak" if s is None else "%s, %s" % (s.label, s.ended or "not ended")))
    for sid in sorted(want - live):
        problems.append("session %s (%s) should be alive but is not listed" % (sid, soak.sessions[sid].label))
    dead = {sid for sid, s in soak.sessions.items() if s.ended}
    own = collections.defaultdict(lambda: {"names": [], "props": [], "groups": []})
    for n in snap["names"]:
        own[n["session"]]["names"].append(n["key"])
    for key, hs in snap["holders"].items():
        for h in hs:
            own[h["session"]]["props"].append(key)
    for g, ms in snap["members"].items():
        for m in ms:
            own[m["session"]]["groups"].append(g)
    for sid, held in own.items():
        if sid not in live:
            problems.append("entries of session %s, which is not alive (%s): %s"
                            % (sid, "it ended: %s" % soak.sessions[sid].ended if sid in dead
                               else "unknown", json.dumps(held)[:300]))
    for p in snap["props"]:
        if p["holders"] != len(snap["holders"].get(p["key"], [])):
            problems.append("GET /v1/props lists %s with %d holders, GET /v1/props/%s has %d"
                            % (p["key"], p["holders"], p["key"], len(snap["holders"].get(p["key"], []))))
    for g in snap["groups"]:
        if g["members"] != len(snap["members"].get(g["group"], [])):
            problems.append("GET /v1/groups lists %s with %d members, GET /v1/groups/%s has %d"
                            % (g["group"], g["members"], g["group"], len(snap["members"].get(g["group"], []))))
    by_id = {s["id"]: s for s in snap["sessions"]}
    for s in expected_live:
        if s.sid not in by_id:
            continue
        row, det = by_id[s.sid], snap["details"].get(s.sid)
        if det is None:
            problems.append("GET /v1/sessions/%s failed though it is listed" % s.sid)
            continue
        for kind in ("names", "props", "groups"):
            want_keys = sorted(getattr(s, kind), key=lambda k: k.encode("utf-8"))
            got = det.get("held", {}).get(kind)
            listed = sorted(own[s.sid][kind], key=lambda k: k.encode("utf-8"))
            if got != want_keys:
                problems.append("session %s held.%s = %s, but it registered %s"
                                % (s.sid, kind, json.dumps(got)[:200], json.dumps(want_keys)[:200]))
            if listed != want_keys:
                problems.append("session %s: the listings give it %s %s, it registered %s"
                                % (s.sid, kind, json.dumps(listed)[:200], json.dumps(want_keys)[:200]))
            if row.get(kind) != len(want_keys):
                problems.append("GET /v1/sessions row of %s says %s=%s, expected %d"
                                % (s.sid, kind, row.get(kind), len(want_keys)))
        # values
        for n in snap["names"]:
            if n["session"] == s.sid and s.names.get(n["key"]) != n["value"]:
                problems.append("name %s value %s, registered %s"
                                % (n["key"], json.dumps(n["value"]), json.dumps(s.names.get(n["key"]))))
    info = "%d sessions, %d names, %d prop entries, %d group memberships listed; %d ended sessions own nothing" % (
        len(live), len(snap["names"]), sum(len(v) for v in snap["holders"].values()),
        sum(len(v) for v in snap["members"].values()), len(dead))
    return problems, info


def check_stats(soak, snap):
    st = snap["stats"]
    problems = []
    want = {
        "sessions": len(snap["sessions"]),
        "names": len(snap["names"]),
        "props": sum(len(v) for v in snap["holders"].values()),
        "group_members": sum(len(v) for v in snap["members"].values()),
        "queued_messages": sum(s.get("queued", 0) for s in snap["sessions"]),
    }
    for k, v in want.items():
        if st.get(k) != v:
            problems.append("/v1/stats %s=%s, the listings show %d" % (k, st.get(k), v))
    return problems, "stats %s at event index %s" % (
        ", ".join("%s=%s" % (k, st.get(k)) for k in want), snap["index"])


def check_messages(soak, live_ledgers):
    problems = []
    extra = collections.Counter()

    def problem(kind, text):
        extra[kind] += 1
        if extra[kind] <= 5:
            problems.append(text)

    receipts = collections.Counter()   # message id -> sessions that received it
    ids_of = {}
    for s in soak.sessions.values():
        ids = collections.Counter(rec[0] for rec in s.ledger.values())
        for mid, c in ids.items():
            receipts[mid] += 1
            if c > 1:
                problem("dup", "session %s received message %s %d times (under different seqs)"
                        % (s.sid, mid, c))
        ids_of[s.sid] = set(ids)
        for seq, (mid, to, frm) in s.ledger.items():
            rec = soak.sent.get(mid)
            if rec is not None:
                if to != rec.to or frm != rec.frm:
                    problem("meta", "session %s seq %d message %s: to=%s from=%s, sent to=%s from=%s"
                            % (s.sid, seq, mid, json.dumps(to), frm, json.dumps(rec.to), rec.frm))
            elif mid not in soak.calls:
                problem("phantom", "session %s seq %d: message %s was never sent" % (s.sid, seq, mid))
    total_live = 0
    for s in live_ledgers:
        last = s.final_last_seq
        if last is None:
            problem("nolast", "session %s: no final receive" % s.sid)
            continue
        total_live += last
        seqs = set(s.ledger)
        missing = [q for q in range(1, last + 1) if q not in seqs]
        beyond = [q for q in seqs if q > last]
        if missing:
            problem("lost", "session %s: last_seq %d but %d seqs never received, e.g. %s"
                    % (s.sid, last, len(missing), missing[:10]))
        if beyond:
            problem("lost", "session %s: seqs %s beyond last_seq %d" % (s.sid, beyond[:10], last))
    live_ids = {s.sid for s in live_ledgers}
    n_expected = 0
    for rec in list(soak.sent.values()):
        if rec.status != 202:
            continue
        if isinstance(rec.delivered, int) and receipts[rec.mid] > rec.delivered:
            problem("over", "message %s to %s: delivered %d, received by %d sessions"
                    % (rec.mid, json.dumps(rec.to), rec.delivered, receipts[rec.mid]))
        if not rec.stable:
            continue
        targets = []
        if rec.kind == "session":
            targets = [rec.to["session"]]
        elif rec.kind == "name":
            targets = [soak.stable_owner[rec.to["name"]]]
        elif rec.kind == "prop":
            targets = soak.prop_holders[rec.to["prop"]]
        elif rec.kind == "group":
            targets = soak.group_holders[rec.to["group"]]
        elif rec.kind == "group_pick":
            got = sum(1 for sid in soak.group_holders[rec.to["group"]]
                      if sid in live_ids and rec.mid in ids_of.get(sid, ()))
            if got > 1:
                problem("over", "picked message %s received by %d members" % (rec.mid, got))
        for sid in targets:
            if sid not in live_ids or sid in rec.full:
                continue
            n_expected += 1
            if rec.mid not in ids_of.get(sid, ()):
                problem("lost", "message %s sent to %s (202 delivered %s) never received by %s"
                        % (rec.mid, json.dumps(rec.to), rec.delivered, sid))
        if rec.kind in ("prop", "group"):
            n_live = sum(1 for sid in targets if sid in live_ids)
            if rec.delivered < n_live - len(rec.full):
                problem("over", "message %s to %s: delivered %d, but %d stable members alive"
                        % (rec.mid, json.dumps(rec.to), rec.delivered, n_live))
    for kind, c in extra.items():
        if c > 5:
            problems.append("... %d %s problems in all" % (c, kind))
    received = sum(sum(1 for q in s.ledger if q <= (s.final_last_seq or 0)) for s in live_ledgers)
    redeliv = sum(s.redeliveries for s in soak.sessions.values())
    info = ("%d messages delivered to the %d sessions alive at the end, all received once "
            "(%d redeliveries of unacknowledged ones deduplicated by seq); %d predicted receipts checked"
            % (total_live, len(live_ledgers), redeliv, n_expected)) if not problems else \
        "%d seqs given out to the %d live sessions, %d of them received" % (total_live, len(live_ledgers), received)
    return problems, info


# --------------------------------------------------------------------------
# Main


def main():
    ap = argparse.ArgumentParser(description="rollcall soak test")
    ap.add_argument("binary")
    env_secs = os.environ.get("SOAK_SECONDS") or "60"
    ap.add_argument("--seconds", default=env_secs)
    ap.add_argument("--sessions", type=int, default=300)
    ap.add_argument("--rate", type=float, default=600.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--max-queue", type=int, default=None,
                    help="passed to the server: a small one makes mailboxes fill (429, full)")
    args = ap.parse_args()
    try:
        secs = int(args.seconds)
        if secs < 5:
            raise ValueError
    except ValueError:
        print("soak: --seconds (SOAK_SECONDS) must be an integer >= 5, got %r" % args.seconds,
              file=sys.stderr)
        return 2
    if args.sessions < 40:
        print("soak: --sessions must be at least 40", file=sys.stderr)
        return 2
    binary = os.path.abspath(args.binary)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        print("soak: %s is not an executable file (build it first)" % binary, file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    master = random.Random(seed)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 and hard != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192) if hard > 0 else 8192, hard))
    threading.stack_size(512 * 1024)

    soak = Soak(args)
    t_begin = now()

    def hard_cap():
        print("soak: FAIL: the run passed its hard cap of %d s; stopping the server" % (secs + 60),
              file=sys.stderr)
        try:
            if soak.proc and soak.proc.poll() is None:
                soak.proc.kill()
        finally:
            os._exit(1)

    cap = threading.Timer(secs + 60, hard_cap)
    cap.daemon = True
    cap.start()

    try:
        argv = start_server(soak, binary)
    except (RuntimeError, OSError) as e:
        print("soak: FAIL: %s" % e, file=sys.stderr)
        stop_server(soak)
        return 1
    try:
        return run(soak, argv, secs, seed, master, t_begin)
    finally:
        cap.cancel()
        if soak.proc.poll() is None:
            soak.stop_load.set()
            soak.drain.set()
            soak.stop_all.set()
            stop_server(soak)


def run(soak, argv, secs, seed, master, t_begin):
    args = soak.args
    n = args.sessions
    n_recv = max(8, round(n * 0.25))
    n_resp = 6
    n_quiet = max(4, round(n * 0.15))
    n_send, n_call = 4, 3
    n_mortal = max(8, n - n_recv - n_quiet - n_send - n_call)
    n_hb = 8
    warm = min(10.0, max(3.0, secs * 0.2))
    ops0 = soak.counter()
    cl = Conn(soak, ops0)
    print("soak: %s, pid %d, port %d; %d s of load, about %d sessions at once "
          "(%d receivers of which %d answer calls, %d quiet, %d mortal slots, %d senders, %d callers), "
          "%.0f sends/s, seed %d"
          % (" ".join(argv), soak.proc.pid, soak.port, secs, n, n_recv, n_resp, n_quiet,
             n_mortal, n_send, n_call, args.rate, seed), flush=True)

    # ---- stable sessions
    soak.stable_owner = {}
    setup_failed = False
    for i in range(n_recv + n_quiet):
        quiet = i >= n_recv
        j = i - n_recv if quiet else i
        recv_only = not quiet and j >= n_resp and j % 5 == 4
        role = "quiet" if quiet else ("recv_only" if recv_only else "recv")
        ttl = 3 if recv_only else 20
        s = create_session(soak, cl, ttl, role, "soak-%s-%d" % (role, j))
        if s is None:
            setup_failed = True
            break
        s.hb_every = master.uniform(2.0, 4.0)
        s.last_hb = now()
        s.last_drain = now() - master.uniform(0.0, 5.0)   # quiet drains spread out
        name = "soak/%s/%d" % ("q" if quiet else "r", j)
        prop = "soak/p/%d" % (i % N_PROPS)
        group = "soak/g/%d" % (i % N_GROUPS)
        ok = put_entry(soak, cl, s, "names", name, {"i": i}, True) is not None
        ok = ok and put_entry(soak, cl, s, "props", prop, i, True) is not None
        ok = ok and put_entry(soak, cl, s, "groups", group, {"w": i}, True) is not None
        if not quiet and j < n_resp:
            ok = ok and put_entry(soak, cl, s, "groups", CALL_GROUP, {"responder": j}, True) is not None
            soak.responders.add(s.sid)
        if not ok:
            setup_failed = True
            break
        soak.stable_names.append((name, s.sid))
        soak.stable_owner[name] = s.sid
        soak.prop_holders[prop].add(s.sid)
        soak.group_holders[group].add(s.sid)
        soak.stable_sessions.append(s)
    helpers = []
    for k in range(n_send + n_call):
        s = create_session(soak, cl, 120, "sender" if k < n_send else "caller",
                           "soak-%s-%d" % ("sender" if k < n_send else "caller", k))
        if s is None:
            setup_failed = True
            break
        s.hb_every = 20.0
        s.last_hb = now()
        helpers.append(s)
    if setup_failed or soak.viol_count:
        print("soak: FAIL: setup did not get the expected answers: %s"
              % dict(soak.viol_examples), file=sys.stderr)
        return 1
    for s in soak.stable_sessions:
        if s.role == "recv_only":
            heartbeat(soak, cl, s)   # fresh lease before its long-poll starts
    print("soak: setup: %d stable sessions in %.1f s" % (len(soak.stable_sessions), now() - t_begin),
          flush=True)

    # ---- threads
    threads = {"recv": [], "hb": [], "mortal": [], "send": [], "call": []}

    def spawn(group, fn, *a):
        t = threading.Thread(target=fn, args=a, daemon=True)
        threads[group].append(t)
        t.start()

    t_start = now()
    threading.Thread(target=rss_loop, args=(soak, t_start), daemon=True).start()
    for s in soak.stable_sessions:
        if s.role != "quiet":
            spawn("recv", receiver_loop, soak, s, random.Random(master.random()))
    pool = soak.stable_sessions + helpers
    for k in range(n_hb):
        spawn("hb", heartbeater_loop, soak, pool[k::n_hb], random.Random(master.random()))
    for slot in range(n_mortal):
        spawn("mortal", mortal_loop, soak, slot, random.Random(master.random()))
    for k in range(n_send):
        spawn("send", sender_loop, soak, k, helpers[k], random.Random(master.random()),
              args.rate / n_send)
    for k in range(n_call):
        spawn("call", caller_loop, soak, k, helpers[n_send + k], random.Random(master.random()))

    # ---- load
    base_rss = None
    t_end = t_start + secs
    last_print = t_start
    aborted = None
    while now() < t_end:
        time.sleep(0.25)
        if base_rss is None and now() - t_start >= warm:
            base_rss = rss_kb(soak.proc.pid)
            print("soak: warm-up done at %.0f s: VmRSS %.1f MiB" % (warm, (base_rss or 0) / 1024), flush=True)
        if not soak.server_alive():
            aborted = "the server exited (status %s) during the load" % soak.proc.returncode
            break
        if now() - last_print >= 10:
            last_print = now()
            tot = sum(sum(c.values()) for c in list(soak.counters))
            print("soak: %3.0f s: %d requests, %d sessions created, %d violations so far"
                  % (now() - t_start, tot, len(soak.sessions), sum(soak.viol_count.values())),
                  flush=True)
    load_secs = now() - t_start

    # ---- stop the load
    soak.stop_load.set()
    for g in ("send", "call", "mortal"):
        for t in threads[g]:
            t.join(max(0.1, t_start + secs + 25 - now()))
    stuck = sum(t.is_alive() for g in ("send", "call", "mortal") for t in threads[g])
    soak.drain.set()
    for t in threads["recv"]:
        t.join(max(0.1, t_start + secs + 40 - now()))
    stuck += sum(t.is_alive() for t in threads["recv"])
    t_quiesce = now()

    checks = Checks()
    snap = None
    live_ledgers = []
    expected_live = [s for s in soak.stable_sessions + helpers if s.ended is None]
    if aborted is None and stuck:
        aborted = "%d load threads did not finish" % stuck
    if aborted is None:
        try:
            snap = snapshot(soak, cl)
        except (RuntimeError, TransportError) as e:
            aborted = "listing the registry: %s" % e
    if snap is not None:
        p, info = check_registry(soak, snap, expected_live)
        p += ["%s (%d in all)" % (e, soak.viol_count["registry_inline"])
              for e in soak.viol_examples.get("registry_inline", [])]
        checks.add("1. registry: no entry belongs to a session that is not alive; "
                   "each live session holds exactly what it registered", p, info)
        p, info = check_stats(soak, snap)
        stats_problems, stats_info = p, info

        # quiet mailboxes: drain (messages waited in them), then verify
        try:
            for s in expected_live:
                if s.role == "quiet":
                    s.final_last_seq = drain_mailbox(soak, cl, s, op="receive_final")
            live_ledgers = [s for s in soak.stable_sessions if s.ended is None]
            st = get_stats(soak, cl)
            if st.get("queued_messages") != 0:
                stats_problems.append("after every mailbox was drained, /v1/stats queued_messages=%s"
                                      % st.get("queued_messages"))
            calls = st.get("calls", {})
            want_calls = {"pending": 0, "answered": soak.call_outcomes["answered"],
                          "receiver_gone": soak.call_outcomes["receiver_gone"],
                          "timed_out": 0, "caller_gone": 0}
            for k, v in want_calls.items():
                if calls.get(k) != v:
                    stats_problems.append("/v1/stats calls.%s=%s, expected %d" % (k, calls.get(k), v))
            if st.get("expirations") != len(soak.expired_seen):
                stats_problems.append("/v1/stats expirations=%s, sessions seen to expire: %d"
                                      % (st.get("expirations"), len(soak.expired_seen)))
            stats_info += "; calls %s; expirations=%s" % (json.dumps(calls), st.get("expirations"))
        except (TransportError, RuntimeError) as e:
            aborted = "draining: %s" % e
        p, info = check_messages(soak, live_ledgers)
        p += ["%s (%d in all)" % (e, soak.viol_count[k]) for k in ("mailbox_order",)
              for e in soak.viol_examples.get(k, [])]
        checks.add("2. messages: every message delivered to a live session received exactly "
                   "once (by seq), none lost, none extra", p, info)

    soak.stop_all.set()
    for t in threads["hb"]:
        t.join(15)

    # ---- release everything
    end_rss = None
    if snap is not None and aborted is None:
        try:
            for s in expected_live:
                if s.ended is None:
                    r = cl.req("session_delete", "DELETE", "/v1/sessions/%s" % s.sid, None, s.token)
                    if expect(soak, r, {204: None}, "DELETE /v1/sessions/%s at the end" % s.sid):
                        mark_ended(soak, s, "deleted")
            time.sleep(1.0)
            st = get_stats(soak, cl)
            for k in ("sessions", "names", "props", "group_members", "queued_messages"):
                if st.get(k) != 0:
                    stats_problems.append("after every session was deleted, /v1/stats %s=%s" % (k, st.get(k)))
            if st.get("calls", {}).get("pending") != 0:
                stats_problems.append("after the end, calls.pending=%s" % st.get("calls", {}).get("pending"))
            for k in ("awaits", "receives"):
                if st.get("pending", {}).get(k) != 0:
                    stats_problems.append("after the end, pending.%s=%s" % (k, st.get("pending", {}).get(k)))
            for path, field in (("/v1/sessions", "sessions"), ("/v1/names", "names"),
                                ("/v1/props", "props"), ("/v1/groups", "groups")):
                r = cl.req("list", "GET", path)
                if r.status != 200 or r.obj.get(field) != []:
                    stats_problems.append("after every session was deleted, GET %s -> %s" % (path, r.short()))
            end_rss = rss_kb(soak.proc.pid)
        except (TransportError, RuntimeError) as e:
            aborted = "releasing: %s" % e
        checks.add("3. stats: /v1/stats agrees with the listings; calls pending 0; "
                   "all zero after release", stats_problems, stats_info)

    # ---- memory
    peak = max((v for _, v in soak.rss), default=0)
    if sanitized(soak.proc.pid) and base_rss is not None:
        checks.add("4. memory: skipped: the server is built with AddressSanitizer, whose "
                   "quarantine keeps freed memory", [],
                   "warm-up %.1f MiB, peak %.1f MiB, after release %s"
                   % (base_rss / 1024, peak / 1024,
                      "-" if end_rss is None else "%.1f MiB" % (end_rss / 1024)))
    elif base_rss is not None and end_rss is not None:
        allow = max(base_rss * 0.20, 10 * 1024)
        p = [] if end_rss <= base_rss + allow else [
            "VmRSS %.1f MiB after release > warm-up %.1f MiB + %.1f MiB"
            % (end_rss / 1024, base_rss / 1024, allow / 1024)]
        checks.add("4. memory: VmRSS after release <= warm-up level + max(20%, 10 MiB)", p,
                   "warm-up %.1f MiB, peak %.1f MiB, after release %.1f MiB (limit %.1f MiB)"
                   % (base_rss / 1024, peak / 1024, end_rss / 1024, (base_rss + allow) / 1024))
    # ---- health and exit
    p = []
    info = ""
    if soak.server_alive():
        try:
            r = cl.req("healthz", "GET", "/healthz")
            if r.status != 200 or r.obj != {"status": "ok"}:
                p.append("GET /healthz -> %s" % r.short())
        except TransportError as e:
            p.append("GET /healthz: %s" % e)
        cl.close()
        t0 = now()
        rc = stop_server(soak)
        if rc != 0:
            p.append("exit status on SIGTERM: %s" % ("killed after 10 s" if rc is None else rc))
        info = "healthy; SIGTERM -> exit %s in %.2f s" % (rc, now() - t0)
    else:
        p.append("the server exited by itself with status %s" % soak.proc.returncode)
    checks.add("5. the server is healthy and exits 0 on SIGTERM", p, info)

    # ---- checks that held all along
    def along(kinds):
        out = []
        for k in kinds:
            if soak.viol_count[k]:
                out += ["%s (%d in all)" % (e, soak.viol_count[k]) for e in soak.viol_examples[k]][:6]
        return out
    total_ops = sum(sum(c.values()) for c in soak.counters)
    checks.add("answers: every request got an answer the contract allows, no transport error",
               along(("unexpected_answer", "transport")), "%d requests" % total_ops)
    checks.add("leases: no session expired before its deadline nor more than 1 s after it",
               along(("lease_early", "lease_late")),
               "%d expiries seen on time, %d replacements, %d deletes verified"
               % (soak.notes["verified_expiries"], soak.notes["replacements"], soak.notes["verified_deletes"]))
    co = soak.call_outcomes
    checks.add("calls: every call answered with its own echo by a responder, or receiver_gone "
               "(or mailbox_full)",
               along(("calls",)), ", ".join("%s %d" % kv for kv in sorted(co.items())) or "no calls")
    if aborted:
        done = {row[1][:2] for row in checks.rows}
        for num, what in (("1.", "registry"), ("2.", "messages"), ("3.", "stats"), ("4.", "memory")):
            if num not in done:
                checks.add("%s %s: not checked" % (num, what), ["the run did not get that far"])
        checks.add("run completed", [aborted], "")

    report(soak, checks, load_secs, t_quiesce - t_start, base_rss, peak, end_rss, seed)
    return 1 if checks.failed() else 0


def report(soak, checks, load_secs, run_secs, base_rss, peak, end_rss, seed):
    ops = collections.Counter()
    for c in soak.counters:
        ops.update(c)
    total = sum(ops.values())
    print()
    print("operations (%d in %.1f s of load + %.1f s of wind-down; %.0f requests/s):"
          % (total, load_secs, run_secs - load_secs, total / max(run_secs, 1e-9)))
    for k, v in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])):
        print("  %-22s %9d  %8.1f/s" % (k, v, v / max(load_secs, 1e-9)))
    sends = [r for r in soak.sent.values() if r.status == 202]
    delivered = sum(r.delivered or 0 for r in sends)
    created = len(soak.sessions)
    ended = collections.Counter(s.ended for s in soak.sessions.values())
    lag = ", ".join("%s %d" % (k[len("client_lag_expiry_"):], v) for k, v in sorted(soak.notes.items())
                    if k.startswith("client_lag_expiry_"))
    print("sessions: %d created, %d expired (%d expiries verified on time, %d replaced by a new "
          "session after a 409 name_taken naming the old owner), %d deleted; %d expired because "
          "this client lagged%s; server expiry log lines: %d"
          % (created, ended["expired"], soak.notes["verified_expiries"], soak.notes["replacements"],
             ended["deleted"], soak.notes["client_lag_expiry"], " (%s)" % lag if lag else "",
             soak.expiry_log_lines))
    notes = ", ".join("%s %d" % (k[len("send_"):], v) for k, v in sorted(soak.notes.items())
                      if k.startswith("send_"))
    print("messages: %d sends answered 202 (%d deliveries%s); %d answered otherwise (%s); "
          "%d received in all (first receipts, by seq)"
          % (len(sends), delivered,
             ", %d mailboxes full in broadcasts" % soak.notes["broadcast_full"] if soak.notes["broadcast_full"] else "",
             len(soak.sent) - len(sends), notes or "none",
             sum(len(s.ledger) for s in soak.sessions.values())))
    co = soak.call_outcomes
    print("calls: %d (%s)" % (sum(co.values()), ", ".join("%s %d" % kv for kv in sorted(co.items()))))
    if soak.rss:
        pts = soak.rss[::max(1, len(soak.rss) // 12)]
        print("VmRSS MiB over time: " + " ".join("%.0fs:%.1f" % (t, v / 1024) for t, v in pts))
    print()
    print("checks:")
    rows = sorted(checks.rows, key=lambda row: row[1][:2] if row[1][0].isdigit() else "9")
    for ok, name, info, problems in rows:
        print("  %s  %s" % ("PASS" if ok else "FAIL", name))
        if info:
            print("        %s" % info)
        for p in problems[:12]:
            print("        - %s" % p)
        if len(problems) > 12:
            print("        - ... and %d more" % (len(problems) - 12))
    failed = checks.failed()
    if failed and soak.stderr_lines:
        print("server stderr (last lines):")
        for line in list(soak.stderr_lines)[-10:]:
            print("  | " + line)
    print()
    print("soak: %s (%d of %d checks passed; seed %d)"
          % ("FAIL" if failed else "PASS", len(checks.rows) - len(failed), len(checks.rows), seed))


if __name__ == "__main__":
    sys.exit(main())
