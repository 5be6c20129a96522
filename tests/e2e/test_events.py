"""GET /v1/events: the Server-Sent Events stream and the JSON long-poll.

The stream is read over a raw socket: the chunked transfer coding and the
SSE framing (id:, event:, data:, a blank line ends an event) are parsed
here, so that nothing of the wire format is taken on trust."""

import json
import random
import signal
import socket
import threading
import time

from harness import (HOST, Client, Fail, Server, check, eq, expect_error, expect_json,
                     expect_status, in_thread, q, test)

EVENT_TYPES = {"session_created", "session_expired", "session_deleted",
               "name_registered", "name_updated", "name_unregistered",
               "prop_set", "prop_removed", "group_joined", "group_left"}
MISSING = object()

# --------------------------------------------------------------------------
# The SSE client


class Event:
    def __init__(self, fields):
        self.fields = fields  # [(name, value)] in wire order
        d = {}
        for k, v in fields:
            check(k not in d, f"event repeats the field {k!r}: {fields}")
            d[k] = v
        eq(sorted(d), ["data", "event", "id"], f"fields of an event {fields}")
        check(d["id"].isdigit(), f"event id {d['id']!r} is not an index")
        self.id = int(d["id"])
        self.type = d["event"]
        check(self.type in EVENT_TYPES | {"reset"}, f"unknown event type {self.type!r}")
        try:
            self.data = json.loads(d["data"])
        except ValueError as e:
            raise Fail(f"event data is not JSON ({e}): {d['data'][:200]!r}")
        check(isinstance(self.data, dict), f"event data is not an object: {d['data'][:200]!r}")

    def __repr__(self):
        return f"Event({self.id}, {self.type}, {self.data})"


class SSE:
    """GET /v1/events over a raw socket with Accept: text/event-stream."""

    def __init__(self, server, query="", headers=None, timeout=5.0, accept="text/event-stream"):
        port = server.port if isinstance(server, Server) else int(server)
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.path = "/v1/events" + ("?" + query if query else "")
        lines = [f"GET {self.path} HTTP/1.1", "Host: rollcall"]
        if accept:
            lines.append(f"Accept: {accept}")
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
        self.raw = b""       # received, not yet de-chunked
        self.text = b""      # de-chunked body, not yet parsed
        self.ended = False   # the last chunk (size 0) came
        self.closed = False  # the peer closed the connection
        self.comments = []
        self.first_block = None
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.raw:
            if not self._recv(deadline):
                raise Fail(f"GET {self.path}: no response head within {timeout} s "
                           f"(got {self.raw[:200]!r})")
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        hl = head.decode("latin-1").split("\r\n")
        self.status_line = hl[0]
        parts = hl[0].split(" ", 2)
        self.version, self.status = parts[0], int(parts[1])
        self.headers = {}
        for ln in hl[1:]:
            k, _, v = ln.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self.body = None
        if self.status != 200:  # an error answer: read its body
            n = int(self.headers.get("content-length", "0"))
            while len(self.raw) < n and self._recv(deadline):
                pass
            self.body = self.raw[:n]

    # ---- the wire

    def _recv(self, deadline):
        """Reads once; False on timeout or when the peer closed."""
        if self.closed:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.raw += chunk
        return True

    def _dechunk(self):
        while not self.ended:
            i = self.raw.find(b"\r\n")
            if i < 0:
                return
            size_txt = self.raw[:i].split(b";")[0].strip()
            try:
                size = int(size_txt, 16)
            except ValueError:
                raise Fail(f"bad chunk size line {self.raw[:i][:50]!r}")
            if size == 0:
                self.ended = True
                self.raw = self.raw[i + 2:]
                return
            if len(self.raw) < i + 2 + size + 2:
                return
            data = self.raw[i + 2:i + 2 + size]
            check(self.raw[i + 2 + size:i + 4 + size] == b"\r\n", "chunk not followed by CRLF")
            self.text += data
            self.raw = self.raw[i + 4 + size:]

    def next_block(self, timeout):
        """The next block of lines ended by a blank line, as [(field, value)];
        comment lines are kept in self.comments. None on timeout or at the
        end of the stream."""
        deadline = time.monotonic() + timeout
        while True:
            self._dechunk()
            i = self.text.find(b"\n\n")
            if i >= 0:
                blk, self.text = self.text[:i], self.text[i + 2:]
                fields = []
                for ln in blk.decode("utf-8").split("\n"):
                    ln = ln.rstrip("\r")
                    if ln.startswith(":"):
                        self.comments.append(ln)
                        continue
                    k, sep, v = ln.partition(":")
                    if sep and v.startswith(" "):
                        v = v[1:]
                    fields.append((k, v))
                if not fields:
                    continue  # only comments
                if self.first_block is None:
                    self.first_block = fields
                return fields
            if self.ended or self.closed:
                return None
            if not self._recv(deadline):
                if self.closed:
                    continue
                return None

    def next_event(self, timeout=5.0):
        """The next event (an Event), skipping the retry block; None if none
        comes within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            blk = self.next_block(max(0.0, deadline - time.monotonic()))
            if blk is None:
                return None
            if [k for k, _ in blk] == ["retry"]:
                continue
            return Event(blk)

    def events(self, n, timeout=5.0):
        """Exactly the next n events (fails if fewer come within timeout)."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            e = self.next_event(max(0.0, deadline - time.monotonic()))
            if e is None:
                raise Fail(f"stream {self.path}: got {len(out)} of {n} events within {timeout} s: {out[-3:]}")
            out.append(e)
        return out

    def expect_quiet(self, secs, what=""):
        e = self.next_event(secs)
        check(e is None, f"stream {self.path}: unexpected event {e} {what}")

    def expect_open(self, timeout=5.0):
        """Checks the answer is an event stream, and reads its first block
        (retry: 1000): once it is read, the server has taken the request."""
        eq(self.status, 200, f"GET {self.path} status (body {self.body!r})")
        eq(self.version, "HTTP/1.1", "response version")
        ct = self.headers.get("content-type", "")
        eq(ct.split(";")[0].strip().lower(), "text/event-stream", "stream Content-Type")
        eq(self.headers.get("cache-control"), "no-cache", "stream Cache-Control")
        check(self.chunked, f"stream is not chunked: headers {self.headers}")
        check("content-length" not in self.headers, "stream has a Content-Length")
        blk = self.next_block(timeout)
        eq(blk, [("retry", "1000")], "first block of the stream")
        return self

    def wait_end(self, timeout):
        """True if the stream ends (last chunk or close) within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self._dechunk()
            if self.ended or self.closed:
                return True
            if not self._recv(deadline) and not self.closed:
                return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def stream(ctx, server, query="", **kw):
    """An opened stream whose request the server has taken."""
    s = SSE(server, query, **kw)
    ctx_streams(ctx).append(s)
    return s.expect_open()


def ctx_streams(ctx):
    """The test's streams, closed when the test ends."""
    if not hasattr(ctx, "_event_streams"):
        ctx._event_streams = []
        orig = ctx.cleanup

        def cleanup():
            for s in ctx._event_streams:
                s.close()
            orig()
        ctx.cleanup = cleanup
    return ctx._event_streams


