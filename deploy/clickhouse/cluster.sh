#!/usr/bin/env bash
# Runs a small ClickHouse cluster on loopback for `make test-cluster`: Debian's
# ZooKeeper and three clickhouse-server instances started by local.sh, data
# under .finsync/cluster/. Cluster "finsync" has two shards; shard 1 has two
# replicas (ch1, ch2), shard 2 one (ch3). Two servers could be one shard with
# two replicas or two shards, not both: the third makes both real at once.
#
#   deploy/clickhouse/cluster.sh start [node]   install ZooKeeper if missing, start it and the nodes (or one node)
#   deploy/clickhouse/cluster.sh stop [node]    stop the nodes and ZooKeeper (or one node)
#   deploy/clickhouse/cluster.sh status         one line per process; exit 1 if one is down
#
# Ports: ZooKeeper 127.0.0.1:12181; node chN native 1910N, HTTP 1820N,
# interserver (replication) 1930N. FINSYNC_CLUSTER_HOME overrides the data folder.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
home=${FINSYNC_CLUSTER_HOME:-$repo/.finsync/cluster}
cluster=finsync
zk_port=12181
nodes=(ch1 ch2 ch3)
declare -A shard=([ch1]=01 [ch2]=01 [ch3]=02)

log() { printf 'cluster: %s\n' "$*" >&2; }

n_of() { echo "${1#ch}"; }
tcp_port() { echo $((19100 + $(n_of "$1"))); }
http_port() { echo $((18200 + $(n_of "$1"))); }
interserver_port() { echo $((19300 + $(n_of "$1"))); }

# local.sh runs each node, with its own home and ports.
node() {
	local n=$1
	shift
	FINSYNC_CH_HOME="$home/$n" FINSYNC_CH_TCP_PORT=$(tcp_port "$n") FINSYNC_CH_HTTP_PORT=$(http_port "$n") "$here/local.sh" "$@"
}

zk_answers() {
	# ZooKeeper's four-letter "ruok" answers "imok".
	[ "$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$zk_port && printf ruok >&3 && cat <&3" 2>/dev/null)" = imok ]
}

zk_pid() { pgrep -f -- "ZooKeeperServerMain $home/zookeeper/zoo.cfg" | head -n 1; }

install_zookeeper() {
	[ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null && return 0
	log "ZooKeeper is not installed; installing Debian's package (needs root)"
	local sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends zookeeper >/dev/null
}

start_zookeeper() {
	install_zookeeper
	zk_answers && return 0
	local d=$home/zookeeper
	mkdir -p "$d/data"
	cat >"$d/zoo.cfg" <<CFG
tickTime=2000
dataDir=$d/data
clientPort=$zk_port
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,mntr
CFG
	log "starting ZooKeeper on 127.0.0.1:$zk_port"
	# The standalone server class, without the package's service wrapper.
	setsid java -Xmx256m -cp /usr/share/java/zookeeper.jar -Dzookeeper.log.dir="$d" \
		org.apache.zookeeper.server.ZooKeeperServerMain "$d/zoo.cfg" >"$d/zookeeper.log" 2>&1 </dev/null &
	for _ in $(seq 1 60); do
		zk_answers && return 0
		sleep 0.5
	done
	log "ZooKeeper did not answer within 30s:"
	tail -n 20 "$d/zookeeper.log" >&2
	return 1
}

stop_zookeeper() {
	local pid
	pid=$(zk_pid) || true
	[ -n "$pid" ] || return 0
	kill "$pid"
	for _ in $(seq 1 40); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.25
	done
	kill -9 "$pid" 2>/dev/null || true
}

# The cluster's part of each node's configuration; ClickHouse merges
# config.d/*.xml into the config.xml local.sh writes.
write_cluster_config() {
	local n=$1 replicas="" s
	mkdir -p "$home/$n/config.d"
	for s in 01 02; do
		replicas+="      <shard><internal_replication>true</internal_replication>"
		for m in "${nodes[@]}"; do
			[ "${shard[$m]}" = "$s" ] && replicas+="<replica><host>127.0.0.1</host><port>$(tcp_port "$m")</port></replica>"
		done
		replicas+="</shard>
"
	done
	cat >"$home/$n/config.d/cluster.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <interserver_http_port>$(interserver_port "$n")</interserver_http_port>
  <remote_servers>
    <$cluster>
$replicas    </$cluster>
  </remote_servers>
  <zookeeper><node><host>127.0.0.1</host><port>$zk_port</port></node><session_timeout_ms>30000</session_timeout_ms></zookeeper>
  <macros><shard>${shard[$n]}</shard><replica>$n</replica></macros>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
</yandex>
XML
}

# zk_session: the node has a working ZooKeeper session. 18.16 can crash on
# a ZooKeeper call made while its session is still being set up, so start
# returns only once every node has one.
zk_session() {
	clickhouse-client --host 127.0.0.1 --port "$(tcp_port "$1")" \
		--query "SELECT count() FROM system.zookeeper WHERE path = '/'" >/dev/null 2>&1
}

start() {
	start_zookeeper
	local pids=() n
	for n in "$@"; do
		write_cluster_config "$n"
		node "$n" start &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	for n in "$@"; do
		for _ in $(seq 1 60); do
			zk_session "$n" && break
			sleep 0.5
		done
		zk_session "$n" || { log "$n has no ZooKeeper session after 30s"; return 1; }
	done
}

stop() {
	local n
	for n in "$@"; do node "$n" stop; done
}

status() {
	local ok=0 n
	if zk_answers; then echo "zookeeper: running on 127.0.0.1:$zk_port"; else echo "zookeeper: not running" && ok=1; fi
	for n in "${nodes[@]}"; do
		printf '%s (shard %s): ' "$n" "${shard[$n]}"
		node "$n" status || ok=1
	done
	return $ok
}

cmd=${1:-}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${nodes[@]}")
for n in "${targets[@]}"; do
	[ -n "${shard[$n]:-}" ] || { echo "unknown node $n (${nodes[*]})" >&2; exit 2; }
done
case "$cmd" in
start) start "${targets[@]}" ;;
stop)
	stop "${targets[@]}"
	[ $# -gt 0 ] || stop_zookeeper
	;;
status) status ;;
*)
	echo "usage: $0 start|stop [node...] | status" >&2
	exit 2
	;;
esac
