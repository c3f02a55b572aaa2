#!/usr/bin/env bash
# redis-topology.sh - start/stop throwaway Redis topologies on loopback for tests and CI.
#
# Usage:
#   scripts/redis-topology.sh start   sentinel|cluster|all   # idempotent; restarts stale topologies
#   scripts/redis-topology.sh stop    sentinel|cluster|all   # kill nodes, wait for ports free, rm state
#   scripts/redis-topology.sh status                         # which ports answer PING (and their role)
#   scripts/redis-topology.sh kill-master sentinel           # SIGKILL the master sentinel currently reports
#   scripts/redis-topology.sh restart-port PORT              # restart a node from its saved config
#
# Topologies (all on 127.0.0.1, no persistence, daemonized):
#   sentinel: master 6390, replica 6391, sentinels 26390 26391 26392,
#             master name "sessionmaster", quorum 2, down-after 1000 ms, failover-timeout 5000 ms
#   cluster:  masters 7010 7011 7012 (no replicas, all 16384 slots assigned)
#
# State (configs, pidfiles, logs, nodes.conf) lives in ${REDIS_TOPOLOGY_DIR:-/tmp/session-redis-topology}
# under sentinel/<port>/ and cluster/<port>/.
# Optional env overrides: REDIS_TOPOLOGY_MASTER_PORT, REDIS_TOPOLOGY_REPLICA_PORT,
#   REDIS_TOPOLOGY_SENTINEL_PORTS, REDIS_TOPOLOGY_CLUSTER_PORTS (space separated),
#   REDIS_TOPOLOGY_TIMEOUT (readiness timeout in seconds, default 30).
set -euo pipefail

DIR="${REDIS_TOPOLOGY_DIR:-/tmp/session-redis-topology}"
M_PORT="${REDIS_TOPOLOGY_MASTER_PORT:-6390}"
R_PORT="${REDIS_TOPOLOGY_REPLICA_PORT:-6391}"
read -r -a S_PORTS <<<"${REDIS_TOPOLOGY_SENTINEL_PORTS:-26390 26391 26392}"
read -r -a C_PORTS <<<"${REDIS_TOPOLOGY_CLUSTER_PORTS:-7010 7011 7012}"
TIMEOUT="${REDIS_TOPOLOGY_TIMEOUT:-30}"
NAME=sessionmaster
HOST=127.0.0.1

log() { echo "redis-topology: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

for p in "$M_PORT" "$R_PORT" "${S_PORTS[@]}" "${C_PORTS[@]}"; do
  [[ "$p" =~ ^[0-9]+$ ]] || die "invalid port '$p'"
  [[ "$p" != 6379 ]] || die "refusing to manage port 6379 (the shared standalone Redis)"
done

cli() { local p=$1; shift; timeout 5 redis-cli -h "$HOST" -p "$p" "$@" 2>/dev/null | tr -d '\r'; }
pings() { [[ "$(cli "$1" PING)" == PONG ]]; }
alive() { grep -qa redis "/proc/$1/cmdline" 2>/dev/null; }   # false for zombies / reused pids
listening() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
# value following key line $2 in a flat key/value reply on stdin
kv() { awk -v k="$1" 'prev == k { print; found = 1; exit } { prev = $0 } END { exit !found }'; }
topo_ports() { case $1 in sentinel) echo "$M_PORT $R_PORT ${S_PORTS[*]}" ;; cluster) echo "${C_PORTS[*]}" ;; esac; }
node_dir() { echo "$DIR/$1/$2"; }

