"""Messages: POST /v1/send to a name, a session, every holder of a property,
every member of a group or one picked member; the long-poll receive of a
session's mailbox (seq, acknowledgement, at-least-once redelivery, max),
the lease held by a pending receive, --max-queue, --max-waiters, --max-value,
and shutdown with receives pending."""

import json
import resource
import time

from harness import (RawConn, check, eq, expect_error, expect_json,
                     expect_status, in_thread, name_path, q, test, wait_until)

UNKNOWN_TOKEN = "0" * 32
UNKNOWN_ID = "0123456789abcdef"


def prop_path(key):
    return "/v1/props/" + q(key, safe="/")


def group_path(group):
    return "/v1/groups/" + q(group, safe="/")


def send(c, to, body=None, token=None, **kw):
    """POST /v1/send {"to": to, "body": body}; raw= sends bytes as they are."""
    if "raw" in kw:
        return c.post("/v1/send", token=token, **kw)
    return c.post("/v1/send", {"to": to, "body": body}, token=token, **kw)


def sent(c, to, body=None, token=None, delivered=1, full=None):
    """A send that must answer 202 {"delivered": n} (plus "full" for a
    broadcast, when full is a list); returns the answer."""
    r = send(c, to, body, token)
    b = expect_json(r, 202)
    r.index  # every /v1 answer carries X-Rollcall-Index
    want = {"delivered": delivered}
    if full is not None:
        want["full"] = full
    eq(b, want, f"send to {to!r} answer")
    return b


def recv_path(sid, after=None, wait=None, max=None, extra=None):
    qs = []
    if after is not None:
        qs.append(f"after={after}")
    if wait is not None:
        qs.append(f"wait={wait}")
    if max is not None:
        qs.append(f"max={max}")
    if extra:
        qs.append(extra)
    return f"/v1/sessions/{sid}/messages" + ("?" + "&".join(qs) if qs else "")


def recv(c, s, token=None, **kw):
    """GET the messages of Session s (with its own token unless given)."""
    timeout = kw.pop("timeout", None)
    return c.get(recv_path(s.id, **kw), token=s.token if token is None else token,
                 timeout=timeout)


def check_page(r, what="receive"):
    """Asserts a 200 receive answer's shape; returns its body."""
    b = expect_json(r, 200)
    eq(set(b), {"messages", "last_seq"}, f"{what}: fields")
    check(isinstance(b["last_seq"], int), f"{what}: last_seq {b['last_seq']!r} not an integer")
    check(isinstance(b["messages"], list), f"{what}: messages not a list")
    for m in b["messages"]:
        eq(set(m), {"seq", "from", "to", "body"}, f"{what}: message fields")
    return b


def inbox(c, s, **kw):
    """The body of a receive (wait 0 unless given); shape checked."""
    return check_page(recv(c, s, **kw), f"receive of {s.id}")


def bodies(c, s, **kw):
    return [m["body"] for m in inbox(c, s, max=0, **kw)["messages"]]


def queued_of(c, s):
    return expect_json(c.get_session(s.id), 200)["queued"]


def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    check(soft == resource.RLIM_INFINITY or soft >= want,
          f"cannot open enough files: RLIMIT_NOFILE {soft} < {want}")


def nothing_read_yet(rc):
    """True when the server has sent nothing on a raw connection yet."""
    rc.sock.setblocking(False)
    try:
        data = rc.sock.recv(16)
    except BlockingIOError:
        data = None
    finally:
        rc.sock.setblocking(True)
        rc.sock.settimeout(10)
    return data is None


# ---- targets


@test
def test_send_to_name(ctx):
    c = ctx.client()
    k = ctx.uid()
    rx, tx = c.session(), c.session()
    expect_status(c.put_name(k, "svc", rx.token), 201)
    sent(c, {"name": k}, {"hello": "world"}, tx.token)
    sent(c, {"name": k}, "anonymous")  # no token: from is null
    b = inbox(c, rx)
    eq(b["messages"], [
        {"seq": 1, "from": tx.id, "to": {"name": k}, "body": {"hello": "world"}},
        {"seq": 2, "from": None, "to": {"name": k}, "body": "anonymous"},
    ], "messages")
    eq(b["last_seq"], 2, "last_seq")
    eq(inbox(c, tx)["messages"], [], "the sender's own mailbox")


@test
def test_send_to_session(ctx):
    c = ctx.client()
    rx, tx = c.session(), c.session()
    sent(c, {"session": rx.id}, [1, 2, 3], tx.token)
    sent(c, {"session": rx.id}, None, rx.token)  # to itself
    b = inbox(c, rx)
    eq(b["messages"], [
        {"seq": 1, "from": tx.id, "to": {"session": rx.id}, "body": [1, 2, 3]},
        {"seq": 2, "from": rx.id, "to": {"session": rx.id}, "body": None},
    ], "messages")


