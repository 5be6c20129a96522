"""Access control: --auth-token (or ROLLCALL_AUTH_TOKEN) and --read-token
(or ROLLCALL_READ_TOKEN) on every route of router.c; ?access_token= for the
event stream, masked in the access log; the flags' bad combinations; and,
per session, that another session's token or a session's public id never
unlocks a session's routes."""

import base64
import os
import secrets
import socket
import subprocess
import threading
import time

import harness
from harness import (HOST, Server, check, eq, expect_error, expect_json,
                     expect_status, name_path, q, test, wait_until)

# --------------------------------------------------------------------------
# Helpers


class EnvServer(Server):
    """A Server started with extra environment variables (the harness's
    Server inherits the runner's environment, shared by parallel tests).
    stdout is captured too."""

    def __init__(self, env, *args):
        if not os.path.isfile(harness.BIN):
            raise AssertionError(f"server binary not found: {harness.BIN}")
        self.argv = [harness.BIN, "--listen", f"{HOST}:0"] + [str(a) for a in args]
        self.stderr_lines = []
        self.stdout_chunks = []
        self.port = None
        self._ready = threading.Event()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLCALL_")}
        full_env.update(env)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=full_env)
        with harness._all_lock:
            harness._all_servers.append(self)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self._out_reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._out_reader.start()
        if not self._ready.wait(5.0) or self.port is None:
            self.kill()
            raise AssertionError(f"server did not print its listen line within 5 s: {self.argv} env={env} "
                                 f"stderr={self.stderr_text()[:300]!r}")

    def _read_stdout(self):
        for raw in self.proc.stdout:
            self.stdout_chunks.append(raw)

    def stdout_text(self):
        return b"".join(self.stdout_chunks).decode("utf-8", "replace")


def start_env(ctx, env, *args):
    srv = EnvServer(env, *args)
    ctx._servers.append(srv)
    return srv


