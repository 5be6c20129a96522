#!/usr/bin/env python3
"""End-to-end tests of rollcall: starts the real server on free ports and
talks HTTP to it.

Usage: python3 tests/e2e/run_e2e.py [path/to/rollcall] [-k SUBSTRING] [-j JOBS]

The binary is the path given, else $ROLLCALL_BIN, else build/rollcall (from
the current directory, or from the repository root). Prints one line per
test, then "N passed, M failed"; exits 1 if any failed."""

import argparse
import concurrent.futures
import os
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import test_cli  # noqa: E402,F401
import test_sessions  # noqa: E402,F401
import test_lease  # noqa: E402,F401
import test_names  # noqa: E402,F401
import test_await  # noqa: E402,F401
import test_listing  # noqa: E402,F401
import test_index  # noqa: E402,F401
import test_http  # noqa: E402,F401
import test_props  # noqa: E402,F401
import test_groups  # noqa: E402,F401
import test_messages  # noqa: E402,F401
import test_events  # noqa: E402,F401
import test_badinput  # noqa: E402,F401
import test_access  # noqa: E402,F401
import test_ops  # noqa: E402,F401
import test_calls  # noqa: E402,F401
import test_node_inputs  # noqa: E402,F401
import test_waiting  # noqa: E402,F401
import test_framing  # noqa: E402,F401

OVERALL_LIMIT = 150.0  # seconds; the suite normally takes well under 60


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
    if isinstance(e, AssertionError):
        msg = str(e) or "assertion failed"
        # a bare `assert` gives no message: say where
        if not str(e):
            tb = traceback.extract_tb(e.__traceback__)
            if tb:
                msg = f"assertion failed at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno}"
    else:
        tb = traceback.extract_tb(e.__traceback__)
        where = f" at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno}" if tb else ""
        msg = f"{type(e).__name__}: {e}{where}"
    msg = " ".join(msg.split())
    return msg if len(msg) <= 400 else msg[:400] + "..."


def run_one(case, shared, shared_error):
    ctx = harness.Ctx(shared, shared_error)
    t0 = time.monotonic()
    try:
        case.fn(ctx)
        return True, "", time.monotonic() - t0
    except BaseException as e:  # noqa: BLE001 - every failure is reported
        return False, reason_of(e), time.monotonic() - t0
    finally:
        ctx.cleanup()


def main():
    ap = argparse.ArgumentParser(description="rollcall end-to-end tests")
    ap.add_argument("binary", nargs="?", help="path to rollcall (default build/rollcall)")
    ap.add_argument("-k", dest="pattern", help="run only tests whose name contains this")
    ap.add_argument("-j", dest="jobs", type=int, default=12, help="tests run at once (default 12)")
    ap.add_argument("-v", dest="verbose", action="store_true", help="print each test's duration")
    args = ap.parse_args()

    harness.BIN = os.path.abspath(find_binary(args.binary))
    cases = [c for c in harness.TESTS if not args.pattern or args.pattern in c.name]
    if not os.path.isfile(harness.BIN):
        print(f"rollcall binary not found: {harness.BIN} (every test will fail)", flush=True)

    passed = failed = 0
    lock = threading.Lock()

    def report(name, ok, why, secs):
        nonlocal passed, failed
        with lock:
            if ok:
                passed += 1
            else:
                failed += 1
            dur = f" ({secs:.2f}s)" if args.verbose else ""
            print(f"{name} ok{dur}" if ok else f"{name} FAIL: {why}{dur}", flush=True)

    t_start = time.monotonic()
    shared = shared_error = None
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs))
    try:
        try:
            shared = harness.Server()
        except BaseException as e:  # noqa: BLE001
            shared_error = reason_of(e)
        futures = [(c, pool.submit(run_one, c, shared, shared_error)) for c in cases]
        for case, fut in futures:
            left = OVERALL_LIMIT - (time.monotonic() - t_start)
            try:
                ok, why, secs = fut.result(timeout=max(0.1, left))
            except concurrent.futures.TimeoutError:
                ok, why, secs = False, f"timed out (suite limit {OVERALL_LIMIT:.0f} s)", 0.0
            report(case.name, ok, why, secs)
        if not args.pattern or args.pattern in "shutdown.shared_server_sigterm_exit_0":
            t0 = time.monotonic()
            try:
                if shared is None:
                    raise AssertionError(f"shared server never started: {shared_error}")
                check_alive = shared.running()
                if not check_alive:
                    raise AssertionError(f"shared server died during the run (exit code "
                                         f"{shared.proc.returncode}); stderr tail: "
                                         f"{' | '.join(shared.stderr_lines[-5:])}")
                shared.stop_clean()
                report("shutdown.shared_server_sigterm_exit_0", True, "", time.monotonic() - t0)
            except BaseException as e:  # noqa: BLE001
                report("shutdown.shared_server_sigterm_exit_0", False, reason_of(e), time.monotonic() - t0)
    finally:
        harness.kill_all_servers()
        pool.shutdown(wait=False, cancel_futures=True)

    if args.verbose:
        print(f"# {time.monotonic() - t_start:.1f} s", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.stdout.flush()
    # threads of timed-out tests must not keep the process alive
    os._exit(1 if failed else 0)


if __name__ == "__main__":
    main()