@test
def test_send_to_prop_every_holder(ctx):
    c = ctx.client()
    k = ctx.uid()
    holders = [c.session() for _ in range(3)]
    other, tx = c.session(), c.session()
    for i, h in enumerate(holders):
        expect_status(c.put(prop_path(k), {"value": i}, token=h.token), 201)
    sent(c, {"prop": k}, {"n": 1}, tx.token, delivered=3, full=[])
    for h in holders:
        eq(inbox(c, h)["messages"], [{"seq": 1, "from": tx.id, "to": {"prop": k}, "body": {"n": 1}}],
           f"holder {h.id}")
    eq(inbox(c, other)["messages"], [], "a session that does not hold the property")
    # a holder that removed the property no longer gets it
    expect_status(c.delete(prop_path(k), token=holders[0].token), 204)
    sent(c, {"prop": k}, 2, None, delivered=2, full=[])
    eq(bodies(c, holders[0]), [{"n": 1}], "removed holder")
    eq(bodies(c, holders[2]), [{"n": 1}, 2], "remaining holder")
    # nobody holds it: not an error
    sent(c, {"prop": ctx.uid()}, "x", tx.token, delivered=0, full=[])


@test
def test_send_to_group_every_member(ctx):
    c = ctx.client()
    g = ctx.uid()
    members = [c.session() for _ in range(4)]
    tx = c.session()
    for m in members:
        expect_status(c.put(group_path(g), {"value": m.id}, token=m.token), 201)
    sent(c, {"group": g}, "all", tx.token, delivered=4, full=[])
    for m in members:
        eq(inbox(c, m)["messages"], [{"seq": 1, "from": tx.id, "to": {"group": g}, "body": "all"}],
           f"member {m.id}")
    expect_status(c.delete(group_path(g), token=members[1].token), 204)
    sent(c, {"group": g}, "three", tx.token, delivered=3, full=[])
    eq(bodies(c, members[1]), ["all"], "member that left")
    eq(bodies(c, members[3]), ["all", "three"], "member that stayed")
    # a broadcast to an empty group delivers to nobody, without error
    sent(c, {"group": ctx.uid()}, "x", None, delivered=0, full=[])
    eq(bodies(c, tx), [], "sender's mailbox")


def _group_of(c, g, n):
    ms = [c.session() for _ in range(n)]
    for m in ms:
        expect_status(c.put(group_path(g), token=m.token), 201)
    return ms


def _counts(c, ms):
    return [len(bodies(c, m)) for m in ms]


@test
def test_send_pick_random(ctx):
    c = ctx.client()
    g = ctx.uid()
    ms = _group_of(c, g, 3)
    for i in range(30):
        sent(c, {"group": g, "pick": "random"}, i, None, delivered=1)
    got = {}
    for m in ms:
        for msg in inbox(c, m, max=0)["messages"]:
            eq(msg["to"], {"group": g, "pick": "random"}, "to as given")
            check(msg["body"] not in got, f"message {msg['body']} delivered twice")
            got[msg["body"]] = m.id
    eq(sorted(got), list(range(30)), "each message delivered exactly once")
    check(len(set(got.values())) >= 2, "30 random picks all went to one member")


@test
def test_send_pick_round_robin_spreads(ctx):
    c = ctx.client()
    g = ctx.uid()
    ms = _group_of(c, g, 3)
    for i in range(3):
        sent(c, {"group": g, "pick": "round_robin"}, i, None, delivered=1)
    eq(sorted(_counts(c, ms)), [1, 1, 1], "3 round-robin sends over 3 members")
    for i in range(6):
        sent(c, {"group": g, "pick": "round_robin"}, i, None, delivered=1)
    eq(_counts(c, ms), [3, 3, 3], "9 round-robin sends over 3 members")


@test
def test_send_pick_hash_sticky(ctx):
    c = ctx.client()
    g = ctx.uid()
    ms = _group_of(c, g, 3)
    for i in range(5):
        sent(c, {"group": g, "pick": "hash", "hash_key": "user-42"}, i, None, delivered=1)
    counts = _counts(c, ms)
    eq(sorted(counts), [0, 0, 5], "5 sends with the same hash_key")
    winner = ms[counts.index(5)]
    msg = inbox(c, winner)["messages"][0]
    eq(msg["to"], {"group": g, "pick": "hash", "hash_key": "user-42"}, "to as given")
    # the same member as GET ?pick=hash with that key
    r = c.get(group_path(g) + "?pick=hash&hash_key=user-42")
    eq(expect_json(r, 200)["member"]["session"], winner.id, "GET pick=hash agrees with send")
    # many keys reach more than one member, each key always the same one
    owner = {}
    for rnd in range(2):
        for i in range(20):
            sent(c, {"group": g, "pick": "hash", "hash_key": f"k{i}"}, [rnd, i], None)
    for m in ms:
        for msg in inbox(c, m, max=0)["messages"]:
            if isinstance(msg["body"], list):
                key = msg["body"][1]
                check(owner.setdefault(key, m.id) == m.id, f"hash_key k{key} went to two members")
    eq(len(owner), 20, "every hash_key delivered")
    check(len(set(owner.values())) >= 2, "20 hash keys all went to one member")


@test
def test_send_pick_empty_group(ctx):
    c = ctx.client()
    g = ctx.uid()
    for to in [{"group": g, "pick": "random"}, {"group": g, "pick": "round_robin"},
               {"group": g, "pick": "hash", "hash_key": "x"}]:
        expect_error(send(c, to, 1), 404, "group_empty")
    m = c.session()
    expect_status(c.put(group_path(g), token=m.token), 201)
    expect_status(c.delete(group_path(g), token=m.token), 204)
    expect_error(send(c, {"group": g, "pick": "random"}, 1), 404, "group_empty")
    eq(queued_of(c, m), 0, "queued of the member that left")


