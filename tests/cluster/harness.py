"""Harness for the rollcall cluster tests: rollcall nodes started with --etcd
on loopback ports, a Cluster of them, a client that picks a node per
request, and the test registry that run_cluster.py drives. The HTTP client
and the assertions are tests/e2e/harness.py's (imported, not copied).
Python 3 standard library only."""

import importlib.util
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import etcd  # noqa: E402
from etcd import EtcdCluster, free_ports  # noqa: E402,F401

# tests/e2e/harness.py, under another module name (this one is "harness").
_spec = importlib.util.spec_from_file_location(
    "e2e_harness", os.path.join(HERE, "..", "e2e", "harness.py"))
e2e = importlib.util.module_from_spec(_spec)
sys.modules["e2e_harness"] = e2e
_spec.loader.exec_module(e2e)

Client, Response, Session, RawConn = e2e.Client, e2e.Response, e2e.Session, e2e.RawConn
Fail, check, eq = e2e.Fail, e2e.check, e2e.eq
expect_status, expect_json, expect_error, expect_no_body = (
    e2e.expect_status, e2e.expect_json, e2e.expect_error, e2e.expect_no_body)
wait_until, in_thread, q, name_path, short, async_request = (
    e2e.wait_until, e2e.in_thread, e2e.q, e2e.name_path, e2e.short, e2e.async_request)
HEX16, HEX32, HOST = e2e.HEX16, e2e.HEX32, e2e.HOST

BIN = "build/rollcall"  # set by run_cluster.py (and copied to e2e.BIN)
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def set_binary(path):
    global BIN
    BIN = path
    e2e.BIN = path


# --------------------------------------------------------------------------
# Test registry


class TestCase:
    def __init__(self, fn, etcd_mode, timeout):
        self.fn = fn
        mod = fn.__module__.rsplit(".", 1)[-1]
        mod = mod[5:] if mod.startswith("test_") else mod
        name = fn.__name__[5:] if fn.__name__.startswith("test_") else fn.__name__
        self.name = f"{mod}.{name}"
        self.etcd = etcd_mode    # "shared", "own" (the test starts its own) or None
        self.timeout = timeout   # seconds


TESTS = []


def test(etcd="shared", timeout=60):
    """Registers fn(ctx). etcd="shared": ctx.etcd is the run's 3-member
    etcd, which the test must leave whole; "own": the test breaks etcd and
    starts its own (ctx.start_etcd); None: no etcd needed."""
    def deco(fn):
        TESTS.append(TestCase(fn, etcd, timeout))
        return fn
    return deco


class Ctx:
    """What a test gets: the shared etcd, and what it starts (nodes, etcd
    clusters), all stopped when it ends."""

    def __init__(self, shared_etcd=None, shared_error=None):
        self._shared = shared_etcd
        self._shared_error = shared_error
        self.nodes = []
        self.etcds = []
        self.prefix = f"/rc-test-{secrets.token_hex(4)}/"
        self.notes = []  # measurements, printed under the test's line
        self._lock = threading.Lock()

    def note(self, msg):
        self.notes.append(msg)

    @property
    def etcd(self):
        if self._shared is None:
            raise Fail(f"shared etcd not running: {self._shared_error}")
        return self._shared

    def start_etcd(self, n=3, start=True):
        e = EtcdCluster(n, start=False)
        with self._lock:
            self.etcds.append(e)
        if start:
            e.start()
        return e

    def start_node(self, name, etcd_urls, **kw):
        n = Node(name, etcd_urls, **kw)
        with self._lock:
            self.nodes.append(n)
        n.start()
        return n

    def cluster(self, n=3, ttl=3, etcd=None, names=None, extra=(), prefix=None):
        """n nodes (n1..nN unless names) on etcd (default the shared one),
        all serving (/healthz 200) on return."""
        return Cluster(self, etcd or self.etcd, n=n, ttl=ttl, names=names, extra=extra,
                       prefix=prefix or self.prefix)

    @staticmethod
    def uid():
        return "t" + secrets.token_hex(5)

    def cleanup(self):
        """Stops every node (SIGTERM, all at once, then waits) and every
        etcd this test started. Returns the problems seen: a node that died
        unasked, a sanitizer report, an exit code other than 0 after
        SIGTERM (they fail a test that passed, and explain one that did
        not)."""
        problems = []
        with self._lock:
            nodes, etcds = list(self.nodes), list(self.etcds)
        for n in nodes:
            if n.proc is not None and n.proc.poll() is None:
                if n.paused:
                    n.cont()
                n.term()
        for n in nodes:
            p = n.finish(timeout=5.0)
            if p:
                problems.append(p)
        for e in etcds:
            e.close()
        return problems


