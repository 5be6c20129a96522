#!/bin/sh
# Installs the Debian packages rollcall needs that are missing. Called by
# `make run` and `make test`; quick when everything is already there.
# Usage: scripts/install-deps.sh [extra-package ...]
set -e
pkgs="gcc libc6-dev make pkg-config libmicrohttpd-dev libcjson-dev libcmocka-dev libcurl4-openssl-dev etcd-server python3 python3-yaml curl jq xxd mandoc groff-base lintian $*"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing$missing"
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
		echo "install-deps: need root to install:$missing" >&2; exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
${SUDO:-} apt-get update -qq
${SUDO:-} apt-get install -y -qq --no-install-recommends $missing