@test
def test_send_not_found(ctx):
    c = ctx.client()
    tx = c.session()
    expect_error(send(c, {"name": ctx.uid()}, 1, tx.token), 404, "name_not_found")
    expect_error(send(c, {"session": UNKNOWN_ID}, 1, tx.token), 404, "session_not_found")
    gone = c.session()
    k = ctx.uid()
    expect_status(c.put_name(k, 1, gone.token), 201)
    expect_status(c.delete_session(gone.id, gone.token), 204)
    expect_error(send(c, {"session": gone.id}, 1), 404, "session_not_found")
    expect_error(send(c, {"name": k}, 1), 404, "name_not_found")
    expect_json(c.healthz(), 200)


# ---- bad requests


@test
def test_send_bad_target(ctx):
    c = ctx.client()
    k, g = ctx.uid(), ctx.uid()
    rx = c.session()
    expect_status(c.put_name(k, 1, rx.token), 201)
    expect_status(c.put(prop_path(k), token=rx.token), 201)
    expect_status(c.put(group_path(g), token=rx.token), 201)
    bad = [
        {"body": 1},                                          # no "to"
        {"to": k, "body": 1},                                 # not an object
        {"to": [{"name": k}], "body": 1},
        {"to": None, "body": 1},
        {"to": 5, "body": 1},
        {"to": {}, "body": 1},                                # no target kind
        {"to": {"nme": k}, "body": 1},
        {"to": {"name": k, "session": rx.id}, "body": 1},     # two kinds at once
        {"to": {"name": k, "prop": k}, "body": 1},
        {"to": {"group": g, "prop": k}, "body": 1},
        {"to": {"name": k, "pick": "random"}, "body": 1},     # pick on a non-group target
        {"to": {"session": rx.id, "pick": "round_robin"}, "body": 1},
        {"to": {"prop": k, "pick": "hash", "hash_key": "x"}, "body": 1},
        {"to": {"group": g, "pick": "hash"}, "body": 1},      # hash without hash_key
        {"to": {"group": g, "pick": "first"}, "body": 1},     # unknown pick
        {"to": {"group": g, "pick": "RANDOM"}, "body": 1},
        {"to": {"group": g, "pick": ""}, "body": 1},
        {"to": {"group": g, "pick": 1}, "body": 1},
    ]
    for body in bad:
        r = c.post("/v1/send", body)
        expect_error(r, 400, "bad_request")
    for raw in ["", "{", "[1]", '"to"', '{"to": {"name": "a"}, "body": 01}',
                '{"to": {"name": "a"}, "body": 1} x', '{"to": {"name": "a"}, "body": NaN}']:
        expect_error(send(c, None, raw=raw), 400, "bad_request")
    eq(inbox(c, rx)["messages"], [], "nothing delivered by a bad request")
    eq(inbox(c, rx)["last_seq"], 0, "no seq given out")
    expect_json(c.healthz(), 200)


@test
def test_send_invalid_key(ctx):
    c = ctx.client()
    rx = c.session()
    k = ctx.uid()
    expect_status(c.put_name(k, 1, rx.token), 201)
    expect_status(c.put(prop_path(k), token=rx.token), 201)
    expect_status(c.put(group_path(k), token=rx.token), 201)
    for kind in ["name", "session", "prop", "group"]:
        for key in ["", "a\u0001b", "\u001f", "a\u007f", "tab\there", "x" * 513]:
            to = {kind: key}
            if kind == "group":
                expect_error(send(c, {"group": key, "pick": "random"}, 1), 400, "invalid_key")
            expect_error(send(c, to, 1), 400, "invalid_key")
        # "\u0000" inside a key: not to be read as the key cut at the NUL
        target = rx.id if kind == "session" else k
        for tail in ["\\u0000", "\\u0000x", "\\u0000\\u0000"]:
            raw = '{"to": {"%s": "%s%s"}, "body": 1}' % (kind, target, tail)
            expect_error(send(c, None, raw=raw), 400, "invalid_key")
    # a key of 512 bytes is fine (and not there); multi-byte UTF-8 too
    expect_error(send(c, {"name": "n" * 512}, 1), 404, "name_not_found")
    expect_error(send(c, {"name": "\u00e9" * 256}, 1), 404, "name_not_found")
    expect_error(send(c, {"name": "\u00e9" * 257}, 1), 400, "invalid_key")
    eq(inbox(c, rx)["messages"], [], "nothing delivered to the holder of the cut key")
    # the target itself still works
    sent(c, {"name": k}, "ok")
    eq(bodies(c, rx), ["ok"], "mailbox")