# --------------------------------------------------------------------------
# Helpers


def poll(c, query="", headers=None, timeout=10):
    """The JSON long-poll; checks its shape; returns (body, response)."""
    r = c.get("/v1/events" + ("?" + query if query else ""), headers=headers, timeout=timeout)
    body = expect_json(r, 200)
    check(isinstance(body, dict) and sorted(body) == ["events", "last"],
          f"long-poll body keys: {r.desc()}")
    check(isinstance(body["events"], list), f"events is not a list: {r.desc()}")
    check(isinstance(body["last"], int) and body["last"] >= 0, f"bad last: {r.desc()}")
    return body, r


def check_ev(d, typ, session, *, key=None, group=None, value=MISSING, index=None):
    """An event object: exactly index, type, session (+ key/group, value)."""
    want = {"index", "type", "session"}
    if key is not None:
        want.add("key")
    if group is not None:
        want.add("group")
    if value is not MISSING:
        want.add("value")
    eq(set(d), want, f"fields of {typ} event {d}")
    eq(d["type"], typ, f"type of {d}")
    eq(d["session"], session, f"session of {d}")
    check(isinstance(d["index"], int) and d["index"] > 0, f"bad index in {d}")
    if key is not None:
        eq(d["key"], key, f"key of {d}")
    if group is not None:
        eq(d["group"], group, f"group of {d}")
    if value is not MISSING:
        eq(d["value"], value, f"value of {d}")
    if index is not None:
        eq(d["index"], index, f"index of {d}")


def check_sse(events, first_index=None):
    """id equals data.index, event equals data.type, indices consecutive."""
    for i, e in enumerate(events):
        eq(e.id, e.data.get("index"), f"id vs data.index of {e}")
        eq(e.type, e.data.get("type"), f"event vs data.type of {e}")
        if i:
            eq(e.id, events[i - 1].id + 1, f"index after {events[i - 1].id}")
    if first_index is not None and events:
        eq(events[0].id, first_index, "index of the first event")


def current_index(c):
    return c.get("/v1/sessions?limit=1").index


def path_of(kind, key):
    return f"/v1/{kind}/" + q(key, safe="/")


# --------------------------------------------------------------------------
# Every event type


