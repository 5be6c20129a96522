"""Calls: POST /v1/call to a name, a session or one picked group member, the
call message (reply_to) in the receiver's mailbox, POST /v1/replies/{id},
every error of both sides, the deadline, the receiver's end (delete, expiry)
as gen_server's monitor, a caller that goes away, --max-queue,
--max-waiters, --max-value, shutdown with calls pending, the "calls" counts
of /v1/stats and /metrics, and 500 concurrent calls over a group."""

import json
import re
import resource
import threading
import time

from harness import (HEX32, RawConn, check, eq, expect_error, expect_json,
                     expect_no_body, expect_status, in_thread, name_path, q,
                     test, wait_until)

UNKNOWN_TOKEN = "0" * 32
UNKNOWN_ID = "0123456789abcdef"
UNKNOWN_CALL = "0" * 32
CALL_FIELDS = {"seq", "from", "to", "body", "reply_to"}
CALLS_KEYS = {"pending", "answered", "timed_out", "receiver_gone", "caller_gone"}


def group_path(group):
    return "/v1/groups/" + q(group, safe="/")


def call(c, to, body=None, token=None, timeout_ms=None, **kw):
    """POST /v1/call {"to": to, "body": body[, "timeout_ms"]}; raw= sends
    bytes as they are."""
    if "raw" in kw:
        return c.post("/v1/call", token=token, **kw)
    req = {"to": to, "body": body}
    if timeout_ms is not None:
        req["timeout_ms"] = timeout_ms
    return c.post("/v1/call", req, token=token, **kw)


def reply(c, call_id, body=None, token=None, *, no_body=False, **kw):
    """POST /v1/replies/{call_id} {"body": body} (or no body, or raw=)."""
    path = "/v1/replies/" + call_id
    if no_body or "raw" in kw:
        return c.post(path, token=token, **kw)
    return c.post(path, {"body": body}, token=token, **kw)


def replied(c, call_id, body=None, token=None, **kw):
    r = reply(c, call_id, body, token, **kw)
    expect_no_body(r, 204)
    return r


def call_bg(ctx, srv, to, body=None, token=None, timeout_ms=None):
    """A call on its own connection, in a thread."""
    http_timeout = 15 if timeout_ms is None else max(15, timeout_ms / 1000 + 5)
    return in_thread(lambda: call(ctx.client(srv, timeout=http_timeout), to, body, token, timeout_ms))


def answer_of(r, what="call"):
    """Asserts a 200 call answer {"body", "from"}; returns it."""
    b = expect_json(r, 200)
    check(isinstance(b, dict), f"{what}: answer is not an object")
    eq(set(b), {"body", "from"}, f"{what}: answer fields")
    return b


def inbox(c, s, after=None, wait=0, max=0, timeout=None):
    """The messages of Session s (shape checked), without acknowledging
    unless after is given."""
    path = f"/v1/sessions/{s.id}/messages?wait={wait}&max={max}"
    if after is not None:
        path += f"&after={after}"
    r = c.get(path, token=s.token, timeout=timeout)
    b = expect_json(r, 200)
    eq(set(b), {"messages", "last_seq"}, "receive: fields")
    for m in b["messages"]:
        want = CALL_FIELDS if "reply_to" in m else CALL_FIELDS - {"reply_to"}
        eq(set(m), want, "receive: message fields")
    return b


def poll_msgs(c, s, n, timeout=5.0):
    """Polls s's mailbox (acknowledging nothing) until it holds n messages."""
    end = time.monotonic() + timeout
    while True:
        msgs = inbox(c, s)["messages"]
        if len(msgs) >= n:
            return msgs
        if time.monotonic() > end:
            raise AssertionError(f"mailbox of {s.id} holds {len(msgs)} messages after {timeout} s, want {n}")
        time.sleep(0.02)


def call_msg(m, what="call message"):
    """Asserts m is a call message; returns its reply_to."""
    eq(set(m), CALL_FIELDS, f"{what}: fields")
    rt = m["reply_to"]
    check(isinstance(rt, str) and HEX32.fullmatch(rt), f"{what}: reply_to {rt!r} is not 32 lowercase hex")
    return rt


def stats_calls(c):
    b = expect_json(c.get("/v1/stats"), 200)
    check(isinstance(b.get("calls"), dict), f"/v1/stats has no \"calls\" object: {sorted(b)}")
    eq(set(b["calls"]), CALLS_KEYS, "/v1/stats calls: fields")
    return b["calls"]


