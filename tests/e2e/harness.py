"""Harness for the rollcall end-to-end tests: starting and stopping the real
server, a small HTTP client with rollcall helpers, assertions, and the test
registry that run_e2e.py drives. Python 3 standard library only."""

import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

BIN = "build/rollcall"  # set by run_e2e.py
HOST = "127.0.0.1"
JSON_CT = "application/json; charset=utf-8"

# --------------------------------------------------------------------------
# Test registry


class TestCase:
    def __init__(self, fn):
        self.fn = fn
        mod = fn.__module__.rsplit(".", 1)[-1]
        if mod.startswith("test_"):
            mod = mod[5:]
        name = fn.__name__
        if name.startswith("test_"):
            name = name[5:]
        self.name = f"{mod}.{name}"


TESTS = []


def test(fn):
    """Registers a test function fn(ctx)."""
    TESTS.append(TestCase(fn))
    return fn


class Ctx:
    """What a test gets: the shared default server, dedicated servers it
    starts (killed when the test ends), and unique strings."""

    def __init__(self, shared, shared_error=None):
        self._shared = shared
        self._shared_error = shared_error
        self._servers = []

    @property
    def shared(self):
        if self._shared is None:
            raise AssertionError(f"shared server not running: {self._shared_error}")
        return self._shared

    def client(self, server=None, timeout=10):
        return Client(server or self.shared, timeout=timeout)

    def start(self, *args, **kw):
        srv = Server(*args, **kw)
        self._servers.append(srv)
        return srv

    @staticmethod
    def uid():
        return "t" + secrets.token_hex(5)

    def cleanup(self):
        for s in self._servers:
            s.kill()


# --------------------------------------------------------------------------
# Server process

_all_servers = []
_all_lock = threading.Lock()
LISTEN_RE = re.compile(r"rollcall: listening on ([0-9.]+):(\d+)")