@test
def test_stream_every_type(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    st = stream(ctx, srv)
    a = c.session(ttl=60)
    ia = a.resp.index
    k, p, g = "svc/a", "role/x", "peers"
    v1 = {"port": 80, "tags": ["é", None, True], "n": 1.5}
    expect_status(c.put(path_of("names", k), {"value": v1}, token=a.token), 201)
    expect_status(c.put(path_of("names", k), {"value": "two"}, token=a.token), 200)
    expect_status(c.delete(path_of("names", k), token=a.token), 204)
    expect_status(c.put(path_of("props", p), {"value": [1, 2]}, token=a.token), 201)
    expect_status(c.put(path_of("props", p), {"value": "a\nb\r\nc\u2028"}, token=a.token), 200)
    expect_status(c.delete(path_of("props", p), token=a.token), 204)
    expect_status(c.put(path_of("groups", g), {"value": "10.0.0.1"}, token=a.token), 201)
    expect_status(c.delete(path_of("groups", g), token=a.token), 204)
    r = c.delete_session(a.id, a.token)
    expect_status(r, 204)
    evs = st.events(10)
    check_sse(evs, ia)
    d = [e.data for e in evs]
    check_ev(d[0], "session_created", a.id)
    check_ev(d[1], "name_registered", a.id, key=k, value=v1)
    check_ev(d[2], "name_updated", a.id, key=k, value="two")
    check_ev(d[3], "name_unregistered", a.id, key=k)
    check_ev(d[4], "prop_set", a.id, key=p, value=[1, 2])
    check_ev(d[5], "prop_set", a.id, key=p, value="a\nb\r\nc\u2028")  # data: stays one line
    check_ev(d[6], "prop_removed", a.id, key=p)
    check_ev(d[7], "group_joined", a.id, group=g, value="10.0.0.1")
    check_ev(d[8], "group_left", a.id, group=g)
    check_ev(d[9], "session_deleted", a.id)
    eq(r.index, evs[-1].id, "X-Rollcall-Index of the DELETE")
    # the long-poll serves the same event objects
    body, _ = poll(c, f"after={ia - 1}")
    eq(body["events"], d, "long-poll events vs stream data")
    eq(body["last"], evs[-1].id, "last")
    st.expect_quiet(0.2)


@test
def test_raw_newlines_in_values_keep_data_one_line(ctx):
    """JSON allows raw newlines between tokens; a value is kept minified, so
    its event's data: line stays one line (a raw newline once split it,
    which a client would read as a broken or forged event)."""
    srv = ctx.start()
    c = ctx.client(srv)
    st = stream(ctx, srv)
    a = c.session(ttl=60)
    raw = '{"value": {"a":\n 1,\r\n "b": [2,\n3], "s": "x y"}}'
    b = expect_json(c.put(path_of("names", "nl"), raw=raw, token=a.token), 201)
    eq(b["value"], {"a": 1, "b": [2, 3], "s": "x y"}, "value")
    r = c.get(path_of("names", "nl"))
    check(b'\n' not in r.body and b'{"a":1,"b":[2,3],"s":"x y"}' in r.body, f"kept minified: {r.body!r}")
    evs = st.events(2)
    check_ev(evs[1].data, "name_registered", a.id, key="nl", value={"a": 1, "b": [2, 3], "s": "x y"})
    st.expect_quiet(0.2)


@test
def test_session_delete_releases_in_one_go(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session(ttl=60)
    for n in ("n1", "n2", "n3"):
        expect_status(c.put(path_of("names", n), {"value": n}, token=s.token), 201)
    expect_status(c.put(path_of("props", "pp"), {"value": 1}, token=s.token), 201)
    expect_status(c.put(path_of("groups", "gg"), None, token=s.token), 201)
    before = current_index(c)
    st = stream(ctx, srv)
    # a long-poll waiting for the next change gets the whole release at once
    w = in_thread(lambda: poll(ctx.client(srv), f"after={before}&wait=5")[0])
    time.sleep(0.3)
    r = c.delete_session(s.id, s.token)
    expect_status(r, 204)
    eq(r.index, before + 6, "X-Rollcall-Index of the DELETE (5 entries + session)")
    evs = st.events(6)
    check_sse(evs, before + 1)
    got = {}
    for e in evs[:5]:
        check(e.type in ("name_unregistered", "prop_removed", "group_left"),
              f"release event {e} before session_deleted")
        check_ev(e.data, e.type, s.id, **({"group": e.data.get("group")} if e.type == "group_left"
                                          else {"key": e.data.get("key")}))
        got.setdefault(e.type, []).append(e.data.get("key") or e.data.get("group"))
    eq({t: sorted(v) for t, v in got.items()},
       {"name_unregistered": ["n1", "n2", "n3"], "prop_removed": ["pp"], "group_left": ["gg"]},
       "entries released")
    check_ev(evs[5].data, "session_deleted", s.id, index=before + 6)
    body = w.result(10)
    eq([e["index"] for e in body["events"]], list(range(before + 1, before + 7)),
       "indices in the woken long-poll (the whole release in one answer)")
    eq(body["last"], before + 6, "last")


@test
def test_session_expiry_events(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session(ttl=1)
    expect_status(c.put(path_of("names", "e/n"), {"value": 7}, token=s.token), 201)
    expect_status(c.put(path_of("props", "e/p"), None, token=s.token), 201)
    expect_status(c.put(path_of("groups", "e/g"), {"value": {"w": 1}}, token=s.token), 201)
    before = current_index(c)
    st = stream(ctx, srv)
    w = in_thread(lambda: poll(ctx.client(srv), f"after={before}&wait=5")[0])
    t0 = time.monotonic()
    evs = st.events(4, timeout=4)
    took = time.monotonic() - t0
    check(took < 2.5, f"expiry events came {took:.2f} s after a ttl 1 session's last request")
    check_sse(evs, before + 1)
    eq(sorted((e.type, e.data.get("key") or e.data.get("group")) for e in evs[:3]),
       [("group_left", "e/g"), ("name_unregistered", "e/n"), ("prop_removed", "e/p")],
       "release events of the expiry")
    for e in evs[:3]:
        check(e.data["session"] == s.id and "value" not in e.data, f"release event {e.data}")
    check_ev(evs[3].data, "session_expired", s.id, index=before + 4)
    body = w.result(10)
    eq([e["index"] for e in body["events"]], [before + 1, before + 2, before + 3, before + 4],
       "the woken long-poll has the whole expiry in one answer")
    eq(body["events"], [e.data for e in evs], "long-poll vs stream")
    st.expect_quiet(0.2)


# --------------------------------------------------------------------------
# Where a stream starts


def _six_events(c):
    """On a fresh server: 1 session + 5 names = indices 1..6."""
    s = c.session(ttl=60)
    eq(s.resp.index, 1, "index of the first change on a fresh server")
    for i in range(5):
        expect_status(c.put(path_of("names", f"r{i}"), {"value": i}, token=s.token), 201)
    eq(current_index(c), 6, "index after 6 changes")
    return s


@test
def test_stream_resume(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = _six_events(c)
    cases = [("after=2", {}, 3), ("after=0", {}, 1), ("", {"Last-Event-ID": "4"}, 5),
             ("after=2", {"Last-Event-ID": "4"}, 3), ("after=5", {"Last-Event-ID": "1"}, 6),
             ("after=%33", {}, 4)]
    streams = []
    for query, hdrs, first in cases:
        st = stream(ctx, srv, query, headers=hdrs)
        evs = st.events(7 - first)
        check_sse(evs, first)
        eq(evs[-1].id, 6, f"{query} {hdrs}: last replayed event")
        st.expect_quiet(0.1, f"({query} {hdrs}) after replaying up to 6")
        streams.append((query, hdrs, st))
    # caught up, then live
    at6 = stream(ctx, srv, "after=6")
    hdr6 = stream(ctx, srv, headers={"Last-Event-ID": "6"})
    now = stream(ctx, srv)
    at6.expect_quiet(0.2, "(after=6: nothing newer)")
    expect_status(c.put(path_of("names", "live"), {"value": "L"}, token=s.token), 201)
    for query, hdrs, st in streams + [("after=6", {}, at6), ("Last-Event-ID: 6", {}, hdr6), ("now", {}, now)]:
        e = st.next_event(3)
        check(e is not None, f"{query} {hdrs}: the live change did not arrive")
        check_ev(e.data, "name_registered", s.id, key="live", value="L", index=7)
        eq(e.id, 7, "id")


@test
def test_stream_starts_with_next_change(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = _six_events(c)
    st = stream(ctx, srv)
    st.expect_quiet(0.3, "(no after, no Last-Event-ID: history replayed)")
    r = c.put(path_of("names", "next"), {"value": 1}, token=s.token)
    expect_status(r, 201)
    e = st.next_event(3)
    check(e is not None, "the next change did not arrive")
    eq(e.id, 7, "first event of a stream opened at index 6")
    eq(e.id, r.index, "the event's id vs the PUT's X-Rollcall-Index")
    # the long-poll without after answers at once with nothing and the index
    body, _ = poll(c)
    eq(body, {"events": [], "last": 7}, "long-poll without after")
    body, _ = poll(c, headers={"Last-Event-ID": "5"})
    eq([x["index"] for x in body["events"]], [6, 7], "long-poll with Last-Event-ID: 5")


@test
def test_stream_prefix(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session(ttl=60)
    t = c.session(ttl=60)
    pre = "app/"
    st = stream(ctx, srv, "prefix=" + q(pre))
    st_all = stream(ctx, srv)
    ops = [("names", "app/x", s), ("names", "apx", s), ("props", "app/p", t), ("props", "other", t),
           ("groups", "app/g", s), ("groups", "ap", s), ("names", "app", s), ("names", "xapp/", t)]
    for kind, key, who in ops:
        expect_status(c.put(path_of(kind, key), {"value": key}, token=who.token), 201)
    expect_status(c.delete(path_of("names", "app/x"), token=s.token), 204)
    u = c.session(ttl=60)  # a session event: left out
    expect_status(c.put(path_of("names", "app/zz"), {"value": 0}, token=u.token), 201)
    expect_status(c.delete_session(u.id, u.token), 204)  # name_unregistered app/zz + session_deleted
    allev = st_all.events(13)
    check_sse(allev)
    want = [e for e in allev if (e.data.get("key") or e.data.get("group") or "").startswith(pre)]
    eq([(e.type, e.data.get("key") or e.data.get("group")) for e in want],
       [("name_registered", "app/x"), ("prop_set", "app/p"), ("group_joined", "app/g"),
        ("name_unregistered", "app/x"), ("name_registered", "app/zz"), ("name_unregistered", "app/zz")],
       "matching events (from the unfiltered stream)")
    got = st.events(len(want))
    eq([(e.id, e.type, e.data) for e in got], [(e.id, e.type, e.data) for e in want], "prefix stream")
    st.expect_quiet(0.2, "(prefix stream: a non-matching event)")
    # resumed with a prefix, and the same in the long-poll
    st2 = stream(ctx, srv, f"after={allev[0].id - 1}&prefix=app%2F")
    got2 = st2.events(len(want))
    eq([e.id for e in got2], [e.id for e in want], "resumed prefix stream")
    body, _ = poll(c, f"after=0&prefix={q(pre)}")
    eq(body["events"], [e.data for e in want], "long-poll with prefix")
    eq(body["last"], want[-1].id, "last = the last event returned (not the current index)")
    body, _ = poll(c, f"after=0&prefix={q(pre)}&max=2")
    eq([e["index"] for e in body["events"]], [want[0].id, want[1].id], "prefix + max=2")
    eq(body["last"], want[1].id, "last with max=2")
    body, _ = poll(c, "after=0&prefix=nomatch")
    eq(body, {"events": [], "last": allev[-1].id}, "no match: last is the current index")


# --------------------------------------------------------------------------
# Reset


@test
def test_reset_stream_and_longpoll(ctx):
    srv = ctx.start("--event-buffer", "5")
    c = ctx.client(srv)
    s = c.session(ttl=60)
    for i in range(7):
        expect_status(c.put(path_of("names", f"z{i}"), {"value": i}, token=s.token), 201)
    eq(current_index(c), 8, "index after 8 changes")
    # kept: 4..8
    st = stream(ctx, srv, "after=1")
    blk = st.next_block(3)
    check(blk is not None, "no first event after after=1")
    e = Event(blk)
    eq(e.type, "reset", f"first event of after=1 with --event-buffer 5 ({e})")
    eq(e.data, {"index": 8, "type": "reset"}, "reset data")
    eq(e.id, 8, "reset id")
    st.expect_quiet(0.2, "(after the reset, nothing older must follow)")
    st_lid = stream(ctx, srv, headers={"Last-Event-ID": "2"})
    e = st_lid.next_event(3)
    check(e is not None and e.type == "reset" and e.data == {"index": 8, "type": "reset"},
          f"Last-Event-ID: 2 gave {e}")
    st_ok = stream(ctx, srv, "after=3")
    evs = st_ok.events(5)
    check_sse(evs, 4)
    eq([x.type for x in evs], ["name_registered"] * 5, "after=3 (oldest kept is 4): no reset")
    expect_status(c.put(path_of("names", "after-reset"), {"value": "r"}, token=s.token), 201)
    for x in (st, st_lid, st_ok):
        e = x.next_event(3)
        check(e is not None, f"{x.path}: no event after the reset")
        check_ev(e.data, "name_registered", s.id, key="after-reset", value="r", index=9)
    # long-poll: now kept 5..9
    for after in (0, 1, 3):
        body, _ = poll(c, f"after={after}")
        eq(body, {"events": [{"index": 9, "type": "reset"}], "last": 9}, f"long-poll after={after}")
    body, _ = poll(c, headers={"Last-Event-ID": "1"})
    eq(body, {"events": [{"index": 9, "type": "reset"}], "last": 9}, "long-poll Last-Event-ID: 1")
    body, _ = poll(c, "after=4")
    eq([x["index"] for x in body["events"]], [5, 6, 7, 8, 9], "long-poll after=4 (oldest kept 5)")
    body, _ = poll(c, "after=9&wait=0")
    eq(body, {"events": [], "last": 9}, "long-poll caught up")


# --------------------------------------------------------------------------
# The long-poll


@test
def test_longpoll_max(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session(ttl=60)
    pad = "x" * 150
    for i in range(1100):
        r = c.put(path_of("props", "m"), {"value": [i, pad]}, token=s.token)
        check(r.status in (200, 201), f"PUT prop {i}: {r.desc()}")
    eq(current_index(c), 1101, "index after 1101 changes")
    body, r = poll(c, "after=0")
    eq([e["index"] for e in body["events"]], list(range(1, 101)), "default max (100)")
    eq(body["last"], 100, "last (default max)")
    check_ev(body["events"][0], "session_created", s.id)
    check_ev(body["events"][1], "prop_set", s.id, key="m", value=[0, pad])
    for query, n in [("after=0&max=0", 1000), ("after=0&max=5000", 1000), ("after=0&max=1000", 1000),
                     ("after=10&max=3", 3), ("after=1095", 6), ("after=1100&max=1", 1)]:
        body, _ = poll(c, query)
        idx = [e["index"] for e in body["events"]]
        after = int(query.split("after=")[1].split("&")[0])
        eq(idx, list(range(after + 1, after + 1 + n)), f"indices for {query}")
        eq(body["last"], after + n, f"last for {query}")
    body, _ = poll(c, "after=1101")
    eq(body, {"events": [], "last": 1101}, "nothing newer")
    # the stream sends all of it (over 64 KiB), in order
    st = stream(ctx, srv, "after=0")
    evs = st.events(1101, timeout=10)
    check_sse(evs, 1)
    eq(evs[-1].data["value"], [1099, pad], "value of the last event")
    st.expect_quiet(0.1)


@test
def test_longpoll_wait(ctx):
    c = ctx.client()  # the shared server: prefixes keep other tests out
    pre = ctx.uid() + "/"
    s = c.session(ttl=60)
    idx = current_index(c)
    # a change ends the wait early
    t0 = time.monotonic()
    w = in_thread(lambda: poll(ctx.client(), f"after={idx}&wait=5&prefix={q(pre)}")[0])
    time.sleep(0.4)
    check(w.done_at is None, f"the long-poll answered before any change: {w.value}")
    r = c.put(path_of("names", pre + "a"), {"value": 1}, token=s.token)
    expect_status(r, 201)
    t_put = time.monotonic()
    body = w.result(10)
    late = w.done_at - t_put
    check(late < 0.5, f"the long-poll answered {late:.2f} s after the change")
    check(w.done_at - t0 >= 0.35, "answered too early")
    eq(len(body["events"]), 1, f"events {body}")
    check_ev(body["events"][0], "name_registered", s.id, key=pre + "a", value=1, index=r.index)
    eq(body["last"], r.index, "last")
    # a change the prefix leaves out does not end the wait; a matching one does
    idx = r.index
    t0 = time.monotonic()
    w = in_thread(lambda: poll(ctx.client(), f"after={idx}&wait=5&prefix={q(pre + 'b')}")[0])
    time.sleep(0.3)
    expect_status(c.put(path_of("names", pre + "c"), {"value": 2}, token=s.token), 201)
    time.sleep(0.4)
    check(w.done_at is None, f"a non-matching change ended the wait: {w.value}")
    r = c.put(path_of("names", pre + "b1"), {"value": 3}, token=s.token)
    t_put = time.monotonic()
    body = w.result(10)
    check(w.done_at - t_put < 0.5, f"answered {w.done_at - t_put:.2f} s after the matching change")
    eq([(e["type"], e["key"]) for e in body["events"]], [("name_registered", pre + "b1")],
       "events of the prefix long-poll")
    eq(body["last"], r.index, "last")
    # the deadline: empty, last = the current index (which moved: a
    # non-matching change came)
    idx = r.index
    w = in_thread(lambda: poll(ctx.client(), f"after={idx}&wait=1&prefix={q(pre + 'none')}")[0])
    time.sleep(0.3)
    r = c.put(path_of("names", pre + "d"), {"value": 4}, token=s.token)
    body = w.result(10)
    eq(body["events"], [], "events at the deadline")
    check(body["last"] >= r.index, f"last {body['last']} at the deadline, want the current index (>= {r.index})")


@test
def test_longpoll_wait_deadline(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session(ttl=60)
    r = c.get("/v1/events?wait=1")
    body = expect_json(r, 200)
    eq(body, {"events": [], "last": s.resp.index}, "wait=1 with no change")
    check(0.95 <= r.elapsed <= 2.0, f"wait=1 answered after {r.elapsed:.2f} s")
    r = c.get(f"/v1/events?after={s.resp.index}&wait=0")
    eq(expect_json(r, 200), {"events": [], "last": 1}, "wait=0")
    check(r.elapsed < 0.5, f"wait=0 took {r.elapsed:.2f} s")
    # a non-matching change during the wait: still empty at the deadline,
    # last is the index now
    w = in_thread(lambda: ctx.client(srv).get("/v1/events?after=1&wait=1&prefix=zzz"))
    time.sleep(0.3)
    expect_status(c.put(path_of("names", "aaa"), None, token=s.token), 201)
    r = w.result(10)
    eq(expect_json(r, 200), {"events": [], "last": 2}, "prefix long-poll at its deadline")
    check(0.95 <= r.elapsed <= 2.0, f"wait=1 answered after {r.elapsed:.2f} s")


@test
def test_bad_parameters(ctx):
    c = ctx.client()
    for query in ["after=-1", "after=abc", "after=1.5", "after=", "after=%2B1", "wait=301", "wait=-1",
                  "wait=x", "max=-1", "max=1e3"]:
        r = c.get("/v1/events?" + query)
        expect_error(r, 400, "bad_request")
        check(r.elapsed < 0.5, f"{query} took {r.elapsed:.2f} s")
        st = SSE(ctx.shared, query)
        eq(st.status, 400, f"stream with {query}: {st.status_line}")
        check(json.loads(st.body).get("error") == "bad_request", f"stream with {query}: {st.body!r}")
        st.close()
    for lid in ["abc", "-1", "1x", "1.0", "0x10"]:
        r = c.get("/v1/events", headers={"Last-Event-ID": lid})
        expect_error(r, 400, "bad_request")
        st = SSE(ctx.shared, headers={"Last-Event-ID": lid})
        eq(st.status, 400, f"stream with Last-Event-ID {lid!r}: {st.status_line}")
        st.close()
    # a good after makes a bad Last-Event-ID irrelevant (it is not used)
    body = expect_json(c.get("/v1/events?after=0&max=1", headers={"Last-Event-ID": "abc"}), 200)
    eq(len(body["events"]), 1, f"after=0 with a bad Last-Event-ID: {body}")
    for method in ("POST", "PUT", "DELETE"):
        r = c.request(method, "/v1/events", {})
        expect_error(r, 405, "method_not_allowed")
        allow = [m.strip() for m in (r.header("Allow") or "").split(",")]
        check("GET" in allow and method not in allow, f"{method} /v1/events: Allow {r.header('Allow')!r}")


@test
def test_after_beyond_any_index(ctx):
    # An after past every index asks for events that do not exist: the
    # answer has none, or a reset (an index from another history), or the
    # number is refused; never events at or below the current index.
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session(ttl=60)
    expect_status(c.put(path_of("names", "old"), None, token=s.token), 201)
    for after in ["1000", "18446744073709551614", "18446744073709551615", "99999999999999999999999"]:
        r = c.get(f"/v1/events?after={after}")
        if r.status == 400:
            expect_error(r, 400, "bad_request")
            continue
        body = expect_json(r, 200)
        check(body in ({"events": [], "last": 2}, {"events": [{"index": 2, "type": "reset"}], "last": 2}),
              f"GET /v1/events?after={after} at index 2: got {body}, want no event or a reset")


# --------------------------------------------------------------------------
# X-Rollcall-Index vs the events


@test
def test_index_header_is_last_event(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session(ttl=60)
    st = stream(ctx, srv, "after=0")
    eq(st.next_event(3).id, s.resp.index, "session_created index vs the POST's header")
    steps = [("PUT", path_of("names", "ix/a"), {"value": 1}),
             ("PUT", path_of("names", "ix/a"), {"value": 2}),
             ("PUT", path_of("props", "ix/p"), {"value": 1}),
             ("PUT", path_of("groups", "ix/g"), None),
             ("DELETE", path_of("groups", "ix/g"), None),
             ("DELETE", path_of("names", "ix/a"), None)]
    reads = ["/v1/names/ix/a", "/v1/names", "/v1/names?prefix=ix", "/v1/props", "/v1/props/ix/p",
             "/v1/groups", "/v1/groups/ix/g", "/v1/sessions", f"/v1/sessions/{s.id}"]
    for method, path, body in steps:
        r = c.request(method, path, body, token=s.token)
        check(r.status in (200, 201, 204), f"{r.desc()}")
        e = st.next_event(3)
        check(e is not None, f"no event for {method} {path}")
        eq(r.index, e.id, f"X-Rollcall-Index of {method} {path} vs its event")
        for rp in reads:
            rr = c.get(rp)
            check(rr.status in (200, 404), rr.desc())
            eq(rr.index, e.id, f"X-Rollcall-Index of GET {rp} right after {method} {path}")
        body, _ = poll(c, f"after={e.id - 1}")
        eq(body["events"], [e.data], "the long-poll's view of that event")
    t = c.session(ttl=60)
    expect_status(c.put(path_of("names", "ix/t"), None, token=t.token), 201)
    expect_status(c.delete_session(t.id, t.token), 204)
    evs = st.events(4)
    eq([e.type for e in evs], ["session_created", "name_registered", "name_unregistered", "session_deleted"],
       "types")
    for rp in reads:
        eq(c.get(rp).index, evs[-1].id, f"X-Rollcall-Index of GET {rp} after a session delete")


# --------------------------------------------------------------------------
# List, then follow, under concurrent writes


class Mirror:
    """A client's copy of the names, from a listing and then the events."""

    def __init__(self, srv, mode):
        self.srv, self.mode = srv, mode
        self.c = None
        self.names = {}
        self.start = None  # the listing's X-Rollcall-Index
        self.seen = 0      # the last event index applied
        self.count = 0
        self.st = None

    def list(self):
        self.c = Client(self.srv)
        r = self.c.get("/v1/names?limit=1000")
        body = expect_json(r, 200)
        check(body["next"] is None, "over 1000 names: the listing needs a second page")
        self.names = {n["key"]: (n["session"], n["value"]) for n in body["names"]}
        self.start = self.seen = r.index
        if self.mode == "stream":
            self.st = SSE(self.srv, f"after={self.start}").expect_open()

    def apply(self, d):
        i = d["index"]
        check(i > self.start, f"{self.mode} from {self.start}: event at index {i} <= the listing's index")
        eq(i, self.seen + 1, f"{self.mode} from {self.start}: index after {self.seen} (a gap or a repeat)")
        self.seen = i
        self.count += 1
        t, k = d["type"], d.get("key")
        if t == "name_registered":
            check(k not in self.names, f"from {self.start}: name_registered {k} at {i}, but it was held")
            self.names[k] = (d["session"], d["value"])
        elif t == "name_updated":
            check(k in self.names and self.names[k][0] == d["session"],
                  f"from {self.start}: name_updated {k} at {i}, not held by {d['session']}")
            self.names[k] = (d["session"], d["value"])
        elif t == "name_unregistered":
            check(k in self.names and self.names[k][0] == d["session"],
                  f"from {self.start}: name_unregistered {k} at {i}, not held by {d['session']}")
            del self.names[k]
        elif t == "reset":
            raise Fail(f"from {self.start}: a reset at {i}")

    def follow_until(self, stop):
        """Applies events until the index stop() returns (None: not yet) is reached."""
        while True:
            target = stop()
            if target is not None and self.seen >= target:
                return
            if self.mode == "stream":
                e = self.st.next_event(0.3)
                if e is not None:
                    eq(e.id, e.data["index"], "id vs data.index")
                    eq(e.type, e.data["type"], "event vs type")
                    self.apply(e.data)
                elif self.st.ended or self.st.closed:
                    raise Fail(f"stream from {self.start} ended")
            else:
                body, _ = poll(self.c, f"after={self.seen}&max=1000&wait=1")
                for d in body["events"]:
                    self.apply(d)
                want_last = body["events"][-1]["index"] if body["events"] else self.seen
                check(body["last"] >= want_last, f"last {body['last']} vs events {want_last}")


@test
def test_list_then_follow(ctx):
    srv = ctx.start()
    stop_writes = threading.Event()
    final = {"index": None}
    errors = []

    def writer(tid):
        try:
            c = Client(srv)
            s = c.session(ttl=60)
            held = set()
            rnd = random.Random(tid)
            while not stop_writes.is_set():
                k = f"w/{tid}/{rnd.randrange(30)}"
                if k in held and rnd.random() < 0.5:
                    expect_status(c.delete(path_of("names", k), token=s.token), 204)
                    held.discard(k)
                else:
                    r = c.put(path_of("names", k), {"value": rnd.randrange(1000)}, token=s.token)
                    check(r.status in (200, 201), r.desc())
                    held.add(k)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def churner():
        # sessions that hold a few names, then go at once (delete)
        try:
            c = Client(srv)
            i = 0
            while not stop_writes.is_set():
                s = c.session(ttl=60)
                for j in range(3):
                    expect_status(c.put(path_of("names", f"c/{i}/{j}"), {"value": j}, token=s.token), 201)
                time.sleep(0.01)
                expect_status(c.delete_session(s.id, s.token), 204)
                i += 1
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    writers = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(4)]
    writers.append(threading.Thread(target=churner, daemon=True))
    for t in writers:
        t.start()
    mirrors = []
    followers = []
    try:
        for i in range(6):
            time.sleep(0.3)
            m = Mirror(srv, "stream" if i % 2 == 0 else "poll")
            m.list()
            mirrors.append(m)
            followers.append(in_thread(m.follow_until, lambda: final["index"]))
        time.sleep(0.3)
    finally:
        stop_writes.set()
        for t in writers:
            t.join(5)
    if errors:
        raise errors[0]
    c = Client(srv)
    r = c.get("/v1/names?limit=1000")
    body = expect_json(r, 200)
    check(body["next"] is None, "over 1000 names")
    want = {n["key"]: (n["session"], n["value"]) for n in body["names"]}
    final["index"] = r.index
    for m, f in zip(mirrors, followers):
        f.result(15)
        eq(m.seen, r.index, f"{m.mode} from {m.start}: last index applied")
        check(m.names == want, f"{m.mode} from {m.start}: rebuilt names differ from the final listing: "
              f"missing {sorted(set(want) - set(m.names))[:5]}, extra {sorted(set(m.names) - set(want))[:5]}, "
              f"other values {[k for k in want if k in m.names and want[k] != m.names[k]][:5]}")
        check(m.count > 20, f"{m.mode} from {m.start}: only {m.count} events (writes too slow?)")
        if m.st:
            m.st.close()
    starts = [m.start for m in mirrors]
    check(len(set(starts)) == len(starts), f"listings taken at the same index {starts}: no writes between?")


# --------------------------------------------------------------------------
# Many streams, disconnects, shutdown


@test
def test_twenty_streams(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session(ttl=60)
    streams = [stream(ctx, srv) for _ in range(20)]
    r = c.put(path_of("names", "fan/out"), {"value": {"to": 20}}, token=s.token)
    expect_status(r, 201)
    got = [st.next_event(5) for st in streams]
    for i, e in enumerate(got):
        check(e is not None, f"stream {i} did not get the change")
        eq((e.id, e.type, e.data), (r.index, "name_registered",
                                    {"index": r.index, "type": "name_registered", "session": s.id,
                                     "key": "fan/out", "value": {"to": 20}}), f"stream {i}")
    # half the clients go away; some abruptly (RST)
    for i, st in enumerate(streams[:10]):
        if i % 2:
            st.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        st.close()
    time.sleep(0.2)
    for i in range(3):
        expect_status(c.put(path_of("names", f"fan/{i}"), None, token=s.token), 201)
    expect_json(c.healthz(), 200)
    for st in streams[10:]:
        evs = st.events(3)
        check_sse(evs, r.index + 1)
    for st in streams[10:]:
        st.close()
    time.sleep(0.2)
    expect_status(c.put(path_of("names", "fan/last"), None, token=s.token), 201)
    expect_json(c.healthz(), 200)
    fresh = stream(ctx, srv, f"after={r.index}")
    eq([e.id for e in fresh.events(4)], [r.index + 1, r.index + 2, r.index + 3, r.index + 4],
       "a new stream after the disconnects")
    fresh.close()
    srv.stop_clean()


@test
def test_sigterm_ends_streams(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session(ttl=60)
    streams = [stream(ctx, srv, "prefix=x" if i % 2 else "") for i in range(5)]
    lp = in_thread(lambda: ctx.client(srv).get("/v1/events?wait=30&prefix=never"))
    expect_status(c.put(path_of("names", "x1"), None, token=s.token), 201)
    for st in streams:
        check(st.next_event(3) is not None, "a stream missed the change")
    time.sleep(0.2)
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    for i, st in enumerate(streams):
        check(st.wait_end(max(0.05, t0 + 1.5 - time.monotonic())),
              f"stream {i} still open {time.monotonic() - t0:.2f} s after SIGTERM")
    try:
        rc = srv.proc.wait(max(0.05, t0 + 1.5 - time.monotonic()))
    except Exception:
        raise Fail("the server did not exit within 1.5 s of SIGTERM with open streams")
    eq(rc, 0, "exit code after SIGTERM")
    took = time.monotonic() - t0
    check(took <= 1.5, f"exit took {took:.2f} s")
    r = lp.result(5)
    expect_error(r, 503, "shutting_down")


@test
def test_sigterm_with_stalled_reader(ctx):
    # a client that stops reading a stream with megabytes to send does not
    # hold the server past its grace
    srv = ctx.start()
    c = ctx.client(srv)
    s = c.session(ttl=60)
    pad = "y" * 8000
    for i in range(600):
        r = c.put(path_of("props", "big"), {"value": [i, pad]}, token=s.token)
        check(r.status in (200, 201), r.desc())
    st = SSE(srv, "after=0")
    ctx_streams(ctx).append(st)
    st.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    eq(st.status, 200, "stream status")
    time.sleep(0.3)
    expect_json(c.healthz(), 200)
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    try:
        rc = srv.proc.wait(1.5)
    except Exception:
        raise Fail("the server did not exit within 1.5 s of SIGTERM with a stalled stream reader")
    eq(rc, 0, f"exit code after SIGTERM (stderr {srv.stderr_text()[-200:]!r})")
    check(time.monotonic() - t0 <= 1.5, "exit took over 1.5 s")
