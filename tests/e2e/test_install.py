"""make install into a temporary root (DESTDIR): every file in its place,
the installed rollcall serves and the installed rollcallctl talks to it, a
C program builds against librollcall through its pkg-config file, the man
pages render without warnings, and systemd accepts the unit."""

import os
import re
import shutil
import subprocess
import tempfile

import harness
from harness import check, eq, test

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def _install(dest):
    build = os.path.relpath(os.path.dirname(os.path.abspath(harness.BIN)), ROOT)
    p = subprocess.run(["make", "--no-print-directory", "-C", ROOT, "install", f"BUILD={build}", f"DESTDIR={dest}",
                        "PREFIX=/usr"], capture_output=True, text=True, timeout=300)
    eq(p.returncode, 0, f"make install: {p.stderr[-600:]}")


@test
def test_make_install_into_a_root(ctx):
    dest = tempfile.mkdtemp(prefix="rollcall-install-")
    try:
        _install(dest)
        want = ["etc/default/rollcall", "usr/bin/rollcall", "usr/bin/rollcallctl", "usr/include/rollcall.h",
                "usr/lib/librollcall.a", "usr/lib/pkgconfig/rollcall.pc", "usr/lib/systemd/system/rollcall.service",
                "usr/share/man/man1/rollcall.1", "usr/share/man/man1/rollcallctl.1"]
        for f in want:
            check(os.path.isfile(os.path.join(dest, f)), f"installed: {f}")
        # the installed server serves, and the installed client talks to it
        harness_bin = harness.BIN
        harness.BIN = os.path.join(dest, "usr/bin/rollcall")
        try:
            srv = ctx.start()
        finally:
            harness.BIN = harness_bin
        env = dict(os.environ, ROLLCALL_URL=f"http://{harness.HOST}:{srv.port}")
        p = subprocess.run([os.path.join(dest, "usr/bin/rollcallctl"), "--json", "ls", "nodes"], capture_output=True,
                           text=True, env=env, timeout=10)
        eq(p.returncode, 0, f"installed rollcallctl against the installed rollcall: {p.stderr}")
        # a C program against librollcall, by its pkg-config file
        prog = os.path.join(dest, "prog.c")
        with open(prog, "w") as f:
            f.write('#include <rollcall.h>\n#include <stdio.h>\n'
                    'int main(int c, char **v) { struct rc *r = rc_new(v[1], NULL); struct rc_result x = {0};\n'
                    '  int st = rc_stats(r, &x); printf("%d\\n", st); rc_result_clear(&x); rc_free(r);\n'
                    '  return st == 200 ? 0 : 1; }\n')
        pc = subprocess.run(["pkg-config", "--define-prefix", "--cflags", "--libs", "rollcall"],
                            capture_output=True, text=True,
                            env=dict(os.environ, PKG_CONFIG_PATH=os.path.join(dest, "usr/lib/pkgconfig")))
        eq(pc.returncode, 0, f"pkg-config rollcall: {pc.stderr}")
        flags = pc.stdout.split()
        check(any(x.startswith("-I") and x.endswith("/usr/include") for x in flags), f"cflags: {flags}")
        out = os.path.join(dest, "prog")
        # a sanitized build (make asan) installs a sanitized library: link it so
        san = [] if os.path.basename(os.path.dirname(os.path.abspath(harness.BIN))) == "build" else \
            ["-fsanitize=address,undefined"]
        cc = subprocess.run(["cc", *san, "-o", out, prog, *flags], capture_output=True, text=True, timeout=60)
        eq(cc.returncode, 0, f"building against librollcall: {cc.stderr}")
        run = subprocess.run([out, f"http://{harness.HOST}:{srv.port}"], capture_output=True, text=True, timeout=10)
        eq((run.returncode, run.stdout.strip()), (0, "200"), "a program on librollcall got /v1/stats")
        # the man pages: no warning
        for page in ("rollcall.1", "rollcallctl.1"):
            path = os.path.join(dest, "usr/share/man/man1", page)
            if shutil.which("mandoc"):
                m = subprocess.run(["mandoc", "-Tlint", "-W", "warning", path], capture_output=True, text=True)
                eq((m.returncode, m.stdout + m.stderr), (0, ""), f"mandoc -Tlint {page}")
            if shutil.which("groff"):
                g = subprocess.run(["groff", "-ww", "-mdoc", "-z", path], capture_output=True, text=True)
                eq(g.stderr, "", f"groff -ww {page}")
        # systemd accepts the unit (pointed at the installed binary)
        if shutil.which("systemd-analyze"):
            unit = os.path.join(dest, "rollcall.service")
            with open(os.path.join(dest, "usr/lib/systemd/system/rollcall.service")) as f:
                text = f.read()
            check(re.search(r"^ExecStart=/usr/bin/rollcall ", text, re.M), "ExecStart")
            for opt in ("NoNewPrivileges=yes", "ProtectSystem=strict", "Restart=on-failure",
                        "EnvironmentFile=-/etc/default/rollcall", "User=rollcall"):
                check(opt in text, f"the unit has {opt}")
            with open(unit, "w") as f:
                f.write(text.replace("/usr/bin/rollcall", os.path.join(dest, "usr/bin/rollcall")))
            v = subprocess.run(["systemd-analyze", "verify", "--man=no", unit], capture_output=True, text=True,
                               timeout=60)
            eq((v.returncode, v.stderr.strip()), (0, ""), "systemd-analyze verify")
    finally:
        shutil.rmtree(dest, ignore_errors=True)