@test
def test_send_payload_too_large(ctx):
    srv = ctx.start("--max-value", "100", "--max-body", "2000")
    c = ctx.client(srv)
    rx = c.session()
    g = "g"
    expect_status(c.put(group_path(g), token=rx.token), 201)
    r = send(c, {"session": rx.id}, "x" * 99)  # 101 bytes serialized
    expect_error(r, 413, "payload_too_large")
    expect_error(send(c, {"group": g}, ["y" * 200]), 413, "payload_too_large")
    expect_error(send(c, {"group": g}, {"a": "z" * 150}), 413, "payload_too_large")
    # the whole request over --max-body, on the same connection
    expect_error(send(c, {"session": rx.id}, "w" * 3000), 413, "payload_too_large")
    eq(inbox(c, rx)["messages"], [], "nothing delivered")
    # exactly --max-value is fine; the target's size does not count
    sent(c, {"session": rx.id}, "x" * 98)
    sent(c, {"group": g, "pick": "hash", "hash_key": "h" * 300}, 1)
    eq(bodies(c, rx), ["x" * 98, 1], "delivered")
    expect_json(c.healthz(), 200)
    srv.stop_clean()


@test
def test_send_bad_token(ctx):
    c = ctx.client()
    rx = c.session()
    gone = c.session()
    expect_status(c.delete_session(gone.id, gone.token), 204)
    for tok in [UNKNOWN_TOKEN, "x", gone.token]:
        expect_error(send(c, {"session": rx.id}, 1, tok), 403, "bad_token")
    eq(inbox(c, rx)["messages"], [], "nothing delivered with a bad token")


@test
def test_send_body_echoed_exactly(ctx):
    c = ctx.client()
    rx, tx = c.session(), c.session()
    values = [
        None, True, False, 0, -1, 12345678901234567890, -0.5, 1.5e300, "", "nul\u0000inside",
        "caf\u00e9 \U0001F600 \"quoted\" \\ / \n\t", [], {}, [1, [2, [3, {"d": None}]]],
        {"nested": {"list": [1, "two", {"three": 3}], "empty": {}}, "u": "\u2028"},
    ]
    for v in values:
        sent(c, {"session": rx.id}, v, tx.token)
    msgs = inbox(c, rx, max=0)["messages"]
    eq([m["body"] for m in msgs], values, "bodies")
    eq([m["seq"] for m in msgs], list(range(1, len(values) + 1)), "seqs")
    check(all(m["from"] == tx.id for m in msgs), "from is the sender's id")
    # a big integer and a body sent with its own spacing come back as JSON
    # of the same value, digit for digit
    raw = '{"to": {"session": "%s"}, "body": {"big": 123456789012345678901234567890, "s" : [ 1 , 2 ]}}' % rx.id
    expect_json(send(c, None, raw=raw), 202)
    r = recv(c, rx, after=len(values))
    check(b"123456789012345678901234567890" in r.body, f"big integer not kept: {r.body[:200]!r}")
    eq(check_page(r)["messages"][0]["body"], {"big": 123456789012345678901234567890, "s": [1, 2]}, "body")
    # "to" is echoed as given, extra group fields included
    sent(c, {"session": rx.id}, 1, None)
    eq(inbox(c, rx, after=len(values) + 1)["messages"][0]["to"], {"session": rx.id}, "to")


# ---- the mailbox limit


@test
def test_max_queue_single_target(ctx):
    srv = ctx.start("--max-queue", "2")
    c = ctx.client(srv)
    rx, tx = c.session(), c.session()
    expect_status(c.put_name("svc", 1, rx.token), 201)
    sent(c, {"name": "svc"}, "one", tx.token)
    sent(c, {"session": rx.id}, "two", tx.token)
    expect_error(send(c, {"session": rx.id}, "three", tx.token), 429, "mailbox_full")
    expect_error(send(c, {"name": "svc"}, "three", tx.token), 429, "mailbox_full")
    expect_status(c.put("/v1/groups/g", token=rx.token), 201)
    expect_error(send(c, {"group": "g", "pick": "random"}, "three"), 429, "mailbox_full")
    b = inbox(c, rx)
    eq([(m["seq"], m["body"]) for m in b["messages"]], [(1, "one"), (2, "two")], "mailbox after 429")
    eq(b["last_seq"], 2, "last_seq (no seq given to a refused message)")
    eq(queued_of(c, rx), 2, "queued")
    # acknowledging one makes room for one
    eq(inbox(c, rx, after=1)["messages"][0]["seq"], 2, "after ack")
    sent(c, {"session": rx.id}, "four", tx.token)
    expect_error(send(c, {"session": rx.id}, "five", tx.token), 429, "mailbox_full")
    eq([(m["seq"], m["body"]) for m in inbox(c, rx)["messages"]], [(2, "two"), (3, "four")], "mailbox")
    srv.stop_clean()


@test
def test_max_queue_broadcast_lists_full(ctx):
    srv = ctx.start("--max-queue", "2")
    c = ctx.client(srv)
    full_one, a, b = c.session(), c.session(), c.session()
    for s in (full_one, a, b):
        expect_status(c.put("/v1/groups/g", token=s.token), 201)
        expect_status(c.put("/v1/props/p", token=s.token), 201)
    sent(c, {"session": full_one.id}, "f1")
    sent(c, {"session": full_one.id}, "f2")
    sent(c, {"group": "g"}, "to all", None, delivered=2, full=[full_one.id])
    sent(c, {"prop": "p"}, "to holders", None, delivered=2, full=[full_one.id])
    eq(bodies(c, full_one), ["f1", "f2"], "the full mailbox is unchanged")
    for s in (a, b):
        eq(bodies(c, s), ["to all", "to holders"], f"mailbox of {s.id}")
    # now a and b are full too
    sent(c, {"group": "g"}, "x", None, delivered=0, full=[full_one.id, a.id, b.id])
    srv.stop_clean()