def metrics_calls(c):
    """The rollcall_calls_* values of /metrics as a dict like stats_calls."""
    r = c.get("/metrics")
    expect_status(r, 200)
    got = {}
    for line in r.text.splitlines():
        m = re.fullmatch(r'rollcall_calls_pending (\d+)', line)
        if m:
            got["pending"] = int(m.group(1))
        m = re.fullmatch(r'rollcall_calls_total\{result="([a-z_]+)"\} (\d+)', line)
        if m:
            got[m.group(1)] = int(m.group(2))
    check("# TYPE rollcall_calls_pending gauge" in r.text, "/metrics: no gauge TYPE for rollcall_calls_pending")
    check("# TYPE rollcall_calls_total counter" in r.text, "/metrics: no counter TYPE for rollcall_calls_total")
    eq(set(got), CALLS_KEYS, "/metrics rollcall_calls_* series")
    return got


def counts(c, want, what):
    eq(stats_calls(c), want, f"/v1/stats calls {what}")
    eq(metrics_calls(c), want, f"/metrics calls {what}")


def raw_call(srv, to, body, token=None, timeout_ms=None):
    """Sends a call on a raw connection; returns the connection (the answer
    is read later with read_response)."""
    req = {"to": to, "body": body}
    if timeout_ms is not None:
        req["timeout_ms"] = timeout_ms
    data = json.dumps(req).encode()
    rc = RawConn(srv, timeout=15)
    hdr = f"POST /v1/call HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    if token:
        hdr += f"X-Session-Token: {token}\r\n"
    rc.send(hdr.encode() + b"\r\n" + data)
    return rc


def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    check(soft == resource.RLIM_INFINITY or soft >= want,
          f"cannot open enough files: RLIMIT_NOFILE {soft} < {want}")


# ---- the round trip


@test
def test_call_answered_by_replier_thread(ctx):
    c = ctx.client()
    k = ctx.uid()
    rx, tx = c.session(), c.session()
    expect_status(c.put_name(k, "svc", rx.token), 201)
    seen = []

    def replier():
        rc = ctx.client()
        b = inbox(rc, rx, wait=10, timeout=15)  # pending before the call
        check(len(b["messages"]) == 1, f"replier got {b['messages']!r}")
        m = b["messages"][0]
        seen.append(m)
        rt = call_msg(m)
        replied(rc, rt, {"echo": m["body"]}, rx.token)
        return rt
    rep = in_thread(replier)
    time.sleep(0.3)
    check(rep.done_at is None, "the replier's receive answered before the call")
    r = call(c, {"name": k}, {"q": [1, "two"]}, tx.token)
    rt = rep.result(10)
    eq(answer_of(r), {"body": {"echo": {"q": [1, "two"]}}, "from": rx.id}, "call answer")
    check(r.elapsed < 1.0, f"the call took {r.elapsed:.2f} s though answered at once")
    eq(seen[0], {"seq": 1, "from": tx.id, "to": {"name": k}, "body": {"q": [1, "two"]}, "reply_to": rt},
       "the call message")
    # the message stays in the mailbox, acknowledged as any other
    b = inbox(c, rx)
    eq(b["messages"], seen, "mailbox after the reply")
    eq(b["last_seq"], 1, "last_seq")
    eq(inbox(c, rx, after=1), {"messages": [], "last_seq": 1}, "acknowledged")
    eq(inbox(c, tx)["messages"], [], "the caller's own mailbox")


@test
def test_call_message_fields_and_targets(ctx):
    c = ctx.client()
    k, g = ctx.uid(), ctx.uid()
    rx, tx = c.session(), c.session()
    expect_status(c.put_name(k, 1, rx.token), 201)
    expect_status(c.put(group_path(g), {"value": "addr"}, token=rx.token), 201)
    expect_status(c.post("/v1/send", {"to": {"session": rx.id}, "body": "plain"}), 202)
    targets = [
        ({"name": k}, tx.token),
        ({"session": rx.id}, None),                                # no token: from is null
        ({"group": g, "pick": "random"}, tx.token),
        ({"group": g, "pick": "round_robin"}, None),
        ({"group": g, "pick": "hash", "hash_key": "user-7"}, tx.token),
    ]
    waits = [call_bg(ctx, ctx.shared, to, {"n": i}, tok) for i, (to, tok) in enumerate(targets)]
    msgs = poll_msgs(c, rx, 1 + len(targets))
    eq(len(msgs), 1 + len(targets), "mailbox: one plain message and one per call")
    eq(msgs[0], {"seq": 1, "from": None, "to": {"session": rx.id}, "body": "plain"},
       "a plain message has no reply_to")
    ids = set()
    by_n = {}
    for m in msgs[1:]:
        rt = call_msg(m)
        ids.add(rt)
        by_n[m["body"]["n"]] = m
    eq(len(ids), len(targets), "each call has its own reply_to")
    # acknowledging the call messages does not end the calls
    eq(inbox(c, rx, after=len(targets) + 1)["messages"], [], "all acknowledged")
    eq(sorted(m["seq"] for m in msgs), list(range(1, len(targets) + 2)), "seqs")
    for i, (to, tok) in enumerate(targets):
        m = by_n[i]
        eq(m["to"], to, f"call {i}: to as given")
        eq(m["from"], tx.id if tok else None, f"call {i}: from")
    # answer them in reverse order: each caller gets its own reply
    for i in reversed(range(len(targets))):
        replied(c, by_n[i]["reply_to"], {"for": i}, rx.token)
    for i, w in enumerate(waits):
        eq(answer_of(w.result(10)), {"body": {"for": i}, "from": rx.id}, f"call {i} answer")