# --------------------------------------------------------------------------
# A rollcall node

_all_nodes = []
_all_lock = threading.Lock()
SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:")


class Node:
    """build/rollcall --listen 127.0.0.1:PORT --etcd URLS --node NAME
    --node-ttl TTL [--etcd-prefix P] [extra...]. Its stderr is kept."""

    def __init__(self, name, etcd_urls, ttl=3, prefix=None, extra=(), port=None,
                 wait_ready=True, ready_timeout=20.0, echo=None):
        self.name = name
        self.echo = echo  # called with each stderr line, if given
        self.etcd_urls = etcd_urls
        self.ttl = ttl
        self.prefix = prefix
        self.extra = [str(a) for a in extra]
        self.port = port
        self.wait_ready = wait_ready
        self.ready_timeout = ready_timeout
        self.proc = None
        self.stderr_lines = []
        self.paused = False
        self.expected_exit = False  # set when the test kills or stops it
        self.any_exit = False       # the test allows it to end by itself, with any code
        self.started_at = None
        self._reader = None
        self._listen = threading.Event()

    @property
    def url(self):
        return f"http://{HOST}:{self.port}"

    def argv(self):
        a = [BIN, "--listen", f"{HOST}:{self.port}", "--etcd", self.etcd_urls,
             "--node", self.name, "--node-ttl", str(self.ttl)]
        if self.prefix:
            a += ["--etcd-prefix", self.prefix]
        return a + self.extra

    def start(self):
        """Starts the process (again, after a kill, on the same port unless
        it was never given one); waits for its listen line, then for
        /healthz 200 when wait_ready. A start that lost its port to
        another process is tried again on a new port."""
        if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
            raise Fail(f"rollcall binary not found or not executable: {BIN}")
        fixed = self.port is not None
        for attempt in range(3):
            if self.port is None:
                self.port = free_ports(1)[0]
            self._spawn()
            if self._listen.wait(5.0) and self.proc.poll() is None:
                break
            if self.proc.poll() is None:
                self.kill()
                raise Fail(f"node {self.name}: no listen line within 5 s; stderr: {self.log_tail()}")
            self.proc.wait()
            tail = self.log_tail()
            if not fixed and attempt < 2 and re.search(r"in use|bind", tail, re.I):
                self.port = None
                continue
            raise Fail(f"node {self.name} exited at start (rc {self.proc.returncode}): {self.argv()[1:]} "
                       f"stderr: {tail}")
        if self.wait_ready:
            self.wait_healthy(self.ready_timeout)
        return self

    def _spawn(self):
        self.stderr_lines = []
        self._listen = threading.Event()
        self.paused = False
        self.expected_exit = False
        self.started_at = time.time()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        with _all_lock:
            _all_nodes.append(self)
        self._reader = threading.Thread(target=self._read_stderr, args=(self.proc, self.stderr_lines),
                                        daemon=True)
        self._reader.start()

    def _read_stderr(self, proc, lines):
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            lines.append(line)
            if len(lines) > 20000:  # a long-lived node (make cluster) keeps its last lines
                del lines[:10000]
            if self.echo is not None:
                self.echo(self, line)
            if "listening on" in line:
                self._listen.set()
        self._listen.set()  # EOF: the process ended

    def wait_healthy(self, timeout=20.0):
        """Waits until GET /healthz answers 200."""
        c = self.client(timeout=2)
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if self.proc.poll() is not None:
                raise Fail(f"node {self.name} exited (rc {self.proc.returncode}) before /healthz "
                           f"was 200; stderr: {self.log_tail()}")
            try:
                r = c.get("/healthz")
                last = r.desc()
                if r.status == 200:
                    c.close()
                    return
            except OSError as e:
                last = repr(e)
            if time.monotonic() >= deadline:
                c.close()
                raise Fail(f"node {self.name}: /healthz not 200 within {timeout:.0f} s (last: {last}); "
                           f"stderr: {self.log_tail()}")
            time.sleep(0.1)

    def client(self, timeout=10):
        return Client(self.port, timeout=timeout)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=8):
        return " | ".join(self.stderr_lines[-n:])[-1500:]

    # ---- signals (only ever to our own child, which we have not reaped)

    def _signal(self, sig):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self):
        """kill -9, and reap."""
        self.expected_exit = True
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.paused = False

    def pause(self):
        """SIGSTOP."""
        self._signal(signal.SIGSTOP)
        self.paused = True

    def cont(self):
        """SIGCONT."""
        self._signal(signal.SIGCONT)
        self.paused = False

    def term(self):
        """SIGTERM, without waiting."""
        self.expected_exit = True
        self._signal(signal.SIGTERM)

    def stop(self, timeout=5.0):
        """SIGTERM; returns the exit code (fails past timeout)."""
        self.term()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait(5)
            raise Fail(f"node {self.name} did not exit within {timeout} s of SIGTERM; "
                       f"stderr: {self.log_tail()}")

    def finish(self, timeout=5.0):
        """After a term(): waits, kills if needed; returns a problem or None."""
        if self.proc is None:
            return None
        unasked = self.proc.poll() is not None and not self.expected_exit
        try:
            rc = self.proc.wait(timeout)
            late = False
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            rc, late = self.proc.returncode, True
        if self._reader is not None:
            self._reader.join(2)
        text = "\n".join(self.stderr_lines)
        m = SANITIZER_RE.search(text)
        if m:
            i = text.rfind("\n", 0, m.start()) + 1  # from the start of its line (file:line:)
            return f"node {self.name}: sanitizer report: {' '.join(text[i:i + 600].split())}"
        if self.any_exit:
            return None
        if unasked:
            return f"node {self.name} died during the test (rc {rc}); stderr: {self.log_tail()}"
        if late:
            return f"node {self.name} did not exit within {timeout} s of SIGTERM; stderr: {self.log_tail()}"
        if rc not in (0, -signal.SIGKILL):
            return f"node {self.name}: exit code {rc} after SIGTERM (want 0); stderr: {self.log_tail()}"
        return None


