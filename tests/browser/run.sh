#!/bin/sh
# The dashboard's test in a real browser. Installs what is missing (Debian's
# Chromium; Node.js and npm; etcd, for the cluster check; playwright-core as
# pinned in package-lock.json, which downloads no browser), then runs
# dashboard.test.mjs against the rollcall binary given as $1. Exit status:
# the test's (1 when a check failed).
# usage: sh tests/browser/run.sh build/rollcall
set -eu
BIN=${1:?usage: sh tests/browser/run.sh path/to/rollcall}
HERE=$(cd "$(dirname "$0")" && pwd)

missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -n "${ETCD_BIN:-}" ] || [ -x /usr/bin/etcd ] || missing="$missing etcd-server" # the cluster check
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "run.sh: missing:$missing; install as root: apt-get install -y$missing" >&2
		exit 1
	fi
	echo "run.sh: installing$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$missing >/dev/null
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
	echo "run.sh: warning: node $(node --version) is older than playwright-core wants (20)" >&2
fi

if [ ! -d "$HERE/node_modules/playwright-core" ]; then
	(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
fi

exec node "$HERE/dashboard.test.mjs" "$BIN"
