"""A throwaway N-member etcd 3.4 cluster on 127.0.0.1 for the cluster tests
and `make cluster`. Python 3 standard library only.

    with EtcdCluster(3) as e:        # started, every member healthy
        e.urls                        # "http://127.0.0.1:P1,http://127.0.0.1:P2,..."
        i = e.leader()                # 1-based index of the leader
        e.kill(i)                     # kill -9 member i
        e.restart(i)                  # start it again on its data, wait healthy
        e.stop(2); e.stop(3)          # SIGTERM: no quorum left
        e.resume()                    # start every stopped member, wait for all

Members are m1..mN. Ports are taken at random below the kernel's ephemeral
range (so no outgoing connection can hold one) and checked free; a start that
loses a port race is tried again with new ports. Data and logs live in a
temporary directory (under /dev/shm when there is one), removed by close().
Only processes started here are ever signalled, and every cluster still
running is stopped when the interpreter exits (atexit), so a failing test
leaves nothing behind. Run this file to try it: python3 etcd.py [N]."""

import atexit
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

ETCD_BIN = os.environ.get("ETCD_BIN") or shutil.which("etcd") or "/usr/bin/etcd"
HOST = "127.0.0.1"

# --------------------------------------------------------------------------
# Ports

_port_lock = threading.Lock()
_ports_given = set()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(n):
    """n distinct TCP ports on 127.0.0.1 that nothing listens on, below the
    ephemeral range, never handed out before by this process."""
    hi = min(_ephemeral_low(), 65536) - 1
    lo = 20000 if hi > 24000 else 10000
    out = []
    with _port_lock:
        for _ in range(20000):
            if len(out) == n:
                break
            p = random.randint(lo, hi)
            if p in _ports_given or p in out:
                continue
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((HOST, p))
            except OSError:
                continue
            finally:
                s.close()
            out.append(p)
        if len(out) != n:
            raise RuntimeError(f"could not find {n} free ports")
        _ports_given.update(out)
    return out


# --------------------------------------------------------------------------
# Small HTTP helper (etcd's JSON gateway)


def http_call(url, method="GET", path="/", body=None, timeout=2.0):
    """(status, parsed JSON or None). Raises OSError on connection failure."""
    hostport = url.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data,
                     headers={"Content-Type": "application/json"} if data else {})
        r = conn.getresponse()
        raw = r.read()
        try:
            return r.status, json.loads(raw.decode("utf-8"))
        except ValueError:
            return r.status, None
    finally:
        conn.close()


# --------------------------------------------------------------------------
# The cluster

_live = []
_live_lock = threading.Lock()


def _cleanup_all():
    with _live_lock:
        clusters = list(_live)
    for c in clusters:
        try:
            c.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_cleanup_all)


class EtcdError(RuntimeError):
    pass


class Member:
    def __init__(self, index, client_port, peer_port, data_dir, log_path):
        self.index = index
        self.name = f"m{index}"
        self.client_port = client_port
        self.peer_port = peer_port
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc = None  # subprocess.Popen of the running etcd, or None

    @property
    def url(self):
        return f"http://{HOST}:{self.client_port}"

    @property
    def peer_url(self):
        return f"http://{HOST}:{self.peer_port}"

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=8):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 16384))
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