def kill_all_nodes():
    with _all_lock:
        nodes = list(_all_nodes)
    for n in nodes:
        if n.proc is not None and n.proc.poll() is None:
            try:
                n.proc.send_signal(signal.SIGCONT)
                n.proc.kill()
                n.proc.wait(2)
            except (OSError, subprocess.TimeoutExpired):
                pass


import atexit  # noqa: E402
atexit.register(kill_all_nodes)


# --------------------------------------------------------------------------
# Cluster


class Cluster:
    """n rollcall nodes sharing one etcd under one prefix."""

    def __init__(self, ctx, etcd_cluster, n=3, ttl=3, names=None, extra=(), prefix=None):
        self.ctx = ctx
        self.etcd = etcd_cluster
        self.ttl = ttl
        self.prefix = prefix
        self.extra = list(extra)
        names = list(names or [f"n{i}" for i in range(1, n + 1)])
        self.nodes = []
        for nm in names:  # started one by one: each waits for /healthz 200
            self.nodes.append(self.add_node(nm, _append=False))

    def add_node(self, name, wait_ready=True, _append=True, **kw):
        kw.setdefault("ttl", self.ttl)
        kw.setdefault("prefix", self.prefix)
        kw.setdefault("extra", self.extra)
        etcd_urls = kw.pop("etcd_urls", None) or self.etcd.urls
        node = self.ctx.start_node(name, etcd_urls, wait_ready=wait_ready, **kw)
        if _append:
            self.nodes.append(node)
        return node

    def node(self, name):
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def random_node(self, exclude=()):
        cands = [n for n in self.nodes if n.running() and not n.paused and n not in exclude]
        if not cands:
            raise Fail("no running node to pick")
        return random.choice(cands)

    @property
    def names(self):
        return [n.name for n in self.nodes]

    def any(self, **kw):
        """A client that sends each request to a random live node."""
        return AnyClient(self, **kw)