@test
def test_call_to_itself(ctx):
    c = ctx.client()
    s = c.session()
    w = call_bg(ctx, ctx.shared, {"session": s.id}, "me?", s.token)
    m = poll_msgs(c, s, 1)[0]
    eq(m["from"], s.id, "from")
    replied(c, call_msg(m), "yes", s.token)
    eq(answer_of(w.result(10)), {"body": "yes", "from": s.id}, "a session's call to itself")


@test
def test_reply_body_optional_and_exact(ctx):
    c = ctx.client()
    rx = c.session()
    values = [None, 0, -1, 12345678901234567890, 1.5e300, "", "caf\u00e9 \U0001F600 \"q\" \\ \n",
              [], {}, [1, [2, {"d": None}]], {"nested": {"l": [1, "two"], "e": {}}}, True, False]
    for v in values:
        w = call_bg(ctx, ctx.shared, {"session": rx.id}, {"v": v})
        m = poll_msgs(c, rx, 1)[0]
        eq(m["body"], {"v": v}, "call body as sent")
        replied(c, call_msg(m), v, rx.token)
        eq(answer_of(w.result(10)), {"body": v, "from": rx.id}, f"reply {v!r}")
        inbox(c, rx, after=m["seq"])
    # no request body, an empty body, {} and a body without "body": null
    for how in [dict(no_body=True), dict(raw=""), dict(raw="{}"), dict(raw='{"other": 1}')]:
        w = call_bg(ctx, ctx.shared, {"session": rx.id}, "q")
        m = poll_msgs(c, rx, 1)[0]
        r = reply(c, call_msg(m), token=rx.token, **how)
        expect_no_body(r, 204)
        eq(answer_of(w.result(10)), {"body": None, "from": rx.id}, f"reply with {how}")
        inbox(c, rx, after=m["seq"])
    # a big integer and the replier's spacing come back as JSON of the same value
    w = call_bg(ctx, ctx.shared, {"session": rx.id}, None)
    m = poll_msgs(c, rx, 1)[0]
    eq(m["body"], None, "a call without body carries null")
    expect_no_body(reply(c, m["reply_to"], token=rx.token,
                         raw='{"body": {"big": 123456789012345678901234567890, "s" : [ 1 , 2 ]}}'), 204)
    r = w.result(10)
    check(b"123456789012345678901234567890" in r.body, f"big integer not kept: {r.body[:200]!r}")
    eq(answer_of(r), {"body": {"big": 123456789012345678901234567890, "s": [1, 2]}, "from": rx.id}, "answer")


@test
def test_call_timeout_default_and_bounds(ctx):
    c = ctx.client()
    rx = c.session()
    # 1 and 300000 are valid
    r = call(c, {"session": rx.id}, "fast", timeout_ms=1)
    expect_error(r, 504, "call_timeout")
    check(r.elapsed < 0.5, f"timeout_ms 1 answered after {r.elapsed:.2f} s")
    w = call_bg(ctx, ctx.shared, {"session": rx.id}, "long", timeout_ms=300000)
    w2 = call_bg(ctx, ctx.shared, {"session": rx.id}, "default")  # no timeout_ms: 5000
    msgs = poll_msgs(c, rx, 3)
    time.sleep(0.3)
    check(w.done_at is None, "the timeout_ms 300000 call answered early")
    check(w2.done_at is None, "the default-timeout call answered early")
    by = {m["body"]: m for m in msgs}
    replied(c, by["long"]["reply_to"], "ok", rx.token)
    replied(c, by["default"]["reply_to"], "ok too", rx.token)
    eq(answer_of(w.result(10)), {"body": "ok", "from": rx.id}, "timeout_ms 300000 call")
    eq(answer_of(w2.result(10)), {"body": "ok too", "from": rx.id}, "default-timeout call")


# ---- errors for the caller


