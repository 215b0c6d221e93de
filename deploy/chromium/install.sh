#!/bin/sh
# Installs Debian's chromium for the browser tests (the status page), when
# missing. Run as root (or with sudo available), like deploy/clickhouse.
set -eu
command -v chromium >/dev/null 2>&1 && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "chromium: installing Debian's chromium for the browser tests" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null ||
	{ $SUDO apt-get update >/dev/null && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null; }
command -v chromium >/dev/null