# ---- receive


@test
def test_receive_seq_ack_redelivery(ctx):
    c = ctx.client()
    rx = c.session()
    b = inbox(c, rx)
    eq(b, {"messages": [], "last_seq": 0}, "empty mailbox before the first message")
    for i in range(1, 6):
        sent(c, {"session": rx.id}, f"m{i}")
    b = inbox(c, rx)
    eq([(m["seq"], m["body"]) for m in b["messages"]], [(i, f"m{i}") for i in range(1, 6)], "in arrival order")
    eq(b["last_seq"], 5, "last_seq")
    # reading without acknowledging gives the same again (at least once)
    eq(inbox(c, rx, after=0), b, "second read with after=0")
    eq(inbox(c, rx), b, "second read without after")
    # after=2 removes seq 1 and 2
    eq([m["seq"] for m in inbox(c, rx, after=2)["messages"]], [3, 4, 5], "after=2")
    eq([m["seq"] for m in inbox(c, rx, after=0)["messages"]], [3, 4, 5], "acknowledged ones are gone")
    eq(queued_of(c, rx), 3, "queued after ack")
    # max limits the page; the rest stays
    b = inbox(c, rx, max=2)
    eq([m["seq"] for m in b["messages"]], [3, 4], "max=2")
    eq(b["last_seq"], 5, "last_seq with max")
    eq([m["seq"] for m in inbox(c, rx, after=4, max=1)["messages"]], [5], "after=4 max=1")
    # acknowledging everything; seqs go on from last_seq
    eq(inbox(c, rx, after=5), {"messages": [], "last_seq": 5}, "all acknowledged")
    sent(c, {"session": rx.id}, "m6")
    eq([(m["seq"], m["body"]) for m in inbox(c, rx)["messages"]], [(6, "m6")], "numbering goes on")
    # after beyond last_seq acknowledges what there is
    eq(inbox(c, rx, after=1000), {"messages": [], "last_seq": 6}, "after past last_seq")
    eq(queued_of(c, rx), 0, "queued")


@test
def test_receive_max_default_and_cap(ctx):
    c = ctx.client()
    rx = c.session()
    for i in range(1001):
        sent(c, {"session": rx.id}, i)
    eq(len(inbox(c, rx)["messages"]), 100, "default max")
    eq(len(inbox(c, rx, max=0)["messages"]), 1000, "max=0")
    eq(len(inbox(c, rx, max=5000)["messages"]), 1000, "max=5000")
    b = inbox(c, rx, max=1000)
    eq([m["body"] for m in b["messages"]], list(range(1000)), "a page of 1000 in order")
    eq(b["last_seq"], 1001, "last_seq")
    eq([m["seq"] for m in inbox(c, rx, after=1000)["messages"]], [1001], "the last one")


@test
def test_receive_errors(ctx):
    c = ctx.client()
    rx, other = c.session(), c.session()
    sent(c, {"session": rx.id}, "kept")
    gone = c.session()
    expect_status(c.delete_session(gone.id, gone.token), 204)
    # an unknown session is 404 whatever the token
    for sid in [UNKNOWN_ID, gone.id]:
        for tok in [None, rx.token, UNKNOWN_TOKEN, gone.token]:
            r = c.get(recv_path(sid, wait=5), token=tok)
            expect_error(r, 404, "session_not_found")
            check(r.elapsed < 0.5, f"404 took {r.elapsed:.2f} s")
    expect_error(c.get(recv_path(rx.id)), 401, "missing_token")
    expect_error(c.get(recv_path(rx.id), token=other.token), 403, "bad_token")
    expect_error(c.get(recv_path(rx.id), token=UNKNOWN_TOKEN), 403, "bad_token")
    expect_error(c.get(recv_path(rx.id, after=1, wait=1), token=other.token), 403, "bad_token")
    for extra in ["after=-1", "wait=301", "max=x", "after=1.5", "after=abc", "after=",
                  "wait=-1", "wait=abc", "max=-1", "max=1e3", "after=%2B1"]:
        r = c.get(recv_path(rx.id, extra=extra), token=rx.token)
        expect_error(r, 400, "bad_request")
        check(r.elapsed < 0.5, f"{extra} took {r.elapsed:.2f} s")
    # a bad query acknowledges nothing, even with after=1 in it
    expect_error(c.get(recv_path(rx.id, after=1, max="x"), token=rx.token), 400, "bad_request")
    expect_error(c.get(recv_path(rx.id, after=1, wait=301), token=rx.token), 400, "bad_request")
    # neither does another session's token
    expect_error(c.get(recv_path(rx.id, after=1), token=other.token), 403, "bad_token")
    eq(bodies(c, rx), ["kept"], "the message is still there")
    eq(inbox(c, other)["messages"], [], "the other session's mailbox")


