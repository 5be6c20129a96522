"""Command line: --help, --version, bad flags, start and stop, flags honoured."""

from harness import (Server, check, eq, expect_error, expect_json, run_binary, test)


@test
def test_help_exits_0(ctx):
    rc, out, err = run_binary(["--help"])
    eq(rc, 0, "--help exit code")
    check((out + err).strip() != "", "--help printed nothing")
    check("--listen" in out + err, "--help does not mention --listen")


@test
def test_version_exits_0(ctx):
    rc, out, err = run_binary(["--version"])
    eq(rc, 0, "--version exit code")
    check((out + err).strip() != "", "--version printed nothing")


def _bad_flag(args):
    rc, out, err = run_binary(args)
    eq(rc, 2, f"exit code of {args}")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    eq(len(lines), 1, f"stderr lines of {args} ({err[:200]!r})")


@test
def test_unknown_flag_exits_2(ctx):
    _bad_flag(["--listen", "127.0.0.1:0", "--no-such-flag"])


@test
def test_bad_default_ttl_exits_2(ctx):
    _bad_flag(["--listen", "127.0.0.1:0", "--default-ttl", "abc"])


@test
def test_bad_listen_exits_2(ctx):
    _bad_flag(["--listen", "nope"])


@test
def test_max_ttl_zero_exits_2(ctx):
    _bad_flag(["--listen", "127.0.0.1:0", "--max-ttl", "0"])


@test
def test_bad_max_body_exits_2(ctx):
    _bad_flag(["--listen", "127.0.0.1:0", "--max-body", "lots"])


@test
def test_flag_without_value_exits_2(ctx):
    _bad_flag(["--listen", "127.0.0.1:0", "--max-sessions"])


@test
def test_start_and_sigterm_exit_0(ctx):
    srv = ctx.start()
    body = expect_json(ctx.client(srv).healthz(), 200)
    eq(body, {"status": "ok"}, "healthz body")
    srv.stop_clean()


@test
def test_default_ttl_flag(ctx):
    srv = ctx.start("--default-ttl", "7")
    s = ctx.client(srv).session()
    eq(s.data["ttl"], 7, "ttl from --default-ttl")
    check(6000 <= s.data["expires_in_ms"] <= 7000, f"expires_in_ms {s.data['expires_in_ms']}")
    srv.stop_clean()


@test
def test_max_ttl_flag(ctx):
    srv = ctx.start("--max-ttl", "10")
    c = ctx.client(srv)
    eq(c.session(ttl=10).data["ttl"], 10, "ttl at --max-ttl")
    expect_error(c.post("/v1/sessions", {"ttl": 11}), 400, "invalid_ttl")
    s = c.session(ttl=5)
    expect_error(c.heartbeat(s.id, s.token, {"ttl": 11}), 400, "invalid_ttl")
    srv.stop_clean()


@test
def test_max_sessions_limit_reached(ctx):
    srv = ctx.start("--max-sessions", "3")
    c = ctx.client(srv)
    ss = [c.session() for _ in range(3)]
    expect_error(c.post("/v1/sessions"), 503, "limit_reached")
    expect_error(c.post("/v1/sessions", {"ttl": 5, "label": "x"}), 503, "limit_reached")
    eq(c.delete_session(ss[0].id, ss[0].token).status, 204, "delete")
    c.session()  # room again
    expect_error(c.post("/v1/sessions"), 503, "limit_reached")
    srv.stop_clean()


@test
def test_max_sessions_freed_by_expiry(ctx):
    srv = ctx.start("--max-sessions", "1")
    c = ctx.client(srv)
    c.session(ttl=1)
    expect_error(c.post("/v1/sessions"), 503, "limit_reached")
    import time
    end = time.monotonic() + 3.0
    while True:
        r = c.post("/v1/sessions", {"ttl": 1})
        if r.status == 201:
            break
        expect_error(r, 503, "limit_reached")
        check(time.monotonic() < end, "expired session still counted against --max-sessions after 3 s")
        time.sleep(0.1)
    srv.stop_clean()