def run_env(env, args, timeout=3.0):
    """Runs the binary to its end with env added: (rc, stdout, stderr)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLCALL_")}
    full_env.update(env)
    p = subprocess.Popen([harness.BIN] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=full_env)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError(f"{args} with {env}: did not exit within {timeout} s (it should refuse to start)")
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def bearer(t):
    return {"Authorization": f"Bearer {t}"}


def prop_path(key):
    return "/v1/props/" + q(key, safe="/")


def group_path(key):
    return "/v1/groups/" + q(key, safe="/")


def open_stream(server, query="", headers=None, timeout=5.0):
    """GET /v1/events as an event stream over a raw socket: (status,
    headers, socket with the rest of the data after the head, data read)."""
    sock = socket.create_connection((HOST, server.port), timeout=timeout)
    path = "/v1/events" + ("?" + query if query else "")
    lines = [f"GET {path} HTTP/1.1", "Host: x", "Accept: text/event-stream"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            ch = sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f"GET {path}: no answer head within {timeout} s")
        if not ch:
            break
        data += ch
    head, _, rest = data.partition(b"\r\n\r\n")
    hl = head.decode("latin-1").split("\r\n")
    status = int(hl[0].split()[1])
    hdrs = {}
    for ln in hl[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, sock, rest


def stream_sees(sock, data, needle, timeout=3.0):
    """Reads the stream until needle (bytes) appears; True if it did."""
    deadline = time.monotonic() + timeout
    while needle not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            ch = sock.recv(65536)
        except socket.timeout:
            return False
        if not ch:
            return False
        data += ch
    return True


def expect_unauthorized(r, what=""):
    """401 unauthorized with a WWW-Authenticate: Bearer challenge (HEAD:
    no body to check)."""
    if r.method == "HEAD":
        check(r.status == 401, f"{what}: {r.desc()}, want 401")
    else:
        check(r.status == 401, f"{what}: {r.desc()}, want 401 unauthorized")
        expect_error(r, 401, "unauthorized")
    wa = r.header("WWW-Authenticate") or ""
    check(wa.lower().startswith("bearer"),
          f"{what}: {r.method} {r.path}: WWW-Authenticate {wa!r}, want a Bearer challenge")


# --------------------------------------------------------------------------
# The world of one auth server, and every route of router.c


class World:
    """A server with --auth-token and --read-token, and a registry in it:
    session a (holds a name, a prop, a group membership, a queued message)
    and session b."""

    def __init__(self, ctx, *extra):
        self.full = "full-" + secrets.token_hex(12)
        self.read = "read-" + secrets.token_hex(12)
        self.srv = ctx.start("--auth-token", self.full, "--read-token", self.read, *extra)
        self.c = ctx.client(self.srv)
        self.F = bearer(self.full)
        self.R = bearer(self.read)
        c, F = self.c, self.F
        self.k = ctx.uid()
        r = c.post("/v1/sessions", {"ttl": 600}, headers=F)
        self.a = harness.Session(expect_json(r, 201))
        r = c.post("/v1/sessions", {"ttl": 600}, headers=F)
        self.b = harness.Session(expect_json(r, 201))
        a = self.a
        expect_status(c.put(name_path(self.k), {"value": "a"}, token=a.token, headers=F), 201)
        expect_status(c.put(prop_path(self.k), {"value": "a"}, token=a.token, headers=F), 201)
        expect_status(c.put(group_path(self.k), {"value": "a"}, token=a.token, headers=F), 201)
        expect_status(c.post("/v1/send", {"to": {"session": a.id}, "body": "m1"}, headers=F), 202)

    def reads(self):
        """(method, path, status with a read or the full token): every read."""
        a, k = self.a, self.k
        out = []
        for p, st in [("/metrics", 200), ("/v1/stats", 200), ("/v1/sessions", 200), (f"/v1/sessions/{a.id}", 200),
                      ("/v1/sessions/0123456789abcdef", 404), ("/v1/events?after=0", 200), ("/v1/names", 200),
                      (name_path(k), 200), (name_path(k + "-none"), 404), ("/v1/props", 200), (prop_path(k), 200),
                      ("/v1/groups", 200), (group_path(k), 200), (group_path(k) + "?pick=random", 200),
                      (group_path(k + "-none") + "?pick=random", 404), (name_path(k + "-w") + "?wait=0", 404)]:
            out.append(("GET", p, st))
            out.append(("HEAD", p, st))
        return out

    def writes(self):
        """(method, path, body, session token): every route that changes
        something, made so that it would succeed with the full token."""
        a, b, k = self.a, self.b, self.k
        return [
            ("POST", "/v1/sessions", {"ttl": 30}, None),
            ("POST", f"/v1/sessions/{a.id}/heartbeat", {}, a.token),
            ("DELETE", f"/v1/sessions/{a.id}", None, a.token),
            ("POST", "/v1/send", {"to": {"session": a.id}, "body": "m2"}, None),
            ("PUT", name_path(k + "-new"), {"value": 1}, b.token),
            ("PUT", name_path(k), {"value": "a2"}, a.token),
            ("DELETE", name_path(k), None, a.token),
            ("PUT", prop_path(k), {"value": "b"}, b.token),
            ("DELETE", prop_path(k), None, a.token),
            ("PUT", group_path(k), {"value": "b"}, b.token),
            ("DELETE", group_path(k), None, a.token),
        ]

    def rw(self):
        """The receive: a GET that acknowledges, so the full token only."""
        a = self.a
        return [("GET", f"/v1/sessions/{a.id}/messages?after=1", a.token),
                ("HEAD", f"/v1/sessions/{a.id}/messages", a.token)]

    def unchanged(self, what):
        """a still holds all it held, with its values, and its message."""
        c, F, a, k = self.c, self.F, self.a, self.k
        r = c.get(f"/v1/sessions/{a.id}", headers=F)
        check(r.status == 200, f"{what}: session a is gone: {r.desc()}")
        h = r.json["held"]
        eq((h["names"], h["props"], h["groups"], r.json["queued"]), ([k], [k], [k], 1), f"{what}: what a holds")
        eq(expect_json(c.get(name_path(k), headers=F), 200)["value"], "a", f"{what}: a's name value")
        eq(expect_json(c.get(prop_path(k), headers=F), 200)["holders"], [{"session": a.id, "value": "a"}],
           f"{what}: holders of a's prop")
        eq(expect_json(c.get(group_path(k), headers=F), 200)["members"], [{"session": a.id, "value": "a"}],
           f"{what}: members of a's group")
        eq(expect_json(c.get("/v1/sessions", headers=F), 200)["sessions"].__len__(), 2, f"{what}: sessions")
        r = c.get(f"/v1/sessions/{a.id}/messages", token=a.token, headers=F)
        eq([m["body"] for m in expect_json(r, 200)["messages"]], ["m1"], f"{what}: a's mailbox")


WRONG = ["Bearer wrong", "Bearer ", "Bearer", "Basic " + base64.b64encode(b"user:pass").decode(), "Token {full}",
         "{full}", "Bearer {full}x", "Bearer x{full}", "Bearer {full_cut}", "Bearer {full_upper}", "Bearer {read}x",
         "Bearer {a_token}", "Bearer {a_id}", "Bearer {full},{full}"]


def wrong_headers(w):
    out = []
    for t in WRONG:
        v = t.format(full=w.full, full_cut=w.full[:-1], full_upper=w.full.upper(), read=w.read,
                     a_token=w.a.token, a_id=w.a.id)
        out.append({"Authorization": v})
    return out


@test
def test_no_token_401_on_every_api_route(ctx):
    w = World(ctx)
    c = w.c
    for method, path, _ in w.reads():
        expect_unauthorized(c.request(method, path), f"no Authorization, {method} {path}")
    for method, path, body, tok in w.writes():
        expect_unauthorized(c.request(method, path, body, token=tok), f"no Authorization, {method} {path}")
    for method, path, tok in w.rw():
        expect_unauthorized(c.request(method, path, token=tok), f"no Authorization, {method} {path}")
    status, hdrs, sock, _ = open_stream(w.srv)
    sock.close()
    eq(status, 401, "event stream without a token")
    check(hdrs.get("www-authenticate", "").lower().startswith("bearer"), f"stream 401 headers {hdrs}")
    w.unchanged("requests without a token")


@test
def test_wrong_token_401_on_every_api_route(ctx):
    w = World(ctx)
    c = w.c
    for h in wrong_headers(w):
        what = f"Authorization: {h['Authorization']!r}"
        for method, path, _ in w.reads():
            expect_unauthorized(c.request(method, path, headers=h), f"{what}, {method} {path}")
        for method, path, body, tok in w.writes():
            expect_unauthorized(c.request(method, path, body, token=tok, headers=h), f"{what}, {method} {path}")
        for method, path, tok in w.rw():
            expect_unauthorized(c.request(method, path, token=tok, headers=h), f"{what}, {method} {path}")
    for q_ in [f"access_token={w.full}x", "access_token=", f"access_token={w.a.token}", f"access_token={w.a.id}"]:
        expect_unauthorized(c.get("/v1/names?" + q_), f"?{q_}")
        status, _, sock, _ = open_stream(w.srv, q_)
        sock.close()
        eq(status, 401, f"event stream with ?{q_}")
    w.unchanged("requests with a wrong token")


@test
def test_read_token_reads_only(ctx):
    w = World(ctx)
    c = w.c
    for method, path, st in w.reads():
        r = c.request(method, path, headers=w.R)
        check(r.status == st, f"read token, {method} {path}: {r.desc()}, want {st}")
        r2 = c.request(method, path, headers=w.F)
        check(r2.status == st, f"full token, {method} {path}: {r2.desc()}, want {st}")
    for method, path, body, tok in w.writes():
        r = c.request(method, path, body, token=tok, headers=w.R)
        check(r.status == 403, f"read token, {method} {path}: {r.desc()}, want 403 read_only")
        expect_error(r, 403, "read_only")
        # the same through ?access_token=
        sep = "&" if "?" in path else "?"
        r = c.request(method, path + sep + "access_token=" + q(w.read), body, token=tok)
        check(r.status == 403, f"?access_token=<read>, {method} {path}: {r.desc()}, want 403 read_only")
        expect_error(r, 403, "read_only")
    for method, path, tok in w.rw():
        r = c.request(method, path, token=tok, headers=w.R)
        check(r.status == 403, f"read token, {method} {path} (the receive acknowledges): {r.desc()}, want 403")
        if method == "GET":
            expect_error(r, 403, "read_only")
    w.unchanged("writes with the read token")
    # the read token follows /metrics and /v1/stats
    eq(c.get("/metrics", headers=w.R).header("Content-Type").split(";")[0], "text/plain",
       "/metrics with the read token")
    eq(expect_json(c.get("/v1/stats", headers=w.R), 200)["names"], 1, "/v1/stats names with the read token")
    # the read token and the event stream, by header and by ?access_token=
    for query, hdrs in [("", w.R), ("access_token=" + q(w.read), None), ("after=0&access_token=" + q(w.read), None)]:
        status, h, sock, data = open_stream(w.srv, query, hdrs)
        try:
            eq(status, 200, f"event stream with the read token ({query or 'header'})")
            eq(h.get("content-type", "").split(";")[0], "text/event-stream", "stream Content-Type")
            mark = ctx.uid()
            expect_status(c.put(name_path(mark), {"value": 1}, token=w.b.token, headers=w.F), 201)
            check(stream_sees(sock, data, mark.encode()), f"the read token's stream ({query or 'header'}) "
                                                          f"did not get the event for {mark}")
        finally:
            sock.close()


@test
def test_full_token_works_everywhere(ctx):
    w = World(ctx)
    c, F, a, b, k = w.c, w.F, w.a, w.b, w.k
    for method, path, st in w.reads():
        r = c.request(method, path, headers=F)
        check(r.status == st, f"full token, {method} {path}: {r.desc()}, want {st}")
    r = c.get(f"/v1/sessions/{a.id}/messages", token=a.token, headers=F)
    eq([m["body"] for m in expect_json(r, 200)["messages"]], ["m1"], "receive with the full token")
    expect_status(c.head(f"/v1/sessions/{a.id}/messages", token=a.token, headers=F), 200)
    want = {"POST /v1/sessions": 201, "POST /v1/send": 202}
    for method, path, body, tok in w.writes():
        if method == "DELETE" and path == f"/v1/sessions/{a.id}":
            continue  # last
        r = c.request(method, path, body, token=tok, headers=F)
        st = want.get(f"{method} {path}", {"PUT": (200 if path == name_path(k) else 201), "DELETE": 204,
                                            "POST": 200}[method])
        check(r.status == st, f"full token, {method} {path}: {r.desc()}, want {st}")
    r = c.get(f"/v1/sessions/{a.id}/messages?after=1", token=a.token, headers=F)
    eq([m["body"] for m in expect_json(r, 200)["messages"]], ["m2"], "receive (acknowledging) with the full token")
    expect_status(c.delete(f"/v1/sessions/{a.id}", token=a.token, headers=F), 204)
    expect_error(c.get(f"/v1/sessions/{a.id}", headers=F), 404, "session_not_found")
    # the scheme is case-insensitive (RFC 9110), and ?access_token= works for any route
    expect_status(c.get("/v1/names", headers={"Authorization": f"bearer {w.full}"}), 200)
    expect_status(c.get("/v1/names?access_token=" + q(w.full)), 200)
    expect_status(c.put(name_path(k + "-q") + "?access_token=" + q(w.full), {"value": 1}, token=b.token), 201)
    # the event stream with the full token, by ?access_token= (EventSource cannot set headers)
    status, h, sock, data = open_stream(w.srv, "access_token=" + q(w.full))
    try:
        eq(status, 200, "event stream with ?access_token=<full>")
        mark = ctx.uid()
        expect_status(c.put(name_path(mark), {"value": 1}, token=b.token, headers=F), 201)
        check(stream_sees(sock, data, mark.encode()), "the full token's stream did not get the event")
    finally:
        sock.close()


@test
def test_open_routes_stay_open(ctx):
    w = World(ctx)
    c = w.c
    for h in [None, {"Authorization": "Bearer wrong"}, w.R, w.F]:
        for path, ct in [("/healthz", "application/json"), ("/", "text/html"), ("/ui/style.css", "text/css")]:
            r = c.get(path, headers=h)
            check(r.status == 200, f"GET {path} with {h}: {r.desc()}, want 200 (open)")
            check((r.header("Content-Type") or "").startswith(ct),
                  f"GET {path}: Content-Type {r.header('Content-Type')}")
            check(r.header("WWW-Authenticate") is None, f"GET {path}: a WWW-Authenticate header on an open route")
            expect_status(c.head(path, headers=h), 200)
    eq(expect_json(c.get("/healthz"), 200), {"status": "ok"}, "healthz without a token")
    r = c.get("/ui/no-such-file.js")
    check(r.status == 404, f"GET /ui/no-such-file.js without a token: {r.desc()}, want 404 (open route, no file)")


@test
def test_env_tokens(ctx):
    full, read = "envfull-" + secrets.token_hex(8), "envread-" + secrets.token_hex(8)
    srv = start_env(ctx, {"ROLLCALL_AUTH_TOKEN": full, "ROLLCALL_READ_TOKEN": read})
    c = ctx.client(srv)
    expect_unauthorized(c.get("/v1/names"), "env server, no token")
    expect_unauthorized(c.get("/metrics"), "env server /metrics, no token")
    expect_unauthorized(c.post("/v1/sessions"), "env server POST, no token")
    expect_status(c.get("/v1/names", headers=bearer(full)), 200)
    expect_status(c.get("/v1/names", headers=bearer(read)), 200)
    expect_status(c.get("/metrics", headers=bearer(read)), 200)
    expect_error(c.post("/v1/sessions", headers=bearer(read)), 403, "read_only")
    expect_status(c.post("/v1/sessions", headers=bearer(full)), 201)
    expect_json(c.get("/healthz"), 200)
    check(full not in srv.stderr_text() + srv.stdout_text(), "the auth token was printed")
    # the flags win over the environment
    flag = "flag-" + secrets.token_hex(8)
    srv2 = start_env(ctx, {"ROLLCALL_AUTH_TOKEN": full}, "--auth-token", flag)
    c2 = ctx.client(srv2)
    expect_status(c2.get("/v1/names", headers=bearer(flag)), 200)
    expect_unauthorized(c2.get("/v1/names", headers=bearer(full)), "the env token when --auth-token is given")
    # only the auth token in the environment: no read token
    srv3 = start_env(ctx, {"ROLLCALL_AUTH_TOKEN": full})
    c3 = ctx.client(srv3)
    expect_status(c3.get("/v1/names", headers=bearer(full)), 200)
    expect_unauthorized(c3.get("/v1/names", headers=bearer(read)), "a read token that was not set")
    # no token at all: an open server
    srv4 = start_env(ctx, {})
    expect_status(ctx.client(srv4).post("/v1/sessions"), 201)
    for s in (srv, srv2, srv3, srv4):
        s.stop_clean()


@test
def test_bad_token_flags_exit_2(ctx):
    L = ["--listen", f"{HOST}:0"]
    cases = [
        (["--read-token", "r1"], {}),
        (["--auth-token", "same", "--read-token", "same"], {}),
        (["--auth-token", "a b"], {}),
        (["--auth-token", "ok", "--read-token", "r r"], {}),
        (["--auth-token", ""], {}),
        (["--auth-token"], {}),
        (["--auth-token", "ok", "--read-token"], {}),
        (["--auth-token", "x" * 201], {}),
        (["--auth-token", "tok\u00e9n"], {}),
        (["--auth-token", "tab\there"], {}),
        (["--auth-token", "nl\nx"], {}),
        ([], {"ROLLCALL_READ_TOKEN": "r1"}),
        ([], {"ROLLCALL_AUTH_TOKEN": "a b"}),
        ([], {"ROLLCALL_AUTH_TOKEN": "same", "ROLLCALL_READ_TOKEN": "same"}),
        (["--auth-token", "same"], {"ROLLCALL_READ_TOKEN": "same"}),
        (["--read-token", "r1"], {"ROLLCALL_READ_TOKEN": "r2"}),
    ]
    for args, env in cases:
        rc, out, err = run_env(env, L + args)
        what = f"rollcall {' '.join(args)!r} env {env}"
        check(rc == 2, f"{what}: exit code {rc}, want 2 (stderr {err.strip()[:200]!r})")
        check(err.strip() != "", f"{what}: nothing on stderr")
        eq(out, "", f"{what}: stdout")
    # a 200-character token is fine
    long = "t" * 200
    srv = ctx.start("--auth-token", long)
    expect_status(ctx.client(srv).get("/v1/names", headers=bearer(long)), 200)
    srv.stop_clean()


def _log_lines(srv):
    return [ln for ln in srv.stderr_lines if "access" in ln]


@test
def test_access_token_masked_in_log(ctx):
    w = World(ctx, "--log-requests")
    c = w.c
    targets = [
        "/v1/names?access_token=" + q(w.full),
        "/v1/names?limit=5&access_token=" + q(w.read),
        "/v1/names?prefix=t&access_token=" + q(w.full) + "&limit=1",
        name_path(w.k) + "?access_token=" + q(w.read),
    ]
    for t in targets:
        expect_status(c.get(t), 200)
    status, _, sock, _ = open_stream(w.srv, "access_token=" + q(w.read))
    sock.close()
    eq(status, 200, "event stream with ?access_token=")
    expect_status(c.get("/v1/names?access_token=" + q(w.full) + "x"), 401)
    expect_status(c.get("/v1/names", headers=w.F), 200)

    def logged():
        return len([ln for ln in _log_lines(w.srv) if "access_token" in ln]) >= 6
    wait_until(logged, 2.0)
    text = w.srv.stderr_text()
    for tok in (w.full, w.read):
        check(tok not in text, f"a token is in the access log: {[ln for ln in text.splitlines() if tok in ln][:2]}")
    lines = [ln for ln in _log_lines(w.srv) if "access_token" in ln]
    eq(len(lines), 6, f"access log lines with access_token ({lines})")
    for ln in lines:
        check("access_token=***" in ln, f"access_token not masked as *** in {ln!r}")
    check(any("/v1/names?prefix=t&access_token=***&limit=1" in ln for ln in lines),
          f"the rest of the query after a masked token is lost: {lines}")


@test
def test_access_token_never_in_log(ctx):
    """Whatever the query looks like, a token the server takes (or is sent)
    never reaches the access log: a parameter whose name ends in
    access_token before the real one, a percent-encoded name (which the
    server decodes, and so accepts as the token), the token twice."""
    w = World(ctx, "--log-requests")
    c = w.c
    cases = [
        ("/v1/names?xaccess_token=1&access_token=" + q(w.full), 200),
        ("/v1/names?access%5Ftoken=" + q(w.full), 200),
        ("/v1/names?%61ccess_token=" + q(w.read), 200),
        ("/v1/names?access_token=" + q(w.read) + "&access_token=" + q(w.full), 200),
        ("/v1/names/access_token=x?access_token=" + q(w.read), 404),
    ]
    for t, st in cases:
        r = c.get(t)
        check(r.status == st, f"GET {t.replace(w.full, '<full>').replace(w.read, '<read>')}: {r.desc()}, want {st}")
    wait_until(lambda: len(_log_lines(w.srv)) >= len(cases), 2.0)
    leaks = [ln for ln in w.srv.stderr_lines if w.full in ln or w.read in ln]
    check(not leaks, f"{len(leaks)} access log lines show a token in clear: "
                     f"{[ln.replace(w.full, '<FULL TOKEN>').replace(w.read, '<READ TOKEN>') for ln in leaks][:3]}")


# --------------------------------------------------------------------------
# Sessions: another session's token, a session's id


class Pair:
    """Sessions a (holds a name, prop, group and a queued message) and b,
    on srv; hdrs are added to every request (the bearer, on an auth
    server)."""

    def __init__(self, ctx, srv=None, hdrs=None):
        self.c = ctx.client(srv)
        self.h = hdrs or {}
        self.k = ctx.uid()
        c, h = self.c, self.h
        self.a = harness.Session(expect_json(c.post("/v1/sessions", {"ttl": 600}, headers=h), 201))
        self.b = harness.Session(expect_json(c.post("/v1/sessions", {"ttl": 600}, headers=h), 201))
        for p in (name_path(self.k), prop_path(self.k), group_path(self.k)):
            expect_status(c.put(p, {"value": "a"}, token=self.a.token, headers=h), 201)
        expect_status(c.post("/v1/send", {"to": {"session": self.a.id}, "body": "m1"}, headers=h), 202)

    def req(self, method, path, body=None, token=None):
        return self.c.request(method, path, body, token=token, headers=self.h)

    def unchanged(self, what):
        a, k = self.a, self.k
        r = self.req("GET", f"/v1/sessions/{a.id}")
        check(r.status == 200, f"{what}: session a is gone: {r.desc()}")
        h = r.json["held"]
        eq((h["names"], h["props"], h["groups"], r.json["queued"]), ([k], [k], [k], 1), f"{what}: what a holds")
        eq(expect_json(self.req("GET", name_path(k)), 200)["value"], "a", f"{what}: a's name value")
        eq(expect_json(self.req("GET", prop_path(k)), 200)["holders"], [{"session": a.id, "value": "a"}],
           f"{what}: holders of a's prop")
        eq(expect_json(self.req("GET", group_path(k)), 200)["members"], [{"session": a.id, "value": "a"}],
           f"{what}: members of a's group")
        r = self.req("GET", f"/v1/sessions/{a.id}/messages", token=a.token)
        eq([m["body"] for m in expect_json(r, 200)["messages"]], ["m1"], f"{what}: a's mailbox")


def _another_sessions_token(ctx, srv=None, hdrs=None):
    p = Pair(ctx, srv, hdrs)
    a, b, k = p.a, p.b, p.k
    bt = b.token
    expect_error(p.req("POST", f"/v1/sessions/{a.id}/heartbeat", {"ttl": 1}, bt), 403, "bad_token")
    expect_error(p.req("DELETE", f"/v1/sessions/{a.id}", None, bt), 403, "bad_token")
    expect_error(p.req("GET", f"/v1/sessions/{a.id}/messages?after=1", None, bt), 403, "bad_token")
    expect_error(p.req("GET", f"/v1/sessions/{a.id}/messages?wait=1", None, bt), 403, "bad_token")
    e = expect_error(p.req("PUT", name_path(k), {"value": "b"}, bt), 409, "name_taken")
    eq(e["owner"], a.id, "name_taken owner")
    expect_error(p.req("DELETE", name_path(k), None, bt), 403, "not_owner")
    expect_error(p.req("DELETE", prop_path(k), None, bt), 404, "not_held")
    expect_error(p.req("DELETE", group_path(k), None, bt), 404, "not_held")
    p.unchanged("requests with another session's token")
    # b may hold the same prop and join the same group: its own entries only
    eq(expect_json(p.req("PUT", prop_path(k), {"value": "b"}, bt), 201)["session"], b.id, "b's prop entry")
    eq(expect_json(p.req("PUT", group_path(k), {"value": "b"}, bt), 201)["session"], b.id, "b's membership")
    expect_status(p.req("DELETE", prop_path(k), None, bt), 204)
    expect_status(p.req("DELETE", group_path(k), None, bt), 204)
    p.unchanged("b's own prop and group entries, set and removed")
    b_info = expect_json(p.req("GET", f"/v1/sessions/{b.id}"), 200)
    eq((b_info["names"], b_info["props"], b_info["groups"]), (0, 0, 0), "what b holds")


@test
def test_another_sessions_token(ctx):
    _another_sessions_token(ctx)


@test
def test_another_sessions_token_on_auth_server(ctx):
    full = "f-" + secrets.token_hex(10)
    srv = ctx.start("--auth-token", full)
    _another_sessions_token(ctx, srv, bearer(full))


def _id_variants(s, other):
    """Tokens that are not s's token but are made from what is public (its
    id) or near it."""
    return [s.id, s.id.upper(), s.id + s.id, s.id * 2 + "00", s.token.upper(), s.token[:-1], s.token + "0",
            s.token[1:] + s.token[0], other.id, "0" * 32, s.id + s.token[16:]]


@test
def test_session_id_never_unlocks(ctx):
    p = Pair(ctx)
    a, b, k = p.a, p.b, p.k
    for tok in _id_variants(a, b):
        if tok == a.token:
            continue
        what = f"token {tok!r}"
        for method, path, body in [
            ("POST", f"/v1/sessions/{a.id}/heartbeat", {"ttl": 1}),
            ("DELETE", f"/v1/sessions/{a.id}", None),
            ("GET", f"/v1/sessions/{a.id}/messages?after=1", None),
            ("PUT", name_path(k), {"value": "x"}),
            ("DELETE", name_path(k), None),
            ("PUT", name_path(k + "-new"), {"value": "x"}),
            ("PUT", prop_path(k), {"value": "x"}),
            ("DELETE", prop_path(k), None),
            ("PUT", group_path(k), {"value": "x"}),
            ("DELETE", group_path(k), None),
            ("POST", "/v1/send", {"to": {"session": a.id}, "body": "forged"}),
        ]:
            r = p.req(method, path, body, tok)
            check(r.status == 403, f"{what}: {method} {path}: {r.desc()}, want 403 bad_token")
            expect_error(r, 403, "bad_token")
    p.unchanged("requests with a's id as a token")
    expect_error(p.req("GET", name_path(k + "-new")), 404, "name_not_found")
    # and as the Bearer of an auth server: 401
    full = "f-" + secrets.token_hex(10)
    srv = ctx.start("--auth-token", full)
    c = ctx.client(srv)
    s = harness.Session(expect_json(c.post("/v1/sessions", headers=bearer(full)), 201))
    for t in (s.id, s.token):
        expect_unauthorized(c.get("/v1/names", headers=bearer(t)), "a session's id or token as the Bearer")
        expect_unauthorized(c.put(name_path("x"), {"value": 1}, token=s.token, headers=bearer(t)),
                            "a session's id or token as the Bearer, PUT")


@test
def test_session_id_is_no_sign_of_life(ctx):
    """Requests carrying a session's id as the token do not keep its lease."""
    c = ctx.client()
    s = c.session(ttl=2)
    k = ctx.uid()
    expect_status(c.put_name(k, 1, s.token), 201)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3.2:
        r = c.heartbeat(s.id, s.id)
        if r.status == 404:
            break
        expect_error(r, 403, "bad_token")
        expect_error(c.put_name(k + "x", 1, s.id), 403, "bad_token")
        time.sleep(0.25)
    ok = wait_until(lambda: c.get_session(s.id).status == 404, 1.5)
    check(ok is not None, "a ttl-2 session touched only with its id as the token is alive after 4.7 s")
    expect_error(c.get_name(k), 404, "name_not_found")
