#!/usr/bin/env bash
# Runs a private ClickHouse server for development, tests and the demo:
# native 127.0.0.1:19000, HTTP 127.0.0.1:18123, data under .finsync/clickhouse/ in the repo.
#
#   deploy/clickhouse/local.sh start    install clickhouse-server if missing, start, wait until it answers
#   deploy/clickhouse/local.sh stop     stop it (waits for the process to exit)
#   deploy/clickhouse/local.sh status   exit 0 and print the version when it answers, exit 1 otherwise
#
# FINSYNC_CH_TCP_PORT / FINSYNC_CH_HTTP_PORT set the ports (a server on other
# ports has its own data, .finsync/clickhouse-<tcp port>/); FINSYNC_CH_HOME the data folder.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
tcp_port=${FINSYNC_CH_TCP_PORT:-19000}
http_port=${FINSYNC_CH_HTTP_PORT:-18123}
default_home=$repo/.finsync/clickhouse
[ "$tcp_port" = 19000 ] || default_home=$default_home-$tcp_port
home=${FINSYNC_CH_HOME:-$default_home}
pidfile=$home/clickhouse-server.pid

log() { printf 'clickhouse: %s\n' "$*" >&2; }

install_server() {
	command -v clickhouse-server >/dev/null && command -v clickhouse-client >/dev/null && return 0
	log "clickhouse-server is not installed; installing Debian's package (needs root)"
	local sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	export DEBIAN_FRONTEND=noninteractive
	# policy-rc.d keeps the package from starting the system-wide service: we run our own.
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends clickhouse-server clickhouse-client >/dev/null
}

answers() {
	clickhouse-client --host 127.0.0.1 --port "$tcp_port" --query 'SELECT version()' 2>/dev/null
}

running_pid() {
	local pid=""
	[ -f "$pidfile" ] && pid=$(cat "$pidfile")
	# 18.16 writes no pid file when not daemonized: find it by its config.
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || pid=$(pgrep -f -- "--config-file=$home/config.xml" | head -n 1)
	[ -n "$pid" ] && echo "$pid"
}

write_config() {
	mkdir -p "$home"/{data,tmp,user_files,format_schemas,log}
	cat >"$home/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>10000000000</max_memory_usage></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
	cat >"$home/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>$home/log/server.log</log>
    <errorlog>$home/log/server.err.log</errorlog>
    <size>100M</size>
    <count>2</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>$tcp_port</tcp_port>
  <http_port>$http_port</http_port>
  <max_connections>256</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
  <max_concurrent_queries>100</max_concurrent_queries>
  <uncompressed_cache_size>1073741824</uncompressed_cache_size>
  <mark_cache_size>1073741824</mark_cache_size>
  <path>$home/data/</path>
  <tmp_path>$home/tmp/</tmp_path>
  <user_files_path>$home/user_files/</user_files_path>
  <format_schema_path>$home/format_schemas/</format_schema_path>
  <users_config>$home/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
</yandex>
XML
}

start() {
	install_server
	if answers >/dev/null; then
		if running_pid >/dev/null; then
			log "already running on 127.0.0.1:$tcp_port"
		else
			# Another checkout's server, say: it works until its data goes.
			log "using a server this repo did not start on 127.0.0.1:$tcp_port (its data is not in $home; stop it, or set FINSYNC_CH_TCP_PORT, for a private one)"
		fi
		return 0
	fi
	write_config
	log "starting on 127.0.0.1:$tcp_port (data in $home)"
	# setsid: the server outlives the shell that started it (make, CI steps).
	setsid clickhouse-server --config-file="$home/config.xml" \
		>"$home/log/stdout.log" 2>&1 </dev/null &
	echo $! >"$pidfile"
	for _ in $(seq 1 120); do
		if answers >/dev/null; then
			log "ready: version $(answers)"
			return 0
		fi
		sleep 0.5
	done
	log "did not answer within 60s; last lines of $home/log:"
	tail -n 20 "$home/log/server.err.log" "$home/log/stdout.log" >&2 2>/dev/null || true
	return 1
}

stop() {
	local pid
	if ! pid=$(running_pid); then
		log "not running"
		return 0
	fi
	kill "$pid"
	for _ in $(seq 1 60); do
		kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; log "stopped"; return 0; }
		sleep 0.5
	done
	log "still running after 30s; sending SIGKILL"
	kill -9 "$pid" 2>/dev/null || true
}

status() {
	local v
	if v=$(answers); then
		echo "running on 127.0.0.1:$tcp_port, version $v"
	else
		echo "not running on 127.0.0.1:$tcp_port"
		return 1
	fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