@test
def test_bad_input_keeps_server_and_queue(ctx):
    c = ctx.client()
    rx = c.session()
    for i in range(3):
        sent(c, {"session": rx.id}, {"i": i})
    junk = [b"{" * 600, b'{"to": {"session": "' + rx.id.encode() + b'"}, "body": "\xff"}',
            b'{"to": {"session": "' + rx.id.encode() + b'"}, "body": [1,}', b"\x00\x01\x02",
            b'{"to": {"session": "' + rx.id.encode() + b'"}, "body": ' + b"[" * 600 + b"]" * 600 + b"}"]
    for raw in junk:
        expect_error(send(c, None, raw=raw), 400, "bad_request")
    expect_error(send(c, {"session": rx.id, "name": "x"}, 1), 400, "bad_request")
    expect_error(send(c, {"session": ""}, 1), 400, "invalid_key")
    expect_error(c.get(recv_path(rx.id, after=3, wait=999), token=rx.token), 400, "bad_request")
    expect_error(c.get(recv_path(rx.id, after=3)), 401, "missing_token")
    expect_error(c.request("DELETE", "/v1/send"), 405, "method_not_allowed")
    rc = RawConn(ctx.shared)
    rc.send(b"POST /v1/send HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{\"to\":")
    rc.close()  # a body cut short by a client that went away
    eq(expect_json(c.healthz(), 200), {"status": "ok"}, "healthz")
    eq([m["body"] for m in inbox(c, rx)["messages"]], [{"i": 0}, {"i": 1}, {"i": 2}], "queued messages intact")
    eq(queued_of(c, rx), 3, "queued")


@test
def test_sessions_show_queued(ctx):
    c = ctx.client()
    rx = c.session()
    eq(queued_of(c, rx), 0, "queued of a new session")
    for i in range(3):
        sent(c, {"session": rx.id}, i)
    d = expect_json(c.get_session(rx.id), 200)
    eq(d["queued"], 3, "detail queued")

    def listed():
        b = expect_json(c.get(f"/v1/sessions?limit=20&after={rx.id[:15]}"), 200)
        mine = [e for e in b["sessions"] if e["id"] == rx.id]
        eq(len(mine), 1, "the session in the listing")
        return mine[0]["queued"]
    eq(listed(), 3, "listing queued")
    inbox(c, rx, after=2)
    eq(queued_of(c, rx), 1, "detail queued after ack")
    eq(listed(), 1, "listing queued after ack")
    # reading without after changes nothing
    inbox(c, rx)
    eq(queued_of(c, rx), 1, "queued after a read")


# ---- long-poll


@test
def test_receive_waits_and_answers_on_send(ctx):
    c = ctx.client()
    rx = c.session()
    sent(c, {"session": rx.id}, "old1")
    sent(c, {"session": rx.id}, "old2")
    # messages already there: answered at once even with a wait
    r = recv(c, rx, wait=5)
    eq(len(check_page(r)["messages"]), 2, "queued messages")
    check(r.elapsed < 0.5, f"receive with messages waited {r.elapsed:.2f} s")
    # acknowledges 1 and 2, then waits for 3
    w = in_thread(lambda: recv(ctx.client(), rx, after=2, wait=5))
    time.sleep(0.5)
    check(w.done_at is None, "the receive answered before the send")
    t_send = time.monotonic()
    sent(c, {"session": rx.id}, {"new": True})
    b = check_page(w.result(10))
    took = w.done_at - t_send
    check(took < 0.5, f"receive answered {took:.2f} s after the send")
    eq([(m["seq"], m["body"]) for m in b["messages"]], [(3, {"new": True})], "messages")
    eq(b["last_seq"], 3, "last_seq")


@test
def test_receive_wait_deadline_empty(ctx):
    c = ctx.client()
    rx = c.session()
    r = recv(c, rx, wait=1)
    eq(check_page(r), {"messages": [], "last_seq": 0}, "empty at the deadline")
    check(0.9 <= r.elapsed <= 2.0, f"wait=1 answered after {r.elapsed:.2f} s")
    sent(c, {"session": rx.id}, 1)
    r = recv(c, rx, after=1, wait=1)
    eq(check_page(r), {"messages": [], "last_seq": 1}, "empty at the deadline after an ack")
    check(0.9 <= r.elapsed <= 2.0, f"wait=1 answered after {r.elapsed:.2f} s")
    r = recv(c, rx, wait=0)
    check(r.elapsed < 0.5, f"wait=0 took {r.elapsed:.2f} s")


@test
def test_newer_receive_ends_older(ctx):
    c = ctx.client()
    rx = c.session()
    old = in_thread(lambda: recv(ctx.client(), rx, wait=10, timeout=15))
    time.sleep(0.4)
    check(old.done_at is None, "the first receive answered early")
    t_new = time.monotonic()
    new = in_thread(lambda: recv(ctx.client(), rx, wait=5))
    b = check_page(old.result(5), "older receive")
    eq(b, {"messages": [], "last_seq": 0}, "older receive's answer")
    check(old.done_at - t_new < 1.0, f"older receive ended {old.done_at - t_new:.2f} s after the newer began")
    time.sleep(0.2)
    check(new.done_at is None, "the newer receive answered without a message")
    sent(c, {"session": rx.id}, "for the newer")
    eq(check_page(new.result(5))["messages"][0]["body"], "for the newer", "newer receive gets the message")


