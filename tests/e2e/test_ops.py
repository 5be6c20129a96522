"""Operations: GET /metrics (Prometheus text format 0.0.4) and GET /v1/stats
(the same counts as JSON) against what the registry really holds; requests
counted by route and status class; the access log (--log-requests) and the
info line of a lease expiry, on stderr."""

import math
import re
import socket
import time

from harness import (HOST, check, eq, expect_error, expect_json, expect_status,
                     in_thread, name_path, q, test, wait_until)
from test_access import start_env

# --------------------------------------------------------------------------
# The Prometheus text format


NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
SAMPLE_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? +(\S+)(?: +(-?\d+))?")
LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\\n]|\\[\\"n])*)"\s*(,|$)')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_value(v, line):
    if v in ("+Inf", "Inf"):
        return math.inf
    if v == "-Inf":
        return -math.inf
    if v == "NaN":
        return math.nan
    try:
        return float(v)
    except ValueError:
        raise AssertionError(f"/metrics: bad sample value {v!r} in {line!r}")


def parse_labels(s, line):
    out = {}
    pos = 0
    while pos < len(s):
        m = LABEL_RE.match(s, pos)
        check(m is not None and m.end() > pos, f"/metrics: bad labels {s!r} in {line!r}")
        check(m.group(1) not in out, f"/metrics: label {m.group(1)} twice in {line!r}")
        out[m.group(1)] = m.group(2)
        pos = m.end()
    return out


def parse_prom(text):
    """Checks text is Prometheus text format and returns
    {(name, frozenset(labels.items())): value} plus {family: type}."""
    check(text.endswith("\n"), "/metrics: the text does not end with a newline")
    samples, types, helps = {}, {}, {}
    seen_samples_of = set()
    for line in text.split("\n")[:-1]:
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                fam = parts[2]
                check(NAME_RE.fullmatch(fam) is not None, f"/metrics: bad metric name in {line!r}")
                if parts[1] == "TYPE":
                    check(len(parts) == 4 and parts[3] in TYPES, f"/metrics: bad TYPE line {line!r}")
                    check(fam not in types, f"/metrics: a second TYPE line for {fam}")
                    check(fam not in seen_samples_of, f"/metrics: TYPE for {fam} after its samples")
                    types[fam] = parts[3]
                else:
                    check(len(parts) == 4 and parts[3].strip() != "", f"/metrics: HELP without text: {line!r}")
                    check(fam not in helps, f"/metrics: a second HELP line for {fam}")
                    helps[fam] = parts[3]
            continue
        check(line.strip() != "", "/metrics: an empty line")
        m = SAMPLE_RE.fullmatch(line)
        check(m is not None, f"/metrics: a line that is neither a comment nor a sample: {line!r}")
        name, labels = m.group(1), parse_labels(m.group(2) or "", line)
        value = parse_value(m.group(3), line)
        fam = name
        for suf in ("_bucket", "_sum", "_count"):
            if name.endswith(suf) and types.get(name[:-len(suf)]) in ("histogram", "summary"):
                fam = name[:-len(suf)]
        check(fam in types, f"/metrics: sample {name} has no TYPE line before it")
        seen_samples_of.add(fam)
        key = (name, frozenset(labels.items()))
        check(key not in samples, f"/metrics: the series {line!r} twice")
        samples[key] = value
    for fam, typ in types.items():
        if typ == "counter":
            check(fam.endswith("_total"), f"/metrics: counter {fam} does not end in _total")
        check(fam in helps, f"/metrics: no HELP for {fam}")
        if typ == "histogram":
            check_histogram(fam, samples)
    return samples, types


def check_histogram(fam, samples):
    series = {}
    for (name, labels), v in samples.items():
        if name == fam + "_bucket":
            d = dict(labels)
            check("le" in d, f"/metrics: {name} without le")
            rest = frozenset((k, x) for k, x in labels if k != "le")
            series.setdefault(rest, []).append((parse_value(d["le"], d["le"]), d["le"], v))
    check(series, f"/metrics: histogram {fam} has no buckets")
    for rest, buckets in series.items():
        buckets.sort(key=lambda b: b[0])
        eq(buckets[-1][1], "+Inf", f"{fam}: the last bucket's le")
        prev = -1
        for le, raw_le, v in buckets:
            check(v >= prev, f"{fam}: bucket le={raw_le} holds {v}, less than the one before ({prev}): not cumulative")
            check(v == int(v), f"{fam}: bucket le={raw_le} is not a whole count")
            prev = v
        count = samples.get((fam + "_count", rest))
        s = samples.get((fam + "_sum", rest))
        check(count is not None and s is not None, f"{fam}: no _count or _sum")
        eq(buckets[-1][2], count, f"{fam}: the +Inf bucket vs _count")
        check(s >= 0, f"{fam}: negative _sum")


def scrape(c):
    r = c.get("/metrics")
    expect_status(r, 200)
    ct = (r.header("Content-Type") or "").replace(" ", "").lower()
    check(ct.startswith("text/plain") and "version=0.0.4" in ct, f"/metrics Content-Type {r.header('Content-Type')!r}")
    samples, types = parse_prom(r.text)
    return samples, types, r.text


def val(samples, name, **labels):
    v = samples.get((name, frozenset(labels.items())))
    check(v is not None, f"/metrics: no sample {name}{labels or ''}")
    return v


def req_count(samples, route, code):
    return samples.get(("rollcall_requests_total", frozenset({"route": route, "code": code}.items())), 0)


def stats(c):
    b = expect_json(c.get("/v1/stats"), 200)
    for f in ("sessions", "names", "props", "group_members", "queued_messages", "pending", "streams_open",
              "expirations", "events", "requests", "latency_seconds"):
        check(f in b, f"/v1/stats: no {f} in {sorted(b)}")
    return b


def gauges(samples):
    return {
        "sessions": val(samples, "rollcall_sessions"),
        "names": val(samples, "rollcall_names"),
        "props": val(samples, "rollcall_props"),
        "group_members": val(samples, "rollcall_group_members"),
        "queued_messages": val(samples, "rollcall_queued_messages"),
        "awaits": val(samples, "rollcall_pending", kind="await"),
        "receives": val(samples, "rollcall_pending", kind="receive"),
        "event_watchers": val(samples, "rollcall_pending", kind="events"),
        "streams_open": val(samples, "rollcall_streams_open"),
        "expirations": val(samples, "rollcall_expirations_total"),
    }


def stats_gauges(b):
    return {
        "sessions": b["sessions"], "names": b["names"], "props": b["props"], "group_members": b["group_members"],
        "queued_messages": b["queued_messages"], "awaits": b["pending"]["awaits"],
        "receives": b["pending"]["receives"], "event_watchers": b["pending"]["event_watchers"],
        "streams_open": b["streams_open"], "expirations": b["expirations"],
    }


def listing_counts(c):
    """The same counts, from the listings (one page each; small registry)."""
    ss = expect_json(c.get("/v1/sessions?limit=1000"), 200)
    ns = expect_json(c.get("/v1/names?limit=1000"), 200)
    ps = expect_json(c.get("/v1/props?limit=1000"), 200)
    gs = expect_json(c.get("/v1/groups?limit=1000"), 200)
    for b in (ss, ns, ps, gs):
        eq(b["next"], None, "a listing of the small registry fits one page")
    return {
        "sessions": len(ss["sessions"]),
        "names": len(ns["names"]),
        "props": sum(p["holders"] for p in ps["props"]),
        "group_members": sum(g["members"] for g in gs["groups"]),
        "queued_messages": sum(s["queued"] for s in ss["sessions"]),
        "names_by_session": sum(s["names"] for s in ss["sessions"]),
        "props_by_session": sum(s["props"] for s in ss["sessions"]),
        "groups_by_session": sum(s["groups"] for s in ss["sessions"]),
    }


def prop_path(key):
    return "/v1/props/" + q(key, safe="/")


def group_path(key):
    return "/v1/groups/" + q(key, safe="/")


def open_stream(srv):
    sock = socket.create_connection((HOST, srv.port), timeout=5)
    sock.sendall(b"GET /v1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    data = b""
    while b"retry" not in data:
        ch = sock.recv(65536)
        check(ch != b"", "the event stream closed at once")
        data += ch
    check(data.startswith(b"HTTP/1.1 200"), f"event stream answer {data[:80]!r}")
    return sock


# --------------------------------------------------------------------------
# Tests


@test
def test_metrics_format(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    samples, types, _ = scrape(c)  # an empty registry
    for name in ("rollcall_sessions", "rollcall_names", "rollcall_props", "rollcall_group_members",
                 "rollcall_queued_messages", "rollcall_pending", "rollcall_streams_open"):
        eq(types.get(name), "gauge", f"TYPE of {name}")
    for name in ("rollcall_expirations_total", "rollcall_requests_total", "rollcall_events_total"):
        eq(types.get(name), "counter", f"TYPE of {name}")
    eq(types.get("rollcall_request_duration_seconds"), "histogram", "TYPE of the latency histogram")
    eq(gauges(samples), {"sessions": 0, "names": 0, "props": 0, "group_members": 0, "queued_messages": 0,
                         "awaits": 0, "receives": 0, "event_watchers": 0, "streams_open": 0, "expirations": 0},
       "gauges of an empty server")
    # some traffic, then the format again (labels, buckets)
    s = c.session()
    for i in range(20):
        c.put_name(f"n{i}", i, s.token)
        c.get("/nope")
        c.get(name_path(f"absent{i}"))
    samples, _, text = scrape(c)
    check(any(n == "rollcall_requests_total" for n, _ in samples), "no rollcall_requests_total sample")
    r = c.head("/metrics")
    expect_status(r, 200)
    eq(r.body, b"", "HEAD /metrics body")
    # the histogram: no request waited, so it counts every answer made
    # before this scrape, as rollcall_requests_total does
    total = sum(v for (n, _), v in samples.items() if n == "rollcall_requests_total")
    eq(val(samples, "rollcall_request_duration_seconds_count"), total,
       "histogram _count vs the sum of rollcall_requests_total (no request waited)")
    b = stats(c)
    buckets = b["latency_seconds"]["buckets"]
    counts = [x["count"] for x in buckets]
    eq(counts, sorted(counts), "/v1/stats latency buckets cumulative")
    eq(buckets[-1]["count"], b["latency_seconds"]["count"], "/v1/stats last bucket vs count")
    eq(b["latency_seconds"]["count"], total + 2, "/v1/stats latency count (the scrape and the HEAD since)")


@test
def test_gauges_match_reality(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    a, b, r_ = c.session(ttl=600), c.session(ttl=600), c.session(ttl=600)
    for key, s in [("n1", a), ("n2", a), ("n3", b)]:
        expect_status(c.put_name(key, {"k": key}, s.token), 201)
    for key, s in [("p1", a), ("p1", b), ("p2", b)]:
        expect_status(c.put(prop_path(key), {"value": 1}, token=s.token), 201)
    for key, s in [("g1", a), ("g1", b), ("g2", r_)]:
        expect_status(c.put(group_path(key), {"value": 1}, token=s.token), 201)
    for to in [{"name": "n1"}, {"name": "n2"}, {"session": b.id}]:
        expect_json(c.post("/v1/send", {"to": to, "body": "x"}), 202)
    eq(expect_json(c.post("/v1/send", {"to": {"prop": "p1"}, "body": "all"}), 202)["delivered"], 2, "broadcast")
    # pending: an await, a receive, an events long-poll, an event stream
    idx = c.get("/v1/names").index
    awaited = in_thread(lambda: ctx.client(srv, timeout=30).get(name_path("later") + "?wait=20"))
    receive = in_thread(lambda: ctx.client(srv, timeout=30).get(f"/v1/sessions/{r_.id}/messages?wait=20",
                                                               token=r_.token))
    events = in_thread(lambda: ctx.client(srv, timeout=30).get(f"/v1/events?after={idx}&wait=20"))
    stream = open_stream(srv)
    try:
        want = {"sessions": 3, "names": 3, "props": 3, "group_members": 3, "queued_messages": 5,
                "awaits": 1, "receives": 1, "event_watchers": 2, "streams_open": 1, "expirations": 0}
        got = {}

        def settled():
            got.update(gauges(scrape(c)[0]))
            return got == want
        wait_until(settled, 3.0)
        eq(got, want, "/metrics gauges (event_watchers: a long-poll and an idle stream)")
        eq(stats_gauges(stats(c)), want, "/v1/stats counts")
        lc = listing_counts(c)
        for k in ("sessions", "names", "props", "group_members", "queued_messages"):
            eq(lc[k], want[k], f"{k} from the listings")
        eq((lc["names_by_session"], lc["props_by_session"], lc["groups_by_session"]), (3, 3, 3),
           "names, props and groups summed over the sessions listing")
        samples = scrape(c)[0]
        eq(val(samples, "rollcall_events_total"), c.get("/v1/names").index, "rollcall_events_total vs the index")
        eq(stats(c)["events"], c.get("/v1/names").index, "/v1/stats events vs the index")

        # end the pending requests one by one
        expect_status(c.put_name("later", 1, a.token), 201)
        expect_json(awaited.result(), 200)
        expect_json(events.result(), 200)
        expect_json(c.post("/v1/send", {"to": {"session": r_.id}, "body": "wake"}), 202)
        eq(len(expect_json(receive.result(), 200)["messages"]), 1, "the receive woke with the message")
        stream.close()
        want.update({"names": 4, "queued_messages": 6, "awaits": 0, "receives": 0, "event_watchers": 0,
                     "streams_open": 0})
        got = {}
        wait_until(settled, 3.0)
        eq(got, want, "/metrics gauges after the pending requests ended (a received message stays until acked)")
        # acknowledge, leave, release
        expect_json(c.get(f"/v1/sessions/{r_.id}/messages?after=1", token=r_.token), 200)
        expect_status(c.delete(prop_path("p1"), token=b.token), 204)
        expect_status(c.delete(group_path("g1"), token=a.token), 204)
        expect_status(c.delete_session(b.id, b.token), 204)  # held n3, p2, g1 and 2 messages
        want.update({"sessions": 2, "names": 3, "props": 1, "group_members": 1, "queued_messages": 3})
        eq(gauges(scrape(c)[0]), want, "/metrics gauges after ack, leave and delete")
        eq(stats_gauges(stats(c)), want, "/v1/stats after ack, leave and delete")
        lc = listing_counts(c)
        for k in ("sessions", "names", "props", "group_members", "queued_messages"):
            eq(lc[k], want[k], f"{k} from the listings after ack, leave and delete")
    finally:
        stream.close()


@test
def test_expiry_counted_and_logged(ctx):
    srv = ctx.start()
    c = ctx.client(srv)
    d = c.session(ttl=1, label="exp-" + ctx.uid())
    keep = c.session(ttl=600)
    gone = c.session(ttl=600)
    expect_status(c.put_name("d-name", 1, d.token), 201)
    expect_status(c.put(prop_path("d-prop"), {"value": 1}, token=d.token), 201)
    expect_json(c.post("/v1/send", {"to": {"session": d.id}, "body": 1}), 202)
    expect_status(c.put_name("keep", 1, keep.token), 201)
    expect_status(c.delete_session(gone.id, gone.token), 204)  # a delete is no expiry
    ok = wait_until(lambda: val(scrape(c)[0], "rollcall_expirations_total") == 1, 3.0)
    check(ok is not None, "rollcall_expirations_total is not 1 within 3 s of a ttl-1 session's creation")
    g = gauges(scrape(c)[0])
    eq((g["sessions"], g["names"], g["props"], g["queued_messages"], g["expirations"]), (1, 1, 0, 0, 1),
       "sessions, names, props, queued, expirations after the expiry")
    eq(stats(c)["expirations"], 1, "/v1/stats expirations")
    wait_until(lambda: any(d.id in ln for ln in srv.stderr_lines), 1.0)
    lines = [ln for ln in srv.stderr_lines if d.id in ln]
    eq(len(lines), 1, f"stderr lines naming the expired session ({lines})")
    check("info" in lines[0].lower(), f"the expiry line is not at info level: {lines[0]!r}")
    check("expire" in lines[0].lower(), f"the expiry line does not say it expired: {lines[0]!r}")
    check(not any(gone.id in ln for ln in srv.stderr_lines),
          f"a deleted session got a line: {[ln for ln in srv.stderr_lines if gone.id in ln]}")
    check(not any("access" in ln for ln in srv.stderr_lines), "access lines without --log-requests")
    # a second expiry: counted once more
    e = c.session(ttl=1)
    ok = wait_until(lambda: val(scrape(c)[0], "rollcall_expirations_total") == 2, 3.0)
    check(ok is not None, "rollcall_expirations_total did not reach 2 after a second ttl-1 session")
    wait_until(lambda: any(e.id in ln for ln in srv.stderr_lines), 1.0)
    eq(len([ln for ln in srv.stderr_lines if e.id in ln]), 1, "lines for the second expiry")
    eq(len([ln for ln in srv.stderr_lines if "info" in ln.lower()]), 2, "info lines for two expiries")


@test
def test_requests_total_by_route_and_class(ctx):
    srv = ctx.start("--max-sessions", "2")
    c = ctx.client(srv)
    m0 = scrape(c)[0]
    for _ in range(3):
        expect_status(c.get("/healthz"), 200)
    for _ in range(2):
        expect_error(c.get("/nope"), 404, "not_found")
    expect_error(c.get_name("missing"), 404, "name_not_found")
    expect_error(c.put_name("x", 1), 401, "missing_token")
    expect_error(c.request("PATCH", "/v1/names/x"), 405, "method_not_allowed")
    s = c.session()
    c.session()
    expect_error(c.post("/v1/sessions"), 503, "limit_reached")  # --max-sessions 2
    expect_status(c.put_name("x", 1, s.token), 201)
    expect_status(c.put_name("x", 2, s.token), 200)
    expect_status(c.delete_name("x", s.token), 204)
    m1 = scrape(c)[0]
    want = {("/healthz", "2xx"): 3, ("none", "4xx"): 2, ("/v1/names/**", "4xx"): 3, ("/v1/names/**", "2xx"): 3,
            ("/v1/sessions", "2xx"): 2, ("/v1/sessions", "5xx"): 1, ("/metrics", "2xx"): 1}
    routes = {dict(lbl)["route"] for (n, lbl) in list(m0) + list(m1) if n == "rollcall_requests_total"}
    for route in routes | {r for r, _ in want}:
        for code in ("1xx", "2xx", "3xx", "4xx", "5xx"):
            d = req_count(m1, route, code) - req_count(m0, route, code)
            eq(d, want.get((route, code), 0), f"rollcall_requests_total{{route={route!r},code={code!r}}} grew by")
    for (n, lbl) in m1:
        if n == "rollcall_requests_total":
            d = dict(lbl)
            eq(set(d), {"route", "code"}, "labels of rollcall_requests_total")
            check(re.fullmatch(r"[1-5]xx", d["code"]) is not None, f"code label {d['code']!r}")
    # /v1/stats: the same counts, by route and in total
    b = stats(c)
    req = b["requests"]
    m2 = scrape(c)[0]  # counts the /v1/stats request
    m2_routes = {dict(lbl)["route"] for (n, lbl) in m2 if n == "rollcall_requests_total"}
    for route in m2_routes | set(req["by_route"]):
        for code in ("1xx", "2xx", "3xx", "4xx", "5xx"):
            n = req["by_route"].get(route, {}).get(code, 0)
            want_n = req_count(m2, route, code) - (1 if (route, code) == ("/v1/stats", "2xx") else 0)
            eq(n, want_n, f"/v1/stats requests {route} {code} vs /metrics just after")
    for code in ("1xx", "2xx", "3xx", "4xx", "5xx"):
        eq(req[code], sum(cl[code] for cl in req["by_route"].values()), f"/v1/stats requests total {code}")
    eq(req["5xx"], 1, "/v1/stats 5xx answers")



def _startup_line(ln):
    """The lines every start prints: the open-file limit, the address."""
    return "listening on" in ln or "rollcall: open files:" in ln

@test
def test_access_log_lines(ctx):
    srv = start_env(ctx, {}, "--log-requests")
    c = ctx.client(srv)
    s = c.session()
    k = ctx.uid()
    expect_status(c.get("/healthz"), 200)
    expect_error(c.get(name_path(k) + "?wait=0"), 404, "name_not_found")
    expect_error(c.put_name(k, 1), 401, "missing_token")
    expect_status(c.put_name(k, 1, s.token), 201)
    expect_error(c.request("PATCH", "/nope"), 404, "not_found")
    expect_status(c.head("/healthz"), 200)
    expect_error(c.delete(name_path(k + "/a b")), 401, "missing_token")
    r = c.get(name_path(k + "x") + "?wait=1")  # a long-poll: one line, when it answers
    expect_error(r, 404, "name_not_found")
    expect_status(c.get("/metrics"), 200)
    sent = [("POST", "/v1/sessions", 201), ("GET", "/healthz", 200), ("GET", name_path(k) + "?wait=0", 404),
            ("PUT", name_path(k), 401), ("PUT", name_path(k), 201), ("PATCH", "/nope", 404), ("HEAD", "/healthz", 200),
            ("DELETE", name_path(k + "/a b"), 401), ("GET", name_path(k + "x") + "?wait=1", 404),
            ("GET", "/metrics", 200)]
    wait_until(lambda: len([ln for ln in srv.stderr_lines if "access" in ln]) >= len(sent), 2.0)
    lines = [ln for ln in srv.stderr_lines if not _startup_line(ln)]
    eq(len(lines), len(sent), f"stderr lines for {len(sent)} requests: {lines}")
    for ln, (method, target, status) in zip(lines, sent):
        check(re.search(rf"(^|\s){re.escape(method)}\s+{re.escape(target)}\s+{status}(\s|$)", ln) is not None,
              f"access line {ln!r} lacks '{method} {target} {status}'")
        check("127.0.0.1" in ln, f"access line without the client address: {ln!r}")
    eq(srv.stdout_text(), "", "stdout (logs go to stderr)")
    # a target with control bytes stays on one line
    sock = socket.create_connection((HOST, srv.port), timeout=3)
    sock.sendall(b"GET /v1/names/a\x1b[2Jb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    while sock.recv(65536):
        pass
    sock.close()
    wait_until(lambda: len([ln for ln in srv.stderr_lines if not _startup_line(ln)]) > len(sent), 2.0)
    lines = [ln for ln in srv.stderr_lines if not _startup_line(ln)]
    eq(len(lines), len(sent) + 1, "one more line for the request with control bytes")
    check("\x1b" not in lines[-1], f"a control byte reached the log: {lines[-1]!r}")


@test
def test_no_access_log_without_flag(ctx):
    srv = start_env(ctx, {})
    c = ctx.client(srv)
    s = c.session()
    expect_status(c.get("/healthz"), 200)
    expect_status(c.put_name("x", 1, s.token), 201)
    expect_error(c.get("/nope"), 404, "not_found")
    expect_status(c.get("/metrics"), 200)
    time.sleep(0.3)
    lines = [ln for ln in srv.stderr_lines if not _startup_line(ln)]
    eq(lines, [], "stderr lines without --log-requests")
    eq(srv.stdout_text(), "", "stdout")
    srv.stop_clean()