@test
def test_call_target_errors(ctx):
    c = ctx.client()
    k, g, empty = ctx.uid(), ctx.uid(), ctx.uid()
    rx, tx = c.session(), c.session()
    expect_status(c.put_name(k, 1, rx.token), 201)
    expect_status(c.put("/v1/props/" + q(k), token=rx.token), 201)
    expect_status(c.put(group_path(g), token=rx.token), 201)
    gone = c.session()
    gk = ctx.uid()
    expect_status(c.put_name(gk, 1, gone.token), 201)
    expect_status(c.delete_session(gone.id, gone.token), 204)
    cases = [
        ({"name": ctx.uid()}, 404, "name_not_found"),
        ({"name": gk}, 404, "name_not_found"),
        ({"session": UNKNOWN_ID}, 404, "session_not_found"),
        ({"session": gone.id}, 404, "session_not_found"),
        ({"group": empty, "pick": "random"}, 404, "group_empty"),
        ({"group": empty, "pick": "round_robin"}, 404, "group_empty"),
        ({"group": empty, "pick": "hash", "hash_key": "x"}, 404, "group_empty"),
        ({"prop": k}, 400, "bad_request"),             # a call has one receiver
        ({"group": g}, 400, "bad_request"),            # a group without pick
        ({"group": empty}, 400, "bad_request"),
        ({"group": g, "pick": "first"}, 400, "bad_request"),
        ({"group": g, "pick": "hash"}, 400, "bad_request"),
        ({"name": k, "session": rx.id}, 400, "bad_request"),
        ({}, 400, "bad_request"),
        ({"name": ""}, 400, "invalid_key"),
    ]
    for to, status, code in cases:
        for tok in (None, tx.token):
            r = call(c, to, "x", tok, timeout_ms=5000)
            expect_error(r, status, code)
            check(r.elapsed < 0.5, f"{to!r}: {code} took {r.elapsed:.2f} s")
    for bad in [0, 300001, 1.5, "x", -1, "5000", True, [5000], {"ms": 5}, 1e300]:
        r = call(c, {"name": k}, "x", tx.token, timeout_ms=bad)
        expect_error(r, 400, "bad_request")
        check(r.elapsed < 0.5, f"timeout_ms {bad!r}: 400 took {r.elapsed:.2f} s")
    for raw in ["", "{", "[1]", '{"body": 1}', '{"to": "%s", "body": 1}' % k,
                '{"to": {"name": "%s"}, "body": 01}' % k, '{"to": {"name": "%s"}} x' % k,
                '{"to": {"name": "%s"}, "timeout_ms": 1e3x}' % k]:
        expect_error(call(c, None, raw=raw), 400, "bad_request")
    b = inbox(c, rx)
    eq(b, {"messages": [], "last_seq": 0}, "nothing delivered by a refused call")
    expect_json(c.healthz(), 200)


@test
def test_call_bad_caller_token(ctx):
    c = ctx.client()
    rx = c.session()
    gone = c.session()
    expect_status(c.delete_session(gone.id, gone.token), 204)
    for tok in [UNKNOWN_TOKEN, gone.token, "x"]:
        r = call(c, {"session": rx.id}, 1, tok, timeout_ms=5000)
        expect_error(r, 403, "bad_token")
        check(r.elapsed < 0.5, f"403 took {r.elapsed:.2f} s")
    eq(inbox(c, rx), {"messages": [], "last_seq": 0}, "nothing delivered with a bad token")


@test
def test_call_mailbox_full(ctx):
    srv = ctx.start("--max-queue", "1")
    c = ctx.client(srv)
    rx, tx = c.session(), c.session()
    expect_status(c.put_name("svc", 1, rx.token), 201)
    expect_status(c.put("/v1/groups/g", token=rx.token), 201)
    expect_status(c.post("/v1/send", {"to": {"session": rx.id}, "body": "fills it"}), 202)
    for to in [{"name": "svc"}, {"session": rx.id}, {"group": "g", "pick": "round_robin"}]:
        r = call(c, to, "no room", tx.token, timeout_ms=5000)
        expect_error(r, 429, "mailbox_full")
        check(r.elapsed < 0.5, f"mailbox_full took {r.elapsed:.2f} s")
    eq(stats_calls(c)["pending"], 0, "pending after refused calls")
    b = inbox(c, rx)
    eq([(m["seq"], m["body"]) for m in b["messages"]], [(1, "fills it")], "mailbox after 429")
    eq(b["last_seq"], 1, "last_seq (no seq given to a refused call)")
    # room for one: the call's message fills the mailbox while it waits
    inbox(c, rx, after=1)
    w = call_bg(ctx, srv, {"name": "svc"}, "first", tx.token)
    m = poll_msgs(c, rx, 1)[0]
    expect_error(call(c, {"name": "svc"}, "second", tx.token), 429, "mailbox_full")
    expect_error(c.post("/v1/send", {"to": {"name": "svc"}, "body": "x"}), 429, "mailbox_full")
    replied(c, call_msg(m), "done", rx.token)
    eq(answer_of(w.result(10)), {"body": "done", "from": rx.id}, "the call that fitted")
    counts(c, {"pending": 0, "answered": 1, "timed_out": 0, "receiver_gone": 0, "caller_gone": 0},
           "after 429s and one answer")
    srv.stop_clean()