class Server:
    """A rollcall process on a free port. Server(*extra_flags); nofile=(soft,
    hard) starts it with that open-file limit (by prlimit)."""

    def __init__(self, *args, listen=True, nofile=None):
        if not os.path.isfile(BIN) or not os.access(BIN, os.X_OK):
            raise AssertionError(f"server binary not found or not executable: {BIN}")
        prefix = ["prlimit", f"--nofile={nofile[0]}:{nofile[1]}", "--"] if nofile else []
        self.argv = prefix + [BIN] + (["--listen", f"{HOST}:0"] if listen else []) + [str(a) for a in args]
        self.stderr_lines = []
        self.port = None
        self._ready = threading.Event()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        with _all_lock:
            _all_servers.append(self)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._ready.wait(5.0) or self.port is None:
            self.kill()
            raise AssertionError(
                f"server did not print its listen line within 5 s: {self.argv} "
                f"stderr={self.stderr_text()[:300]!r}")

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr_lines.append(line)
            m = LISTEN_RE.search(line)
            if m and self.port is None:
                self.port = int(m.group(2))
                self._ready.set()
        self._ready.set()  # EOF: the process ended

    def stderr_text(self):
        return "\n".join(self.stderr_lines)

    def running(self):
        return self.proc.poll() is None

    def stop(self, timeout=2.0):
        """SIGTERM, then the exit code; fails if it takes over timeout s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"server did not exit within {timeout} s of SIGTERM")

    def stop_clean(self):
        rc = self.stop()
        if rc != 0:
            tail = " | ".join(self.stderr_lines[-5:])
            raise AssertionError(f"server exit code {rc} after SIGTERM (want 0); stderr tail: {tail[:400]}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                pass


def kill_all_servers():
    with _all_lock:
        servers = list(_all_servers)
    for s in servers:
        s.kill()


def run_binary(args, timeout=5.0):
    """Runs the binary to completion: (exit code, stdout, stderr)."""
    if not os.path.isfile(BIN):
        raise AssertionError(f"server binary not found: {BIN}")
    p = subprocess.Popen([BIN] + args, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError(f"{args}: did not exit within {timeout} s")
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


# --------------------------------------------------------------------------
# HTTP client


class Response:
    def __init__(self, method, path, status, headers, body, elapsed):
        self.method, self.path = method, path
        self.status = status
        self.headers = headers  # http.client.HTTPMessage
        self.body = body        # bytes
        self.elapsed = elapsed  # seconds from send to full answer
        self._json = None

    def header(self, name):
        return self.headers.get(name)

    @property
    def json(self):
        if self._json is None:
            try:
                self._json = json.loads(self.body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                raise AssertionError(f"{self.desc()}: body is not JSON ({e})")
        return self._json

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    @property
    def index(self):
        v = self.headers.get("X-Rollcall-Index")
        if v is None:
            raise AssertionError(f"{self.desc()}: no X-Rollcall-Index header")
        if not re.fullmatch(r"[0-9]+", v.strip()):
            raise AssertionError(f"{self.desc()}: bad X-Rollcall-Index {v!r}")
        return int(v)

    def desc(self):
        b = self.body[:160].decode("utf-8", "replace")
        return f"{self.method} {short(self.path)} -> {self.status} {b!r}"


def short(s, n=80):
    return s if len(s) <= n else s[:n] + "..."


_RETRYABLE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
              http.client.CannotSendRequest, http.client.BadStatusLine)

# --------------------------------------------------------------------------
# Recording answers, for the response-conformance check (conformance.py)


class Answer:
    """One answer as Client.request got it: the method, the request path
    without the query, the status, the headers ((name, value) pairs as
    sent), the body bytes, and whether the request asked for
    text/event-stream."""

    __slots__ = ("method", "path", "status", "headers", "body", "event_stream")

    def __init__(self, method, path, status, headers, body, event_stream):
        self.method, self.path, self.status = method, path, status
        self.headers, self.body, self.event_stream = headers, body, event_stream


_HEX = re.compile(r"[0-9a-f]+")
_TOKEN = re.compile(r"[a-z_]{1,40}")
_VERBATIM_HEADERS = {"allow", "cache-control", "connection", "content-type",
                     "transfer-encoding", "www-authenticate"}


def _str_shape(s):
    """A class of s that keeps what a schema can tell apart: snake_case
    words (codes, types, states) as they are; hex ids by length; anything
    else by its length bucket and the kinds of characters it holds."""
    if _TOKEN.fullmatch(s):
        return s
    n = len(s)
    if n in (16, 32) and _HEX.fullmatch(s):
        return f"hex{n}"
    kinds = frozenset("a" if c.isascii() and c.isalpha() and c.islower() else
                      "A" if c.isascii() and c.isalpha() else
                      "9" if c.isascii() and c.isdigit() else
                      c if c in "._:-/ " else
                      "^" if ord(c) < 32 or ord(c) == 127 else
                      "!" if c.isascii() else "u" for c in s[:600])
    size = next(b for b in (0, 1, 16, 64, 256, 512, 1 << 62) if n <= b)
    return ("str", size, kinds)


def json_shape(v, depth=0):
    """The shape of a JSON value: its structure, the member names, the kind
    of each scalar (see _str_shape; numbers by sign and integrality), array
    lengths up to 16. Values deeper than 12 levels are one shape."""
    if depth > 12:
        return "deep"
    if v is None or isinstance(v, bool):
        return repr(v)
    if isinstance(v, int):
        return ("int", (v > 0) - (v < 0), v == 1)
    if isinstance(v, float):
        return ("num", (v > 0) - (v < 0), v.is_integer())
    if isinstance(v, str):
        return _str_shape(v)
    if isinstance(v, list):
        return ("list", min(len(v), 17), frozenset(json_shape(x, depth + 1) for x in v))
    if isinstance(v, dict):
        return ("obj", tuple(sorted((k, json_shape(x, depth + 1)) for k, x in v.items())))
    return type(v).__name__


def answer_signature(a, path_key):
    """What makes an answer new to the conformance check: method, path_key
    (the route it matched), status, header names (with the values that
    have a fixed set of forms), and the body's shape."""
    hdrs = tuple(sorted((k.lower(), v if k.lower() in _VERBATIM_HEADERS else _str_shape(v))
                        for k, v in a.headers if k.lower() not in ("date", "content-length")))
    ct = next((v for k, v in a.headers if k.lower() == "content-type"), "")
    body = ("empty",) if not a.body else ("bytes", min(len(a.body), 1))
    if a.body and "json" in ct.lower():
        try:
            body = json_shape(json.loads(a.body.decode("utf-8")))
        except (ValueError, UnicodeDecodeError, RecursionError):
            body = ("not json", a.body[:64])
    return (a.method, path_key, a.status, a.event_stream, hdrs, body)