class EtcdCluster:
    """N etcd members on loopback. start=False only allocates ports and the
    directory (for a node started before its etcd); call start() later."""

    def __init__(self, n=3, start=True, wait=30.0, progress_notify="2s",
                 quota_bytes=512 * 1024 * 1024, compact_keep=100000,
                 log_level="warn", base_dir=None, extra=()):
        if not (os.path.isfile(ETCD_BIN) and os.access(ETCD_BIN, os.X_OK)):
            raise EtcdError(f"etcd not found ({ETCD_BIN}); apt-get install etcd-server")
        self.n = n
        self.wait = wait
        self.progress_notify = progress_notify
        self.quota_bytes = quota_bytes
        self.compact_keep = compact_keep
        self.log_level = log_level
        self.extra = list(extra)
        if base_dir is None and os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
            base_dir = "/dev/shm"
        self.dir = tempfile.mkdtemp(prefix="rollcall-etcd-", dir=base_dir)
        self.closed = False
        self._lock = threading.RLock()
        self._attempt = 0
        self._layout()
        with _live_lock:
            _live.append(self)
        if start:
            self.start()

    # ---- layout

    def _layout(self):
        self._attempt += 1
        ports = free_ports(2 * self.n)
        self.token = f"rc-{os.getpid()}-{int(time.time())}-{random.getrandbits(32):08x}"
        self.members = []
        for i in range(1, self.n + 1):
            d = os.path.join(self.dir, f"a{self._attempt}", f"m{i}")
            self.members.append(Member(i, ports[2 * (i - 1)], ports[2 * (i - 1) + 1], d,
                                       os.path.join(self.dir, f"a{self._attempt}", f"m{i}.log")))
        os.makedirs(os.path.join(self.dir, f"a{self._attempt}"), exist_ok=True)
        self.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def urls(self):
        """Client URLs of every member, comma separated (for --etcd)."""
        return ",".join(m.url for m in self.members)

    @property
    def url_list(self):
        return [m.url for m in self.members]

    def member(self, i):
        if not 1 <= i <= self.n:
            raise EtcdError(f"member index {i} not in 1..{self.n}")
        return self.members[i - 1]

    def url(self, i):
        return self.member(i).url

    # ---- processes

    def _argv(self, m):
        a = [ETCD_BIN, f"--name={m.name}", f"--data-dir={m.data_dir}",
             f"--listen-client-urls={m.url}", f"--advertise-client-urls={m.url}",
             f"--listen-peer-urls={m.peer_url}", f"--initial-advertise-peer-urls={m.peer_url}",
             f"--initial-cluster={self.initial_cluster}", f"--initial-cluster-token={self.token}",
             "--initial-cluster-state=new",
             "--logger=zap", "--log-outputs=stderr", f"--log-level={self.log_level}",
             f"--quota-backend-bytes={self.quota_bytes}", "--snapshot-count=10000",
             "--heartbeat-interval=100", "--election-timeout=1000"]
        if self.compact_keep:
            a += ["--auto-compaction-mode=revision", f"--auto-compaction-retention={self.compact_keep}"]
        if self.progress_notify:
            a.append(f"--experimental-watch-progress-notify-interval={self.progress_notify}")
        return a + self.extra

    def _launch(self, m):
        if m.running():
            return
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
        with open(m.log_path, "ab") as log:
            log.write(f"=== {time.strftime('%F %T')} start {m.name}\n".encode())
            log.flush()
            m.proc = subprocess.Popen(self._argv(m), stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=log, env=env, start_new_session=True)

    def healthy(self, i):
        """True if member i answers GET /health with health true."""
        m = self.member(i)
        if not m.running():
            return False
        try:
            st, body = http_call(m.url, "GET", "/health", timeout=1.0)
        except OSError:
            return False
        return st == 200 and isinstance(body, dict) and body.get("health") == "true"

    def wait_healthy(self, indices=None, timeout=None):
        """Waits until every listed member (default all) is healthy."""
        indices = list(indices or range(1, self.n + 1))
        deadline = time.monotonic() + (self.wait if timeout is None else timeout)
        while True:
            pending = []
            for i in indices:
                m = self.member(i)
                if not m.running():
                    raise EtcdError(f"etcd member {m.name} exited (rc {m.proc.returncode if m.proc else None}); "
                                    f"log tail: {m.log_tail()}")
                if not self.healthy(i):
                    pending.append(i)
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise EtcdError(f"etcd members {pending} not healthy after {timeout or self.wait:.0f} s; "
                                f"log tail of m{pending[0]}: {self.member(pending[0]).log_tail()}")
            time.sleep(0.1)

    def start(self):
        """Starts every member and waits until all are healthy. A start
        whose port was taken meanwhile is tried again on new ports."""
        with self._lock:
            for attempt in range(3):
                for m in self.members:
                    self._launch(m)
                try:
                    self.wait_healthy()
                    return self
                except EtcdError as e:
                    # a port taken meanwhile, or a member killed from outside:
                    # worth another try on new ports; anything else is not
                    busy = any("address already in use" in m.log_tail(30) for m in self.members)
                    killed = any(m.proc is not None and (m.proc.poll() or 0) < 0 for m in self.members)
                    for m in self.members:
                        self._signal_wait(m, signal.SIGKILL, 5)
                    if not (busy or killed) or attempt == 2:
                        raise e
                    self._layout()  # new ports, a new token, fresh data dirs
        return self

    def _signal_wait(self, m, sig, timeout):
        p = m.proc
        if p is None:
            return
        if p.poll() is None:
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        with open(m.log_path, "ab") as log:
            log.write(f"=== {time.strftime('%F %T')} {m.name} pid {p.pid} ended "
                      f"(signal {int(sig)}, rc {p.returncode})\n".encode())
        m.proc = None

    def kill(self, i):
        """kill -9 member i and reap it."""
        with self._lock:
            m = self.member(i)
            if not m.running():
                raise EtcdError(f"member {m.name} is not running")
            self._signal_wait(m, signal.SIGKILL, 5)

    def stop(self, i, timeout=10.0):
        """SIGTERM member i, wait for it to end (SIGKILL after timeout)."""
        with self._lock:
            self._signal_wait(self.member(i), signal.SIGTERM, timeout)

    def restart(self, i, wait=True):
        """Starts member i again on its data (stopping it first if it runs);
        waits until it is healthy, which needs a quorum, unless wait=False."""
        with self._lock:
            m = self.member(i)
            if m.running():
                self._signal_wait(m, signal.SIGTERM, 10)
            self._launch(m)
        if wait:
            self.wait_healthy([i])

    def resume(self):
        """Starts every member that is not running; waits for all."""
        with self._lock:
            for m in self.members:
                self._launch(m)
        self.wait_healthy()

    def running(self):
        """1-based indices of the members running."""
        return [m.index for m in self.members if m.running()]

    def status(self, i, timeout=1.0):
        """Member i's POST /v3/maintenance/status answer, or None."""
        m = self.member(i)
        if not m.running():
            return None
        try:
            st, body = http_call(m.url, "POST", "/v3/maintenance/status", {}, timeout=timeout)
        except OSError:
            return None
        return body if st == 200 and isinstance(body, dict) else None

    def leader(self):
        """1-based index of the member that is leader now, or None."""
        for m in self.members:
            s = self.status(m.index)
            if not s:
                continue
            mid = (s.get("header") or {}).get("member_id")
            if mid and s.get("leader") == mid and not s.get("errors"):
                return m.index
        return None

    def wait_leader(self, timeout=15.0, exclude=()):
        """Waits for a leader (not one of exclude); returns its index."""
        deadline = time.monotonic() + timeout
        while True:
            i = self.leader()
            if i is not None and i not in exclude:
                return i
            if time.monotonic() >= deadline:
                raise EtcdError(f"no etcd leader within {timeout:.0f} s")
            time.sleep(0.05)

    def close(self):
        """Kills every member and removes the directory. SIGKILL, not TERM:
        the data is thrown away anyway, and a TERMed leader spends seconds
        trying to hand its leadership to members that are going too."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            for m in self.members:
                if m.running():
                    try:
                        m.proc.send_signal(signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            for m in self.members:
                self._signal_wait(m, signal.SIGKILL, 5)
            shutil.rmtree(self.dir, ignore_errors=True)
        with _live_lock:
            if self in _live:
                _live.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def install_signal_cleanup():
    """Makes SIGTERM and SIGHUP end the interpreter normally, so the atexit
    cleanup runs, and SIGINT raise KeyboardInterrupt. For scripts."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
    # a shell starts background jobs with SIGINT ignored; Ctrl-C must still stop us
    signal.signal(signal.SIGINT, signal.default_int_handler)