@test
def test_receive_session_deleted_while_waiting(ctx):
    c = ctx.client()
    rx = c.session()
    w = in_thread(lambda: recv(ctx.client(), rx, wait=10, timeout=15))
    time.sleep(0.4)
    check(w.done_at is None, "the receive answered early")
    t_del = time.monotonic()
    expect_status(c.delete_session(rx.id, rx.token), 204)
    expect_error(w.result(5), 404, "session_not_found")
    check(w.done_at - t_del < 0.5, f"receive answered {w.done_at - t_del:.2f} s after the delete")
    expect_json(c.healthz(), 200)


@test
def test_pending_receive_holds_lease(ctx):
    c = ctx.client()
    s = c.session(ttl=1)
    r = recv(c, s, wait=3, timeout=10)
    end = time.monotonic()
    eq(check_page(r), {"messages": [], "last_seq": 0}, "receive answer")
    check(r.elapsed >= 2.9, f"wait=3 answered after {r.elapsed:.2f} s")
    # 3 s > ttl 1: still alive because the receive held the lease
    expect_json(c.get_session(s.id), 200)
    time.sleep(max(0.0, end + 0.6 - time.monotonic()))
    expect_json(c.get_session(s.id), 200)  # the countdown began when it ended
    gone = None
    while time.monotonic() < end + 3.0:
        if c.get_session(s.id).status == 404:
            gone = time.monotonic() - end
            break
        time.sleep(0.05)
    check(gone is not None, "ttl 1 session did not expire within 3 s after its receive ended")
    check(0.8 <= gone <= 2.3, f"expired {gone:.2f} s after the receive ended (ttl 1)")
    expect_error(recv(c, s), 404, "session_not_found")


@test
def test_pending_receive_lease_survives_token_requests(ctx):
    # requests with the token while a receive is pending must not restart a
    # countdown that the receive holds
    c = ctx.client()
    s = c.session(ttl=1)
    w = in_thread(lambda: recv(ctx.client(), s, wait=3, timeout=10))
    time.sleep(0.3)
    expect_status(c.heartbeat(s.id, s.token), 200)
    expect_status(c.put_name(ctx.uid(), 1, s.token), 201)
    expect_status(c.heartbeat(s.id, s.token, {"ttl": 1}), 200)
    eq(inbox(c, ctx.client().session())["messages"], [], "another session's receive")
    time.sleep(1.9)  # 2.2 s in: past any countdown started at 0.3 s
    expect_json(c.get_session(s.id), 200)
    check(w.done_at is None, "the receive answered early")
    eq(check_page(w.result(5)), {"messages": [], "last_seq": 0}, "the receive at its deadline")
    expect_json(c.get_session(s.id), 200)


def _raw_receive(srv, s, wait):
    rc = RawConn(srv)
    rc.send(f"GET /v1/sessions/{s.id}/messages?wait={wait} HTTP/1.1\r\nHost: x\r\n"
            f"X-Session-Token: {s.token}\r\n\r\n")
    return rc


@test
def test_receive_client_disconnect(ctx):
    # a receive whose client went away ends: the lease counts down again
    # (nothing else happens to the session meanwhile), and a message sent
    # to a session whose receiver left waits in the mailbox
    c = ctx.client()
    s, keep = c.session(ttl=2), c.session()
    rcs = [_raw_receive(ctx.shared, s, 30), _raw_receive(ctx.shared, keep, 30)]
    time.sleep(0.3)
    check(all(nothing_read_yet(rc) for rc in rcs), "a receive answered early")
    for rc in rcs:
        rc.close()
    t_close = time.monotonic()
    time.sleep(0.3)
    sent(c, {"session": keep.id}, "while nobody listens")
    eq(bodies(c, keep), ["while nobody listens"], "mailbox of the session whose receiver left")
    gone = wait_until(lambda: c.get_session(s.id).status == 404, 5.0, 0.1)
    check(gone is not None, "ttl 2 session still alive 5 s after its receive's client went away")
    check(gone - t_close <= 3.5, f"expired {gone - t_close:.2f} s after the disconnect (ttl 2)")
    expect_json(c.healthz(), 200)


@test
def test_order_200_messages(ctx):
    c = ctx.client()
    rx, tx = c.session(), c.session()
    recv_c = ctx.client()
    got = []

    def reader():
        after = 0
        while len(got) < 200:
            b = check_page(recv(recv_c, rx, after=after, wait=5, max=37))
            if not b["messages"]:
                break
            got.extend((m["seq"], m["body"]) for m in b["messages"])
            after = b["messages"][-1]["seq"]
        return after
    rd = in_thread(reader)
    for i in range(200):
        sent(c, {"session": rx.id}, {"i": i}, tx.token)
    rd.result(15)
    eq(got, [(i + 1, {"i": i}) for i in range(200)], "200 messages in order, read while being sent")


