#!/usr/bin/env python3
"""`make cluster`: a local rollcall cluster to try things on. Starts an etcd
of --members members and --nodes rollcall nodes on loopback ports, prints
their URLs and the dashboards', echoes the nodes' logs, and on Ctrl-C (or
SIGTERM, SIGHUP) stops them all (nodes first, with SIGTERM) and removes the
etcd data. Python 3 standard library only.

Usage: local_cluster.py [BIN] [--nodes N] [--members M] [--node-ttl S]
                        [--port P] [-- extra rollcall flags...]

Nodes are n1..nN on ports P, P+1, ... (default 7071) when those are free,
else on free ports; etcd members on free ports."""

import argparse
import os
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import etcd  # noqa: E402
import harness  # noqa: E402

_print_lock = threading.Lock()


def say(msg):
    with _print_lock:
        print(msg, flush=True)


def port_free(p):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((harness.HOST, p))
        return True
    except OSError:
        return False
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser(description="a local rollcall cluster (make cluster)")
    ap.add_argument("binary", nargs="?", default="build/rollcall")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--node-ttl", type=int, default=10)
    ap.add_argument("--port", type=int, default=7071, help="first node's port (default 7071)")
    ap.add_argument("extra", nargs="*", help="more rollcall flags, after --")
    args = ap.parse_args()
    if not 1 <= args.nodes <= 9 or not 1 <= args.members <= 9:
        ap.error("--nodes and --members are 1 to 9")
    etcd.install_signal_cleanup()
    harness.set_binary(os.path.abspath(args.binary))
    if not os.access(harness.BIN, os.X_OK):
        say(f"cluster: {harness.BIN} not found; run make first")
        return 1

    e = None
    nodes = []
    try:
        t0 = time.monotonic()
        e = etcd.EtcdCluster(args.members)
        say(f"etcd: {args.members} member(s) at {e.urls} (data in {e.dir})")
        for i in range(1, args.nodes + 1):
            p = args.port + i - 1
            node = harness.Node(f"n{i}", e.urls, ttl=args.node_ttl, prefix="/rollcall/",
                                extra=args.extra, port=p if port_free(p) else None,
                                echo=lambda n, line: say(f"[{n.name}] {line}"))
            nodes.append(node)
            node.start()
        say(f"cluster up in {time.monotonic() - t0:.1f} s (--node-ttl {args.node_ttl}):")
        for n in nodes:
            say(f"  node {n.name}: {n.url}   dashboard {n.url}/")
        say(f"  try: curl -s {nodes[0].url}/v1/nodes")
        say("Ctrl-C stops everything and removes the data.")
        reported = set()
        while True:
            time.sleep(1.0)
            for n in nodes:
                if not n.running() and n.name not in reported:
                    reported.add(n.name)
                    say(f"cluster: node {n.name} exited (rc {n.proc.returncode}); the others keep running")
            for m in e.members:
                if not m.running() and m.name not in reported:
                    reported.add(m.name)
                    say(f"cluster: etcd member {m.name} exited; log tail:\n{m.log_tail(5)}")
    except KeyboardInterrupt:
        say("\ncluster: stopping")
    except SystemExit:
        say("cluster: stopping")
    except BaseException as ex:  # noqa: BLE001 - said, then everything stopped
        say(f"cluster: {ex}")
        return 1
    finally:
        for n in nodes:
            n.term()
        for n in nodes:
            if n.proc is not None:
                try:
                    n.proc.wait(5)
                except Exception:  # noqa: BLE001
                    n.proc.kill()
        harness.kill_all_nodes()
        if e is not None:
            e.close()
    say("cluster: stopped; data removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
