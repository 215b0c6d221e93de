#!/usr/bin/env bash
# Installs chDB, the ClickHouse engine in-process (26.7, from the npm
# registry), for make test's modern-ClickHouse check: no modern
# clickhouse-server package installs on Debian 12, and our users run 23-26.
#
#   deploy/clickhouse/chdb.sh install   install once into the cache (the lock file's versions and checksums); print its folder
#   deploy/clickhouse/chdb.sh version   print the engine's version (SELECT version())
#
# The cache is $FINSYNC_CHDB_HOME, default ~/.cache/finsync/chdb-<lock hash>:
# a changed package-lock.json installs afresh. Needs node (18+) and npm.
# Concurrent installs (go test runs packages in parallel) wait for each
# other.
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "$0")" && pwd)
src=$here/chdb
lock_hash=$(sha256sum "$src/package-lock.json" | cut -c1-12)
home=${FINSYNC_CHDB_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/finsync/chdb-$lock_hash}

log() { printf 'chdb: %s\n' "$*" >&2; }

install() {
	mkdir -p "$(dirname "$home")"
	exec 9>"$home.lock"
	flock 9
	if [ -f "$home/node_modules/chdb/package.json" ] && cmp -s "$home/.installed" "$src/package-lock.json" 2>/dev/null; then
		echo "$home"
		return 0
	fi
	command -v node >/dev/null && command -v npm >/dev/null || {
		log "node and npm are needed (Debian: apt-get install nodejs npm)"
		return 1
	}
	log "installing chDB into $home (about 180 MB download, once)"
	mkdir -p "$home"
	rm -f "$home/.installed"
	cp "$src/package.json" "$src/package-lock.json" "$home/"
	# npm installs the versions of the lock file and checks each package's
	# integrity hash against it (npm ci would refuse the lock file: it holds
	# only this platform's optional engine package). chdb's own install
	# script is a no-op.
	(cd "$home" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error >&2) || return 1
	cmp -s "$src/package-lock.json" "$home/package-lock.json" || {
		log "npm changed the lock file while installing; refusing (see $home/package-lock.json)"
		return 1
	}
	cp "$src/package-lock.json" "$home/.installed"
	echo "$home"
}

version() {
	local dir
	dir=$(install)
	NODE_PATH=$dir/node_modules node -e 'console.log(require("chdb").query("SELECT version()", "TabSeparated").trim())'
}

case "${1:-}" in
install) install ;;
version) version ;;
*)
	echo "usage: $0 install|version" >&2
	exit 2
	;;
esac
