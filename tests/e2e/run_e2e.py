#!/usr/bin/env python3
"""End-to-end tests of rollcall: starts the real server on free ports and
talks HTTP to it.

Usage: python3 tests/e2e/run_e2e.py [path/to/rollcall] [-k SUBSTRING] [-j JOBS]

The binary is the path given, else $ROLLCALL_BIN, else build/rollcall (from
the current directory, or from the repository root). Prints one line per
test, then "N passed, M failed"; exits 1 if any failed.

Every answer the tests get through harness.Client is recorded, and after
the tests conformance.py checks them against openapi.yaml; that check is
reported as one more test, conformance.every_answer_matches_openapi (with
-k too, over what the tests run recorded)."""

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
import test_rollcallctl  # noqa: E402,F401
import test_install  # noqa: E402,F401

OVERALL_LIMIT = 150.0  # seconds; the suite normally takes well under 60
CONFORMANCE_LIMIT = 10.0  # seconds at most for the conformance check (it takes under one)
CONFORMANCE_NAME = "conformance.every_answer_matches_openapi"
OPENAPI = os.path.join(HERE, "..", "..", "openapi.yaml")


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


def start_recording():
    """Loads openapi.yaml and records every answer from now on: (the
    loaded conformance.Spec, None) or (None, why it cannot be checked)."""
    try:
        import conformance
        spec = conformance.load(OPENAPI)
    except ImportError as e:
        return None, f"cannot check: {e} (install python3-yaml: scripts/install-deps.sh)"
    except Exception as e:  # noqa: BLE001 - a broken openapi.yaml fails the check, not the run
        return None, f"cannot load {os.path.normpath(OPENAPI)}: {reason_of(e)}"
    harness.RECORDER = harness.Recorder(spec.path_key)
    return spec, None


def check_conformance(spec, why_not, budget):
    """(ok, the report line's reason, detail lines) for the recorded answers."""
    rec, harness.RECORDER = harness.RECORDER, None
    if spec is None:
        return False, why_not, []
    import conformance
    answers = rec.answers()
    checked, n, lines, finished = conformance.check_answers(
        spec, answers, deadline=time.monotonic() + budget)
    if not finished:
        return False, (f"the check did not finish within {budget:.0f} s "
                       f"({checked} of {len(answers)} answers checked)"), lines
    if n:
        return False, (f"{n} distinct failures in {checked} answers checked "
                       f"(of {rec.seen} recorded){', the first 20:' if n > 20 else ':'}"), lines
    return True, f"{checked} answers checked (of {rec.seen} recorded)", []


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

    def report(name, ok, why, secs, details=()):
        nonlocal passed, failed
        with lock:
            if ok:
                passed += 1
            else:
                failed += 1
            dur = f" ({secs:.2f}s)" if args.verbose else ""
            print(f"{name} ok{dur}" if ok else f"{name} FAIL: {why}{dur}", flush=True)
            for line in details:
                print(f"    {line if len(line) <= 400 else line[:400] + '...'}", flush=True)

    t_start = time.monotonic()
    spec, spec_error = start_recording()
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

    t0 = time.monotonic()
    budget = min(CONFORMANCE_LIMIT, max(2.0, OVERALL_LIMIT - (t0 - t_start)))
    try:
        ok, why, details = check_conformance(spec, spec_error, budget)
    except BaseException as e:  # noqa: BLE001 - a bug in the check fails it, not the run
        ok, why, details = False, reason_of(e), []
    if ok and args.verbose:
        details = [f"# {why}"]
    report(CONFORMANCE_NAME, ok, why, time.monotonic() - t0, details)

    if args.verbose:
        print(f"# {time.monotonic() - t_start:.1f} s", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.stdout.flush()
    # threads of timed-out tests must not keep the process alive
    os._exit(1 if failed else 0)


if __name__ == "__main__":
    main()