@test
def test_call_limit_reached(ctx):
    srv = ctx.start("--max-waiters", "1")
    c = ctx.client(srv)
    rx, other = c.session(), c.session()
    w = call_bg(ctx, srv, {"session": rx.id}, "first")
    m = poll_msgs(c, rx, 1)[0]
    eq(stats_calls(c)["pending"], 1, "pending")
    # a second call, and any other long-poll, is refused at once
    r = call(c, {"session": rx.id}, "second", timeout_ms=5000)
    expect_error(r, 503, "limit_reached")
    check(r.elapsed < 0.5, f"limit_reached took {r.elapsed:.2f} s")
    expect_error(call(c, {"session": other.id}, "third"), 503, "limit_reached")
    r = c.get(f"/v1/sessions/{other.id}/messages?wait=5", token=other.token)
    expect_error(r, 503, "limit_reached")
    expect_error(c.get(name_path("awaited") + "?wait=5"), 503, "limit_reached")
    eq(len(inbox(c, rx)["messages"]), 1, "nothing delivered by the refused call")
    eq(inbox(c, other)["messages"], [], "nothing delivered by the refused call")
    replied(c, call_msg(m), "one", rx.token)
    eq(answer_of(w.result(10)), {"body": "one", "from": rx.id}, "the pending call")
    # room again
    w = call_bg(ctx, srv, {"session": other.id}, "after")
    m = poll_msgs(c, other, 1)[0]
    replied(c, call_msg(m), "two", other.token)
    eq(answer_of(w.result(10)), {"body": "two", "from": other.id}, "a call once there is room")
    eq(stats_calls(c)["pending"], 0, "pending at the end")
    srv.stop_clean()


@test
def test_call_payload_too_large(ctx):
    srv = ctx.start("--max-value", "100", "--max-body", "2000")
    c = ctx.client(srv)
    rx = c.session()
    expect_error(call(c, {"session": rx.id}, "x" * 99), 413, "payload_too_large")  # 101 bytes
    expect_error(call(c, {"session": rx.id}, {"a": "z" * 150}), 413, "payload_too_large")
    expect_error(call(c, {"session": rx.id}, "w" * 3000), 413, "payload_too_large")  # over --max-body
    eq(inbox(c, rx), {"messages": [], "last_seq": 0}, "nothing delivered")
    # exactly --max-value is fine
    w = call_bg(ctx, srv, {"session": rx.id}, "x" * 98)
    m = poll_msgs(c, rx, 1)[0]
    eq(m["body"], "x" * 98, "the call body at the limit")
    rt = call_msg(m)
    # a reply over --max-value, or over --max-body, is refused; the call still waits
    expect_error(reply(c, rt, "y" * 99, rx.token), 413, "payload_too_large")
    expect_error(reply(c, rt, ["y" * 200], rx.token), 413, "payload_too_large")
    expect_error(reply(c, rt, "y" * 3000, rx.token), 413, "payload_too_large")
    time.sleep(0.1)
    check(w.done_at is None, f"the call ended on a refused reply: {w.value.desc() if w.value else w.error}")
    replied(c, rt, "y" * 98, rx.token)
    eq(answer_of(w.result(10)), {"body": "y" * 98, "from": rx.id}, "answer at the limit")
    expect_json(c.healthz(), 200)
    srv.stop_clean()


@test
def test_call_timeout_at_deadline(ctx):
    c = ctx.client()
    rx = c.session()
    r = call(c, {"session": rx.id}, "late", timeout_ms=300)
    expect_error(r, 504, "call_timeout")
    check(0.3 <= r.elapsed <= 0.8, f"timeout_ms 300 answered after {r.elapsed:.3f} s")
    # the message stays; its reply has nowhere to go
    m = inbox(c, rx)["messages"][0]
    eq(m["body"], "late", "the call message stays in the mailbox")
    expect_error(reply(c, call_msg(m), "too late", rx.token), 404, "call_not_found")
    w = call_bg(ctx, ctx.shared, {"session": rx.id}, "later", None, 700)
    time.sleep(0.4)
    check(w.done_at is None, "timeout_ms 700 answered before 400 ms")
    r = w.result(5)
    expect_error(r, 504, "call_timeout")
    check(0.7 <= r.elapsed <= 1.3, f"timeout_ms 700 answered after {r.elapsed:.3f} s")