log_tail() { # print the tail of every log of topology $1
  local f
  for f in "$DIR/$1"/*/*.log; do [[ -f "$f" ]] && { echo "----- $f" >&2; tail -n 20 "$f" >&2; }; done
  return 0
}

wait_for() { # wait_for DESCRIPTION TOPOLOGY CMD... : poll CMD until success or timeout
  local desc=$1 topo=$2; shift 2
  local deadline=$((SECONDS + TIMEOUT))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${TIMEOUT}s waiting for: $desc"; log_tail "$topo"; die "$topo topology not ready"
    fi
    sleep 0.2
  done
}

write_conf() { # write_conf TOPO PORT [extra lines...]
  local topo=$1 port=$2 d; shift 2; d=$(node_dir "$topo" "$port")
  mkdir -p "$d"
  {
    echo "port $port"; echo "bind $HOST"; echo "protected-mode no"; echo "daemonize yes"
    echo "dir $d"; echo "pidfile $d/redis.pid"; echo "logfile $d/redis.log"
    printf '%s\n' "$@"
  } >"$d/redis.conf"
}

launch() { # launch TOPO PORT : start node from its saved config
  local d; d=$(node_dir "$1" "$2")
  [[ -f "$d/redis.conf" ]] || die "no saved config for port $2 in $d"
  if grep -q '^sentinel monitor' "$d/redis.conf"; then
    redis-server "$d/redis.conf" --sentinel >/dev/null 9>&- || { log_tail "$1"; die "failed to launch sentinel on $2"; }
  else
    redis-server "$d/redis.conf" >/dev/null 9>&- || { log_tail "$1"; die "failed to launch redis on $2"; }
  fi
}

# ---------------------------------------------------------------- health checks
replica_ready() { cli "$R_PORT" INFO replication | grep -qx 'master_link_status:up'; }
sentinels_ready() {
  local s info
  for s in "${S_PORTS[@]}"; do
    [[ "$(cli "$s" SENTINEL get-master-addr-by-name "$NAME" | paste -sd' ')" == "$HOST $M_PORT" ]] || return 1
    info=$(cli "$s" SENTINEL master "$NAME") || return 1
    [[ "$(kv num-slaves <<<"$info")" == 1 && "$(kv num-other-sentinels <<<"$info")" == 2 \
      && "$(kv flags <<<"$info")" == master ]] || return 1
  done
}
sentinel_healthy() { pings "$M_PORT" && replica_ready && sentinels_ready; }
cluster_healthy() {
  local p info
  for p in "${C_PORTS[@]}"; do
    info=$(cli "$p" CLUSTER INFO) || return 1
    grep -qx 'cluster_state:ok' <<<"$info" && grep -qx 'cluster_slots_assigned:16384' <<<"$info" \
      && grep -qx "cluster_known_nodes:${#C_PORTS[@]}" <<<"$info" || return 1
  done
}
all_ping() { local p; for p in "$@"; do pings "$p" || return 1; done; }

# ---------------------------------------------------------------- stop
kill_port() { # kill_port TOPO PORT
  local d pid; d=$(node_dir "$1" "$2")
  if [[ -f "$d/redis.pid" ]]; then
    pid=$(cat "$d/redis.pid" 2>/dev/null || true)
    if [[ -n "$pid" ]] && alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
      alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$d/redis.pid"
  fi
  if listening "$2"; then cli "$2" SHUTDOWN NOSAVE >/dev/null || true; fi
}

stop_topo() {
  local t=$1 p ports deadline
  ports=$(topo_ports "$t")
  for p in $ports; do kill_port "$t" "$p"; done
  deadline=$((SECONDS + 15))
  for p in $ports; do
    while listening "$p" || { [[ $t == cluster ]] && listening $((p + 10000)); }; do
      ((SECONDS < deadline)) || die "port $p still in use after stop"
      sleep 0.2
    done
  done
  rm -rf "${DIR:?}/$t"
  log "$t stopped"
}

# ---------------------------------------------------------------- start
is_stale() { # anything of topology $1 left over (state dir or port in use)?
  local p
  [[ -d "$DIR/$1" ]] && return 0
  for p in $(topo_ports "$1"); do listening "$p" && return 0; done
  return 1
}

start_sentinel() {
  local s
  if sentinel_healthy; then log "sentinel already up and healthy"; return 0; fi
  if is_stale sentinel; then log "sentinel topology stale/partial, restarting"; stop_topo sentinel; fi
  write_conf sentinel "$M_PORT" 'save ""' 'appendonly no' 'repl-diskless-sync-delay 0'
  write_conf sentinel "$R_PORT" 'save ""' 'appendonly no' 'repl-diskless-sync-delay 0' "replicaof $HOST $M_PORT"
  launch sentinel "$M_PORT"; launch sentinel "$R_PORT"
  wait_for "master/replica PING" sentinel all_ping "$M_PORT" "$R_PORT"
  wait_for "replica master_link_status:up" sentinel replica_ready
  for s in "${S_PORTS[@]}"; do   # fresh sentinel configs every start (sentinel rewrites them)
    write_conf sentinel "$s" "sentinel monitor $NAME $HOST $M_PORT 2" \
      "sentinel down-after-milliseconds $NAME 1000" "sentinel failover-timeout $NAME 5000" \
      "sentinel parallel-syncs $NAME 1"
    launch sentinel "$s"
  done
  wait_for "sentinels agree on $HOST $M_PORT with 1 replica and 2 peers" sentinel sentinel_healthy
  log "sentinel up: master $M_PORT, replica $R_PORT, sentinels ${S_PORTS[*]} ($NAME)"
}

start_cluster() {
  local p addrs=()
  if cluster_healthy; then log "cluster already up and healthy"; return 0; fi
  if is_stale cluster; then log "cluster topology stale/partial, restarting"; stop_topo cluster; fi
  for p in "${C_PORTS[@]}"; do
    write_conf cluster "$p" 'save ""' 'appendonly no' 'cluster-enabled yes' \
      "cluster-config-file $(node_dir cluster "$p")/nodes.conf" 'cluster-node-timeout 2000'
    launch cluster "$p"; addrs+=("$HOST:$p")
  done
  wait_for "cluster nodes PING" cluster all_ping "${C_PORTS[@]}"
  timeout 60 redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes \
    >"$DIR/cluster/create.log" 2>&1 || { cat "$DIR/cluster/create.log" >&2; log_tail cluster; die "cluster create failed"; }
  wait_for "cluster_state:ok with 16384 slots on every node" cluster cluster_healthy
  log "cluster up: ${C_PORTS[*]}"
}

# ---------------------------------------------------------------- misc
kill_master() {
  local s addr="" port pid
  for s in "${S_PORTS[@]}"; do
    addr=$(cli "$s" SENTINEL get-master-addr-by-name "$NAME" | paste -sd' ') && [[ -n "$addr" ]] && break
  done
  [[ -n "$addr" ]] || die "no sentinel answered for $NAME"
  port=${addr##* }
  pid=$(cli "$port" INFO server | sed -n 's/^process_id://p')
  [[ -n "$pid" ]] || pid=$(cat "$(node_dir sentinel "$port")/redis.pid" 2>/dev/null || true)
  [[ -n "$pid" ]] || die "cannot find pid of master on port $port"
  kill -KILL "$pid"
  for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
  rm -f "$(node_dir sentinel "$port")/redis.pid"
  log "killed master $addr (pid $pid)"
  echo "$addr"
}

restart_port() {
  local port=$1 t
  [[ "$port" =~ ^[0-9]+$ && "$port" != 6379 ]] || die "invalid port '$port'"
  for t in sentinel cluster; do
    if [[ -f "$(node_dir $t "$port")/redis.conf" ]]; then
      if pings "$port"; then log "port $port already running"; return 0; fi
      rm -f "$(node_dir $t "$port")/redis.pid"
      launch "$t" "$port"
      wait_for "port $port PING" "$t" pings "$port"
      log "restarted $t node on $port"; return 0
    fi
  done
  die "no saved config for port $port under $DIR"
}

status() {
  local p role
  for p in "$M_PORT" "$R_PORT" "${S_PORTS[@]}" "${C_PORTS[@]}"; do
    if pings "$p"; then
      role=$(cli "$p" ROLE | awk 'NR == 1')
      echo "$p up ($role)"
    else
      echo "$p down"
    fi
  done
}

# ---------------------------------------------------------------- main
topos() { case ${1:-} in sentinel | cluster) echo "$1" ;; all) echo "sentinel cluster" ;; *) usage ;; esac; }

cmd=${1:-}; arg=${2:-}
[[ -n "$cmd" ]] || usage
mkdir -p "$DIR"
if [[ "$cmd" != status ]]; then   # serialize concurrent callers (daemons get fd 9 closed)
  exec 9>"$DIR/.lock"; flock -w 120 9 || die "could not lock $DIR/.lock"
fi
case "$cmd" in
  start) ts=$(topos "$arg"); for t in $ts; do "start_$t"; done ;;
  stop) ts=$(topos "$arg"); for t in $ts; do stop_topo "$t"; done ;;
  status) status ;;
  kill-master) [[ "$arg" == sentinel ]] || usage; kill_master ;;
  restart-port) [[ -n "$arg" ]] || usage; restart_port "$arg" ;;
  *) usage ;;
esac
