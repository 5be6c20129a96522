#!/usr/bin/env python3
"""Holds a throwaway N-member etcd for tests/bench/cluster.sh (`make
bench-cluster`), started with tests/cluster/etcd.py (data under /dev/shm when
there is one).

Usage: cluster_etcd.py STATE_FILE [--members 3] [--max-seconds 900]

Once every member is healthy it writes STATE_FILE (atomically), shell
assignments:
    ETCD_URLS=http://127.0.0.1:P1,...      for --etcd
    ETCD_DIR=/dev/shm/rollcall-etcd-...     the data and logs
    ETCD_PID_1=<pid> ETCD_URL_1=<url> ...   each member
then holds the cluster until SIGTERM, SIGHUP or SIGINT, until its parent
(the bench script) is gone, or --max-seconds: then it kills every member and
removes the directory (etcd.py's close()). A member killed by the bench (the
leader, for the fail-over figure) is reaped then. Exit status 1 (and a line
on stderr) when the cluster did not start.

Python 3 standard library only."""

import argparse
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))

import etcd  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("state")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=900.0)
    a = ap.parse_args()

    stop = []

    def on_signal(signum, frame):
        stop.append(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)
    parent = os.getppid()
    e = None
    try:
        e = etcd.EtcdCluster(a.members)
        lines = ["ETCD_URLS=%s" % e.urls, "ETCD_DIR=%s" % e.dir]
        for m in e.members:
            lines.append("ETCD_PID_%d=%d" % (m.index, m.proc.pid))
            lines.append("ETCD_URL_%d=%s" % (m.index, m.url))
        tmp = a.state + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.rename(tmp, a.state)
        deadline = time.monotonic() + a.max_seconds
        while not stop and os.getppid() == parent and time.monotonic() < deadline:
            time.sleep(0.2)
        return 0
    except Exception as ex:  # noqa: BLE001 - said, and the members stopped
        print("cluster_etcd: etcd did not start: %s" % ex, file=sys.stderr)
        return 1
    finally:
        if e is not None:
            e.close()


if __name__ == "__main__":
    sys.exit(main())
