#!/usr/bin/env python3
"""Cluster tests of rollcall (api.md, "Cluster"): real etcd members and
rollcall nodes on loopback ports, spoken to over HTTP.

Usage: python3 tests/cluster/run_cluster.py [path/to/rollcall] [-k SUBSTRING] [-v]

The binary is the path given, else $ROLLCALL_BIN, else build/rollcall. The
tests run one at a time (they measure failover times on a small machine).
Those that leave etcd whole share one 3-member etcd, each under its own
--etcd-prefix; those that break etcd start their own. Prints one line per
test, then "N passed, M failed"; exits 1 if any failed. Every process
started is stopped at the end, whatever happens."""

import argparse
import os
import sys
import threading
import time
import traceback

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import etcd  # noqa: E402
import harness  # noqa: E402
import test_flags  # noqa: E402,F401
import test_api  # noqa: E402,F401
import test_messaging  # noqa: E402,F401
import test_nodes  # noqa: E402,F401
import test_consistency  # noqa: E402,F401
import test_node_loss  # noqa: E402,F401
import test_etcd_failure  # noqa: E402,F401

OVERALL_LIMIT = 300.0  # seconds for the whole run; it takes about 1 to 2 minutes (sanitizers included)


def find_binary(arg):
    if arg:
        return arg
    env = os.environ.get("ROLLCALL_BIN")
    if env:
        return env
    if os.path.exists("build/rollcall"):
        return "build/rollcall"
    return os.path.join(HERE, "..", "..", "build", "rollcall")


def reason_of(e):
    tb = [f for f in traceback.extract_tb(e.__traceback__) if "cluster" in f.filename] or \
        traceback.extract_tb(e.__traceback__)
    # the last frame in a test file says where, not the assertion helper's
    tests = [f for f in tb if os.path.basename(f.filename).startswith("test_")]
    f = (tests or tb)[-1] if tb else None
    where = f" (at {os.path.basename(f.filename)}:{f.lineno})" if f else ""
    if isinstance(e, AssertionError):
        msg = (str(e) or "assertion failed") + where
    else:
        msg = f"{type(e).__name__}: {e}{where}"
    msg = " ".join(msg.split())
    return msg if len(msg) <= 700 else msg[:700] + "..."


def run_one(ctx, case, limit):
    """Runs a test in a thread, at most `limit` seconds; then stops what it
    started (which also unblocks a test stuck on a request)."""
    box = {}

    def body():
        try:
            case.fn(ctx)
        except BaseException as e:  # noqa: BLE001 - every failure is reported
            box["error"] = e

    t0 = time.monotonic()
    th = threading.Thread(target=body, daemon=True, name=case.name)
    th.start()
    th.join(limit)
    timed_out = th.is_alive()
    problems = ctx.cleanup()
    also = (" [also: " + " ".join(" / ".join(problems).split())[:700] + "]") if problems else ""
    if timed_out:
        th.join(5)
        return False, f"timed out after {limit:.0f} s{also}", time.monotonic() - t0
    if "error" in box:
        return False, reason_of(box["error"]) + also, time.monotonic() - t0
    if problems:
        return False, " ".join(" / ".join(problems).split())[:700], time.monotonic() - t0
    return True, "", time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description="rollcall cluster tests")
    ap.add_argument("binary", nargs="?", help="path to rollcall (default build/rollcall)")
    ap.add_argument("-k", dest="pattern", help="run only tests whose name contains this")
    ap.add_argument("-v", dest="verbose", action="store_true", help="print each test's duration")
    args = ap.parse_args()
    etcd.install_signal_cleanup()

    harness.set_binary(os.path.abspath(find_binary(args.binary)))
    cases = [c for c in harness.TESTS if not args.pattern or args.pattern in c.name]
    if not os.path.isfile(harness.BIN):
        print(f"rollcall binary not found: {harness.BIN} (every test will fail)", flush=True)

    passed = failed = 0
    t_start = time.monotonic()
    shared = shared_error = None
    try:
        if any(c.etcd == "shared" for c in cases):
            t0 = time.monotonic()
            try:
                shared = etcd.EtcdCluster(3)
                if args.verbose:
                    print(f"# shared etcd: {shared.urls} ({time.monotonic() - t0:.1f} s)", flush=True)
            except BaseException as e:  # noqa: BLE001
                shared_error = reason_of(e)
        for case in cases:
            left = OVERALL_LIMIT - (time.monotonic() - t_start)
            if left < 1:
                ok, why, secs = False, f"not run: the suite's limit of {OVERALL_LIMIT:.0f} s was reached", 0.0
            else:
                if shared is not None and case.etcd == "shared" and len(shared.running()) != shared.n:
                    shared.resume()  # a test broke it: mend it for the next
                ctx = harness.Ctx(shared, shared_error)
                ok, why, secs = run_one(ctx, case, min(case.timeout, left))
            passed += ok
            failed += not ok
            dur = f" ({secs:.1f}s)" if args.verbose else ""
            print(f"{case.name} ok{dur}" if ok else f"{case.name} FAIL: {why}{dur}", flush=True)
            for n in (ctx.notes if left >= 1 else []):
                print(f"    # {n}", flush=True)
    finally:
        harness.kill_all_nodes()
        if shared is not None:
            shared.close()
        etcd._cleanup_all()

    if args.verbose:
        print(f"# {time.monotonic() - t_start:.1f} s", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.stdout.flush()
    # threads of timed-out tests must not keep the process alive
    os._exit(1 if failed else 0)


if __name__ == "__main__":
    main()