# ---- errors for the replier


@test
def test_reply_errors(ctx):
    c = ctx.client()
    rx, tx, third = c.session(), c.session(), c.session()
    gone = c.session()
    expect_status(c.delete_session(gone.id, gone.token), 204)
    w = call_bg(ctx, ctx.shared, {"session": rx.id}, "q", tx.token)
    rt = call_msg(poll_msgs(c, rx, 1)[0])
    expect_error(reply(c, rt, "no token"), 401, "missing_token")
    expect_error(reply(c, rt, no_body=True), 401, "missing_token")
    for tok in [tx.token, third.token, UNKNOWN_TOKEN, gone.token]:  # the caller's, another live one, unknown ones
        expect_error(reply(c, rt, "not mine", tok), 403, "bad_token")
    for cid in [UNKNOWN_CALL, "f" * 32, "abc", rt + "0", rt[:-1], "x" * 64]:
        expect_error(reply(c, cid, "unknown", rx.token), 404, "call_not_found")
    for raw in ["{", '{"body": 01}', "[1] x"]:
        expect_error(reply(c, rt, token=rx.token, raw=raw), 400, "bad_request")
    time.sleep(0.1)
    check(w.done_at is None, f"the call ended on a refused reply: {w.value.desc() if w.value else w.error}")
    replied(c, rt, "the answer", rx.token)
    eq(answer_of(w.result(10)), {"body": "the answer", "from": rx.id}, "answer")
    # reply twice: the call is over
    expect_error(reply(c, rt, "again", rx.token), 404, "call_not_found")
    expect_error(reply(c, rt, no_body=True, token=rx.token), 404, "call_not_found")
    expect_error(c.get("/v1/call"), 405, "method_not_allowed")
    expect_error(c.get("/v1/replies/" + rt), 405, "method_not_allowed")


@test
def test_reply_by_another_group_member(ctx):
    c = ctx.client()
    g = ctx.uid()
    a, b = c.session(), c.session()
    for s in (a, b):
        expect_status(c.put(group_path(g), token=s.token), 201)
    w = call_bg(ctx, ctx.shared, {"group": g, "pick": "round_robin"}, "which")
    got = None
    end = time.monotonic() + 5
    while got is None and time.monotonic() < end:
        for s, o in ((a, b), (b, a)):
            msgs = inbox(c, s)["messages"]
            if msgs:
                got = (s, o, msgs[0])
        time.sleep(0.02)
    check(got is not None, "the call reached neither member")
    picked, other, m = got
    eq(inbox(c, other)["messages"], [], "the member not picked")
    expect_error(reply(c, call_msg(m), "me too", other.token), 403, "bad_token")
    replied(c, m["reply_to"], "me", picked.token)
    eq(answer_of(w.result(10)), {"body": "me", "from": picked.id}, "answer from the picked member")


# ---- the receiver's end