@test
def test_500_long_polls_one_broadcast(ctx):
    n = 500
    raise_fd_limit(4 * n + 256)
    srv = ctx.start()
    c = ctx.client(srv)
    sessions = [c.session() for _ in range(n)]
    for s in sessions:
        expect_status(c.put("/v1/groups/crowd", token=s.token), 201)
    conns = []
    try:
        for s in sessions:
            rc = RawConn(srv, timeout=10)
            rc.send(f"GET /v1/sessions/{s.id}/messages?wait=10 HTTP/1.1\r\nHost: x\r\n"
                    f"X-Session-Token: {s.token}\r\n\r\n")
            conns.append(rc)
        time.sleep(1.0)
        for rc in conns[::25]:
            check(nothing_read_yet(rc), "a receive answered before the broadcast")
        t0 = time.monotonic()
        sent(c, {"group": "crowd"}, {"hello": "crowd"}, sessions[0].token, delivered=n, full=[])
        for s, rc in zip(sessions, conns):
            status, _, body = rc.read_response()
            eq(status, 200, f"receive of {s.id}: {body[:100]!r}")
            b = json.loads(body)
            eq(b, {"messages": [{"seq": 1, "from": sessions[0].id, "to": {"group": "crowd"},
                                 "body": {"hello": "crowd"}}], "last_seq": 1}, f"receive of {s.id}")
        took = time.monotonic() - t0
        check(took < 3.0, f"500 receives answered only after {took:.2f} s")
    finally:
        for rc in conns:
            rc.close()
    expect_json(c.healthz(), 200)
    srv.stop_clean()


@test
def test_max_waiters(ctx):
    srv = ctx.start("--max-waiters", "3")
    c = ctx.client(srv)
    a, b, d = c.session(), c.session(), c.session()
    wa = in_thread(lambda: recv(ctx.client(srv), a, wait=10, timeout=15))
    wb = in_thread(lambda: recv(ctx.client(srv), b, wait=10, timeout=15))
    wn = in_thread(lambda: ctx.client(srv, timeout=15).get(name_path("awaited") + "?wait=10"))
    time.sleep(0.5)
    check(all(w.done_at is None for w in (wa, wb, wn)), "a long-poll answered early")
    # the 4th pending long-poll, receive or await, is refused at once
    r = recv(c, d, wait=5)
    expect_error(r, 503, "limit_reached")
    check(r.elapsed < 0.5, f"limit_reached took {r.elapsed:.2f} s")
    r = c.get(name_path("other") + "?wait=5")
    expect_error(r, 503, "limit_reached")
    check(r.elapsed < 0.5, f"limit_reached took {r.elapsed:.2f} s")
    # what does not wait is not refused
    eq(inbox(c, d, wait=0), {"messages": [], "last_seq": 0}, "wait=0 at the limit")
    sent(c, {"session": d.id}, "here")
    eq(bodies(c, d, wait=5), ["here"], "a receive with a message there at the limit")
    expect_error(c.get(name_path("other")), 404, "name_not_found")
    # one answered: room for one more
    sent(c, {"session": a.id}, "wake")
    eq(check_page(wa.result(5))["messages"][0]["body"], "wake", "a's receive")
    wd = in_thread(lambda: recv(ctx.client(srv), d, after=1, wait=10, timeout=15))
    time.sleep(0.3)
    check(wd.done_at is None, "d's receive did not wait once there was room")
    r = recv(c, a, after=1, wait=5)  # a's mailbox is empty once "wake" is acknowledged
    expect_error(r, 503, "limit_reached")
    sent(c, {"session": d.id}, "d2")
    eq(check_page(wd.result(5))["messages"][0]["body"], "d2", "d's receive")
    # at the limit again (b, the await, d): a newer receive for b replaces
    # b's pending one instead of being refused
    wd = in_thread(lambda: recv(ctx.client(srv), d, after=2, wait=10, timeout=15))
    time.sleep(0.3)
    check(wd.done_at is None, "d's receive did not wait")
    wb2 = in_thread(lambda: recv(ctx.client(srv), b, wait=10, timeout=15))
    eq(check_page(wb.result(5)), {"messages": [], "last_seq": 0}, "b's older receive")
    time.sleep(0.3)
    check(wb2.done_at is None, f"b's newer receive answered at once: "
          f"{wb2.value.desc() if wb2.value is not None else wb2.error}")
    sent(c, {"session": b.id}, "b1")
    eq(check_page(wb2.result(5))["messages"][0]["body"], "b1", "b's newer receive")
    expect_json(c.healthz(), 200)
    srv.stop_clean()
    for w in (wn, wd):
        w.result(5)


@test
def test_sigterm_answers_pending_receives(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    sessions = [c.session() for _ in range(5)]
    sent(c, {"session": sessions[0].id}, "queued")
    waiters = [in_thread(lambda s=s: recv(ctx.client(srv, timeout=10), s, after=1 if s is sessions[0] else 0,
                                          wait=30))
               for s in sessions]
    time.sleep(0.6)
    check(all(w.done_at is None for w in waiters), "a receive answered early")
    t0 = time.monotonic()
    srv.stop_clean()
    for w in waiters:
        r = w.result(5)
        if r.status == 200:
            eq(check_page(r)["messages"], [], "receive answered at shutdown")
        else:
            expect_error(r, 503, "shutting_down")
    took = max(w.done_at for w in waiters) - t0
    check(took < 2.0, f"receives answered {took:.2f} s after SIGTERM")
