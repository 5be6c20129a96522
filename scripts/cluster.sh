#!/bin/sh
# make cluster: a local rollcall cluster on loopback ports, to try things on:
# 3 etcd members and 3 nodes (n1..n3 on 7071..7073 when free), their URLs
# and dashboards printed, their logs echoed. Ctrl-C (or SIGTERM) stops them
# all and removes the etcd data. tests/cluster/local_cluster.py does the work
# (the same etcd starter as the cluster tests).
# Usage: scripts/cluster.sh [BIN] [--nodes N] [--members M] [--node-ttl S] [--port P] [-- flags]
set -eu
cd "$(dirname "$0")/.."
if ! command -v etcd >/dev/null 2>&1 && [ ! -x /usr/bin/etcd ] && [ -z "${ETCD_BIN:-}" ]; then
	echo "cluster: etcd not found (apt-get install etcd-server, or set ETCD_BIN)" >&2
	exit 1
fi
command -v python3 >/dev/null 2>&1 || { echo "cluster: python3 not found" >&2; exit 1; }
exec python3 tests/cluster/local_cluster.py "$@"