class Recorder:
    """Keeps the answers Client.request gets while it is harness.RECORDER.
    To keep memory modest it keeps the first `keep` answers of each
    signature (answer_signature; path_key(method, path) names the route,
    by default the path itself) and counts the rest; an answer whose
    signature is new is always kept. Thread-safe."""

    def __init__(self, path_key=None, keep=2):
        self.path_key = path_key or (lambda method, path: path)
        self.keep = keep
        self.seen = 0
        self._counts = {}
        self._answers = []
        self._lock = threading.Lock()

    def record(self, method, path, status, headers, body, event_stream):
        a = Answer(method, path.split("?", 1)[0].split("#", 1)[0], status,
                   list(headers), body, event_stream)
        try:
            sig = answer_signature(a, self.path_key(a.method, a.path))
        except Exception as e:  # noqa: BLE001 - never lose an answer to a signature bug
            sig = ("unsigned", repr(e), id(a))
        with self._lock:
            self.seen += 1
            n = self._counts.get(sig, 0)
            self._counts[sig] = n + 1
            if n < self.keep:
                self._answers.append(a)

    def answers(self):
        with self._lock:
            return list(self._answers)


RECORDER = None  # a Recorder while answers are recorded (run_e2e.py sets it)


class Client:
    """One keep-alive HTTP connection to a server, plus rollcall helpers."""

    def __init__(self, server, timeout=10):
        self.port = server.port if isinstance(server, Server) else int(server)
        self.timeout = timeout
        self.conn = None
        self._used = False

    def _connect(self, timeout):
        self.close()
        self.conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        self._used = False

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, *, raw=None, token=None,
                headers=None, timeout=None, content_type="application/json",
                chunked=False):
        """body: a Python value sent as JSON; raw: bytes/str sent as is;
        neither: no body. token: X-Session-Token value."""
        hdrs = {}
        if token is not None:
            hdrs["X-Session-Token"] = token
        data = None
        if raw is not None:
            data = raw.encode("utf-8") if isinstance(raw, str) else raw
        elif body is not None:
            data = json.dumps(body).encode("utf-8")
        if data is not None and content_type:
            hdrs["Content-Type"] = content_type
        if headers:
            hdrs.update(headers)
        timeout = timeout or self.timeout
        for attempt in (0, 1):
            if self.conn is None:
                self._connect(timeout)
            reused = self._used
            self.conn.timeout = timeout
            if self.conn.sock is not None:
                self.conn.sock.settimeout(timeout)
            t0 = time.monotonic()
            try:
                if chunked:
                    self.conn.request(method, path, body=iter([data]) if data else iter([]),
                                      headers=hdrs, encode_chunked=True)
                else:
                    self.conn.request(method, path, body=data, headers=hdrs)
                self._used = True
                r = self.conn.getresponse()
                body_bytes = r.read()
            except _RETRYABLE:
                self.close()
                if reused and attempt == 0:
                    continue  # an idle keep-alive connection closed by the server
                raise
            except Exception:
                self.close()
                raise
            elapsed = time.monotonic() - t0
            if r.will_close:
                self.close()
            rec = RECORDER
            if rec is not None:
                accept = next((v for k, v in hdrs.items() if k.lower() == "accept"), "")
                rec.record(method, path, r.status, r.getheaders(), body_bytes,
                           "text/event-stream" in accept.lower())
            return Response(method, path, r.status, r.headers, body_bytes, elapsed)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def head(self, path, **kw):
        return self.request("HEAD", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # ---- rollcall helpers

    def session(self, ttl=None, label=None, **extra):
        """Creates a session (asserting 201); returns a Session."""
        body = dict(extra)
        if ttl is not None:
            body["ttl"] = ttl
        if label is not None:
            body["label"] = label
        r = self.post("/v1/sessions", body if body else None)
        expect_status(r, 201)
        return Session(r.json, r)

    def get_session(self, sid, **kw):
        return self.get(f"/v1/sessions/{sid}", **kw)

    def heartbeat(self, sid, token=None, body=None, **kw):
        return self.post(f"/v1/sessions/{sid}/heartbeat", body, token=token, **kw)

    def delete_session(self, sid, token=None, **kw):
        return self.delete(f"/v1/sessions/{sid}", token=token, **kw)

    def put_name(self, key, value=None, token=None, *, no_body=False, **kw):
        """PUT /v1/names/{key} with {"value": value} (or no body)."""
        path = name_path(key)
        if no_body or "raw" in kw:
            return self.put(path, token=token, **kw)
        return self.put(path, {"value": value}, token=token, **kw)

    def get_name(self, key, **kw):
        return self.get(name_path(key), **kw)

    def delete_name(self, key, token=None, **kw):
        return self.delete(name_path(key), token=token, **kw)

    def healthz(self):
        return self.get("/healthz")


class Session:
    def __init__(self, data, resp=None):
        self.data = data
        self.id = data.get("id")
        self.token = data.get("token")
        self.resp = resp

    def __repr__(self):
        return f"Session({self.id})"


def q(s, safe=""):
    """Percent-encodes a key or query value (UTF-8)."""
    return urllib.parse.quote(s, safe=safe)


def name_path(key):
    """Path of a name; key is a str (percent-encoded here, '/' kept)."""
    return "/v1/names/" + q(key, safe="/")


# --------------------------------------------------------------------------
# Raw sockets, for what http.client cannot do


class RawConn:
    def __init__(self, server, timeout=10):
        port = server.port if isinstance(server, Server) else int(server)
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def read_response(self, head=False):
        """(status, headers dict lower-case, body). Content-Length bodies only."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        hdr, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = hdr.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = 0 if head else int(headers.get("content-length", "0"))
        if "chunked" in headers.get("transfer-encoding", ""):
            raise AssertionError("chunked response not supported by RawConn")
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def closed_by_peer(self, timeout=3.0):
        """True if the peer closes the connection within timeout s."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------
# Assertions


class Fail(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def eq(got, want, what=""):
    if got != want:
        raise Fail(f"{what + ': ' if what else ''}got {short(repr(got), 200)}, want {short(repr(want), 200)}")


def expect_status(r, status):
    if r.status != status:
        raise Fail(f"want {status}: {r.desc()}")


def expect_json(r, status):
    """Asserts the status and the JSON content type; returns the body."""
    expect_status(r, status)
    ct = r.header("Content-Type")
    check(ct is not None and ct.replace(" ", "").lower() == JSON_CT.replace(" ", ""),
          f"{r.method} {short(r.path)}: Content-Type {ct!r}, want {JSON_CT!r}")
    return r.json


def expect_error(r, status, code):
    """Asserts an error answer: status, content type, {"error", "message"}."""
    body = expect_json(r, status)
    check(isinstance(body, dict), f"{r.desc()}: error body is not an object")
    eq(body.get("error"), code, f"{r.method} {short(r.path)} error code")
    msg = body.get("message")
    check(isinstance(msg, str) and msg.strip() != "", f"{r.desc()}: no message sentence")
    allowed = {"error", "message"} | ({"owner"} if code == "name_taken" else set())
    extra = set(body) - allowed
    check(not extra, f"{r.desc()}: unexpected fields in error body {sorted(extra)}")
    return body


def expect_no_body(r, status):
    expect_status(r, status)
    eq(r.body, b"", f"{r.method} {short(r.path)} body")


HEX16 = re.compile(r"[0-9a-f]{16}")
HEX32 = re.compile(r"[0-9a-f]{32}")


def wait_until(pred, timeout, interval=0.05):
    """Polls pred() until true; returns the time it became true or None."""
    end = time.monotonic() + timeout
    while True:
        if pred():
            return time.monotonic()
        if time.monotonic() >= end:
            return None
        time.sleep(interval)


def in_thread(fn, *args):
    """Runs fn in a thread; returns a holder whose .result()/ .join() work."""
    holder = _ThreadResult(fn, args)
    holder.start()
    return holder


class _ThreadResult(threading.Thread):
    def __init__(self, fn, args):
        super().__init__(daemon=True)
        self.fn, self.args = fn, args
        self.value = None
        self.error = None
        self.done_at = None

    def run(self):
        try:
            self.value = self.fn(*self.args)
        except BaseException as e:  # reported by result()
            self.error = e
        self.done_at = time.monotonic()

    def result(self, timeout=15):
        self.join(timeout)
        if self.is_alive():
            raise Fail("background request did not finish in time")
        if self.error is not None:
            raise self.error
        return self.value


async def async_request(reader, writer, method, path, body=None, token=None):
    """One HTTP/1.1 request on an asyncio connection (reader, writer), for
    tests that hold thousands of connections: (status, parsed JSON body or
    None). Content-Length answers only."""
    data = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(data)}\r\n"
    if token:
        head += f"X-Session-Token: {token}\r\n"
    writer.write(head.encode() + b"Content-Type: application/json\r\n\r\n" + data)
    status = int((await reader.readline()).split()[1])
    n = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        if k.strip().lower() == "content-length":
            n = int(v)
    raw = await reader.readexactly(n) if n else b""
    return status, json.loads(raw) if raw else None