@test
def test_call_receiver_deleted(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    rx, tx, keep = c.session(), c.session(), c.session()
    expect_status(c.put_name("svc", 1, rx.token), 201)
    expect_status(c.post("/v1/send", {"to": {"session": rx.id}, "body": "other"}), 202)
    w1 = call_bg(ctx, srv, {"name": "svc"}, "one", tx.token)
    w2 = call_bg(ctx, srv, {"session": rx.id}, "two")
    w3 = call_bg(ctx, srv, {"session": keep.id}, "to keep")
    rt = call_msg(poll_msgs(c, rx, 3)[1])
    rt3 = call_msg(poll_msgs(c, keep, 1)[0])
    eq(stats_calls(c)["pending"], 3, "pending")
    time.sleep(0.1)
    check(all(w.done_at is None for w in (w1, w2, w3)), "a call answered early")
    t_del = time.monotonic()
    expect_status(c.delete_session(rx.id, rx.token), 204)
    for w in (w1, w2):
        expect_error(w.result(5), 503, "receiver_gone")
        took = w.done_at - t_del
        check(took < 0.1, f"receiver_gone came {took * 1000:.0f} ms after the delete")
    check(w3.done_at is None, "a call to another session ended too")
    r = reply(c, rt, "late", rx.token)  # its token is unknown now, and the call over
    if r.status == 403:
        expect_error(r, 403, "bad_token")
    else:
        expect_error(r, 404, "call_not_found")
    expect_error(reply(c, rt, "late", keep.token), 404, "call_not_found")
    # the receiver's messages (plain and calls) went with it
    s = expect_json(c.get("/v1/stats"), 200)
    eq(s["queued_messages"], 1, "queued messages (only the kept session's call)")
    expect_error(c.get_name("svc"), 404, "name_not_found")
    replied(c, rt3, "kept", keep.token)
    eq(answer_of(w3.result(5)), {"body": "kept", "from": keep.id}, "the other call")
    counts(c, {"pending": 0, "answered": 1, "timed_out": 0, "receiver_gone": 2, "caller_gone": 0}, "at the end")
    srv.stop_clean()


@test
def test_call_receiver_expires(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    rx = c.session(ttl=1)
    t_life = time.monotonic()
    expect_status(c.put_name("svc", 1, rx.token), 201)  # its last sign of life
    t_life_end = time.monotonic()
    expect_status(c.post("/v1/send", {"to": {"session": rx.id}, "body": "other"}), 202)
    w = call_bg(ctx, srv, {"name": "svc"}, "will you answer?", None, 10000)
    # (reading rx's mailbox with its token would be a sign of life: count instead)
    queued = wait_until(lambda: expect_json(c.get("/v1/stats"), 200)["queued_messages"] == 2, 0.8, 0.02)
    check(queued is not None, "the call message never reached the mailbox")
    check(w.done_at is None, f"the call ended at once: {w.value.desc() if w.value else w.error}")
    r = w.result(8)
    expect_error(r, 503, "receiver_gone")
    at = w.done_at
    check(at >= t_life + 1.0, f"receiver_gone {at - t_life:.2f} s after the last sign of life (ttl 1): too early")
    check(at <= t_life_end + 2.3, f"receiver_gone {at - t_life_end:.2f} s after the last sign of life (ttl 1)")
    # the same step released the session, its name and its messages
    expect_error(c.get_session(rx.id), 404, "session_not_found")
    expect_error(c.get_name("svc"), 404, "name_not_found")
    s = expect_json(c.get("/v1/stats"), 200)
    eq(s["queued_messages"], 0, "queued messages after the expiry")
    eq(s["sessions"], 0, "sessions after the expiry")
    counts(c, {"pending": 0, "answered": 0, "timed_out": 0, "receiver_gone": 1, "caller_gone": 0}, "at the end")
    srv.stop_clean()


# ---- the caller's end


@test
def test_call_caller_disconnects(ctx):
    c = ctx.client()
    rx = c.session()
    rc = raw_call(ctx.shared, {"session": rx.id}, "hang up", timeout_ms=10000)
    m = poll_msgs(c, rx, 1)[0]
    rt = call_msg(m)
    rc.close()
    time.sleep(0.15)
    expect_error(reply(c, rt, "nobody listens", rx.token), 404, "call_not_found")
    # the message stays, acknowledged as any other
    eq(inbox(c, rx)["messages"], [m], "the message after its caller left")
    eq(inbox(c, rx, after=m["seq"])["messages"], [], "acknowledged")


@test
def test_call_outlives_idle_timeout(ctx):
    # a waiting call is not idle: its connection stays open past --idle-timeout
    srv = ctx.start("--idle-timeout", "1")
    c = ctx.client(srv)
    rx = c.session(ttl=30)
    w1 = call_bg(ctx, srv, {"session": rx.id}, "slow", None, 5000)
    w2 = call_bg(ctx, srv, {"session": rx.id}, "never", None, 1800)
    msgs = poll_msgs(c, rx, 2)
    time.sleep(1.8)
    slow = [m for m in msgs if m["body"] == "slow"][0]
    replied(c, call_msg(slow), "at last", rx.token)
    eq(answer_of(w1.result(5)), {"body": "at last", "from": rx.id}, "a call answered after the idle timeout")
    r = w2.result(5)
    expect_error(r, 504, "call_timeout")
    check(r.elapsed >= 1.75, f"timeout_ms 1800 answered after {r.elapsed:.2f} s")
    srv.stop_clean()


# ---- shutdown, counts


@test
def test_sigterm_answers_pending_calls(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    rx = c.session()
    waiters = [call_bg(ctx, srv, {"session": rx.id}, i, None, 30000) for i in range(4)]
    poll_msgs(c, rx, 4)
    time.sleep(0.1)
    check(all(w.done_at is None for w in waiters), "a call answered early")
    t0 = time.monotonic()
    srv.stop_clean()
    for w in waiters:
        expect_error(w.result(5), 503, "shutting_down")
    took = max(w.done_at for w in waiters) - t0
    check(took < 2.0, f"calls answered {took:.2f} s after SIGTERM")


@test
def test_calls_stats_and_metrics(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    zero = {"pending": 0, "answered": 0, "timed_out": 0, "receiver_gone": 0, "caller_gone": 0}
    counts(c, zero, "at start")
    rx, rx2, tx = c.session(), c.session(), c.session()
    expect_status(c.put_name("svc", 1, rx.token), 201)
    # refused calls count nowhere
    expect_error(call(c, {"name": "nobody"}, 1), 404, "name_not_found")
    expect_error(call(c, {"prop": "svc"}, 1), 400, "bad_request")
    expect_error(call(c, {"name": "svc"}, 1, timeout_ms=0), 400, "bad_request")
    counts(c, zero, "after refused calls")
    # two pending, then answered
    w1 = call_bg(ctx, srv, {"name": "svc"}, "a", tx.token)
    w2 = call_bg(ctx, srv, {"session": rx.id}, "b")
    msgs = poll_msgs(c, rx, 2)
    counts(c, dict(zero, pending=2), "with two calls pending")
    for m in msgs:
        replied(c, call_msg(m), m["body"] * 2, rx.token)
    eq(sorted(answer_of(w.result(5))["body"] for w in (w1, w2)), ["aa", "bb"], "answers")
    expect_error(reply(c, msgs[0]["reply_to"], "again", rx.token), 404, "call_not_found")
    counts(c, dict(zero, answered=2), "after two answers")
    # one timed out
    expect_error(call(c, {"name": "svc"}, "t", timeout_ms=50), 504, "call_timeout")
    counts(c, dict(zero, answered=2, timed_out=1), "after a timeout")
    # one whose receiver went away
    w = call_bg(ctx, srv, {"session": rx2.id}, "g")
    poll_msgs(c, rx2, 1)
    expect_status(c.delete_session(rx2.id, rx2.token), 204)
    expect_error(w.result(5), 503, "receiver_gone")
    counts(c, dict(zero, answered=2, timed_out=1, receiver_gone=1), "after a receiver's end")
    # one whose caller went away
    rc = raw_call(srv, {"name": "svc"}, "bye", tx.token)
    poll_msgs(c, rx, 4)
    eq(stats_calls(c)["pending"], 1, "pending before the caller leaves")
    rc.close()
    want = dict(zero, answered=2, timed_out=1, receiver_gone=1, caller_gone=1)
    ok = wait_until(lambda: stats_calls(c) == want, 2.0, 0.05)
    check(ok is not None, f"/v1/stats calls 2 s after the caller left: {stats_calls(c)}, want {want}")
    counts(c, want, "at the end")
    srv.stop_clean()


# ---- load


@test
def test_500_concurrent_calls_round_robin(ctx):
    n, nresp = 500, 4
    raise_fd_limit(4 * n + 256)
    srv = ctx.start()
    c = ctx.client(srv)
    g = "workers"
    responders = [c.session(ttl=60) for _ in range(nresp)]
    for s in responders:
        expect_status(c.put(group_path(g), token=s.token), 201)
    stop = threading.Event()
    handled = {s.id: [] for s in responders}

    def responder(s):
        rcl = ctx.client(srv, timeout=15)
        after = 0
        while not stop.is_set():
            b = inbox(rcl, s, after=after, wait=1, max=1000, timeout=10)
            for m in b["messages"]:
                rt = call_msg(m, f"message to responder {s.id}")
                handled[s.id].append(m["body"]["i"])
                replied(rcl, rt, {"echo": m["body"]}, s.token)
                after = m["seq"]
        return after

    threads = [in_thread(responder, s) for s in responders]
    conns = []
    tag = ctx.uid()
    try:
        time.sleep(0.2)
        t0 = time.monotonic()
        for i in range(n):
            conns.append(raw_call(srv, {"group": g, "pick": "round_robin"}, {"i": i, "tag": tag, "pad": "p" * (i % 7)},
                                  None, 15000))
        by_from = {s.id: [] for s in responders}
        for i, rc in enumerate(conns):
            status, _, body = rc.read_response()
            eq(status, 200, f"call {i}: {body[:120]!r}")
            a = json.loads(body)
            eq(a["body"], {"echo": {"i": i, "tag": tag, "pad": "p" * (i % 7)}}, f"call {i}: answer body")
            eq(set(a), {"body", "from"}, f"call {i}: answer fields")
            check(a["from"] in by_from, f"call {i}: from {a['from']!r} is not a responder")
            by_from[a["from"]].append(i)
        took = time.monotonic() - t0
    finally:
        stop.set()
        for rc in conns:
            rc.close()
    for t in threads:
        t.result(15)
    for s in responders:
        eq(sorted(handled[s.id]), sorted(by_from[s.id]), f"calls handled by {s.id} and answered from it")
    eq(sorted(len(v) for v in by_from.values()), [n // nresp] * nresp, "round-robin spread over the responders")
    check(took < 10.0, f"500 calls answered only after {took:.2f} s")
    counts(c, {"pending": 0, "answered": n, "timed_out": 0, "receiver_gone": 0, "caller_gone": 0}, "after the load")
    srv.stop_clean()