# --------------------------------------------------------------------------
# Self-check: python3 tests/cluster/etcd.py [N]

def _selfcheck(n):
    t0 = time.monotonic()
    with EtcdCluster(n) as e:
        print(f"started {n} in {time.monotonic() - t0:.2f} s: {e.urls} (data {e.dir})")
        ldr = e.wait_leader()
        print(f"leader m{ldr}")
        if n >= 3:
            t = time.monotonic()
            e.kill(ldr)
            new = e.wait_leader(exclude=(ldr,))
            print(f"kill -9 m{ldr}: new leader m{new} after {time.monotonic() - t:.2f} s")
            t = time.monotonic()
            e.restart(ldr)
            print(f"restart m{ldr}: healthy after {time.monotonic() - t:.2f} s")
            others = [i for i in range(1, n + 1) if i != new][:2]
            t = time.monotonic()
            for i in others:
                e.stop(i)
            print(f"stop m{others[0]}, m{others[1]}: {time.monotonic() - t:.2f} s; "
                  f"m{new} healthy={e.healthy(new)}")
            t = time.monotonic()
            e.resume()
            print(f"resume: all healthy after {time.monotonic() - t:.2f} s, leader m{e.wait_leader()}")
        d = e.dir
    print(f"closed; directory removed: {not os.path.exists(d)}; total {time.monotonic() - t0:.2f} s")


if __name__ == "__main__":
    import sys
    _selfcheck(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