# --------------------------------------------------------------------------
# Clients


def node_of(r):
    """The X-Rollcall-Node of an answer (asserting it is there)."""
    v = r.header("X-Rollcall-Node")
    if v is None or not v.strip():
        raise Fail(f"{r.desc()}: no X-Rollcall-Node header")
    return v.strip()


class AnyClient:
    """Sends every request to a random live node of the cluster (one
    keep-alive connection per node), asserts X-Rollcall-Node on every
    answer, and passes min_index (the highest X-Rollcall-Index it has seen)
    with every /v1 request unless min_index=False, so that it reads its own
    writes wherever a request lands (api.md: min_index)."""

    def __init__(self, cluster, min_index=True, timeout=10):
        self.cluster = cluster
        self.use_min_index = min_index
        self.timeout = timeout
        self.clients = {}
        self.seen = 0
        self.last_node = None  # the node the last request went to
        self.lock = threading.Lock()

    def _client(self, node):
        c = self.clients.get(node.name)
        if c is None or c.port != node.port:
            c = self.clients[node.name] = node.client(self.timeout)
        return c

    def request(self, method, path, body=None, *, node=None, exclude=(), min_index=None, **kw):
        node = node or self.cluster.random_node(exclude)
        self.last_node = node
        if min_index is None:
            mi = self.seen if self.use_min_index else 0
        else:
            mi = min_index or 0  # False: none
        if mi and path.startswith("/v1/"):
            path += ("&" if "?" in path else "?") + f"min_index={mi}"
        r = self._client(node).request(method, path, body, **kw)
        r.served_by = node_of(r)
        check(r.served_by in self.cluster.names,
              f"{r.desc()}: X-Rollcall-Node {r.served_by!r} is not a node of the cluster {self.cluster.names}")
        r.asked = node.name
        v = r.header("X-Rollcall-Index")
        if v and v.strip().isdigit():
            with self.lock:
                self.seen = max(self.seen, int(v))
        return r

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def session(self, ttl=30, label=None, node=None):
        """Creates a session (asserting 201) on node (default random);
        returns a Session with .home, the node that created it."""
        body = {"ttl": ttl}
        if label is not None:
            body["label"] = label
        r = self.post("/v1/sessions", body, node=node)
        expect_status(r, 201)
        s = Session(r.json, r)
        s.home = r.asked
        eq(r.served_by, s.home, "X-Rollcall-Node of a session's creation")
        return s

    def close(self):
        for c in self.clients.values():
            c.close()


def put_json(client, path, value, token):
    return client.put(path, {"value": value}, token=token)


def stderr_of(nodes):
    """The tails of several nodes' logs, for a failure message."""
    return "; ".join(f"{n.name}: {n.log_tail(4)}" for n in nodes)


class Load:
    """Worker threads calling fn(worker_index, n) with n = 0, 1, 2, ...
    until stop(); fn's own exceptions end that worker and are re-raised by
    stop()."""

    def __init__(self, workers, fn):
        self.fn = fn
        self.stopping = threading.Event()
        self.errors = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(workers)]
        for t in self.threads:
            t.start()

    def _run(self, i):
        n = 0
        while not self.stopping.is_set():
            try:
                self.fn(i, n)
            except BaseException as e:  # noqa: BLE001 - reported by stop()
                self.errors.append(e)
                return
            n += 1

    def stop(self, timeout=20.0):
        self.stopping.set()
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, end - time.monotonic()))
        if any(t.is_alive() for t in self.threads):
            raise Fail(f"load workers still running {timeout:.0f} s after stop")
        if self.errors:
            raise self.errors[0]


def parallel(fn, items, threads=8):
    """Calls fn(item) for every item on `threads` threads; returns the
    results in item order; re-raises the first exception."""
    items = list(items)
    results = [None] * len(items)
    errors = []
    idx = iter(range(len(items)))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if errors:
                    return
                i = next(idx, None)
            if i is None:
                return
            try:
                results[i] = fn(items[i])
            except BaseException as e:  # noqa: BLE001
                with lock:
                    errors.append(e)
                return

    ts = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, min(threads, len(items))))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    return results


def dumps(v):
    return json.dumps(v, separators=(",", ":"), sort_keys=True)