@test
def test_make_deb_passes_lintian_and_its_binaries_work(ctx):
    build = os.path.relpath(os.path.dirname(os.path.abspath(harness.BIN)), ROOT)
    if build != "build":
        print("    # make deb is checked with the plain build only")
        return
    p = subprocess.run(["make", "--no-print-directory", "-C", ROOT, "deb"], capture_output=True, text=True,
                       timeout=300)
    eq(p.returncode, 0, f"make deb: {p.stderr[-600:]}")
    debs = [f for f in os.listdir(os.path.join(ROOT, "build")) if f.startswith("rollcall_") and f.endswith(".deb")]
    eq(len(debs), 1, f"one package in build/: {debs}")
    deb = os.path.join(ROOT, "build", debs[0])
    if shutil.which("lintian"):
        li = subprocess.run(["lintian", deb], capture_output=True, text=True, timeout=300)
        errors = [ln for ln in (li.stdout + li.stderr).splitlines() if ln.startswith("E:")]
        eq(errors, [], "lintian errors")
        print(f"    # lintian: {len([ln for ln in li.stdout.splitlines() if ln.startswith('W:')])} warnings, no error")
    root = tempfile.mkdtemp(prefix="rollcall-deb-")
    try:
        x = subprocess.run(["dpkg", "-x", deb, root], capture_output=True, text=True, timeout=60)
        eq(x.returncode, 0, f"dpkg -x: {x.stderr}")
        for f in ("usr/bin/rollcall", "usr/bin/rollcallctl", "lib/systemd/system/rollcall.service",
                  "usr/share/man/man1/rollcall.1.gz", "usr/share/doc/rollcall/copyright", "etc/default/rollcall"):
            check(os.path.isfile(os.path.join(root, f)), f"in the package: {f}")
        harness_bin = harness.BIN
        harness.BIN = os.path.join(root, "usr/bin/rollcall")
        try:
            srv = ctx.start()
        finally:
            harness.BIN = harness_bin
        env = dict(os.environ, ROLLCALL_URL=f"http://{harness.HOST}:{srv.port}")
        r = subprocess.run([os.path.join(root, "usr/bin/rollcallctl"), "stats"], capture_output=True, text=True,
                           env=env, timeout=10)
        eq(r.returncode, 0, f"the package's rollcallctl against its rollcall: {r.stderr}")
        check(r.stdout.startswith("sessions"), r.stdout)
    finally:
        shutil.rmtree(root, ignore_errors=True)
