#!/usr/bin/env bash
# services.sh - make sure the servers the tests talk to are up: PostgreSQL (127.0.0.1:5432),
# MariaDB (127.0.0.1:3306) and Redis (127.0.0.1:6379). Starts whichever is down with the
# machine's own binaries and waits until it answers; fails loudly, naming the server, if one
# cannot be started.
#
# Usage: scripts/services.sh [up|status]
set -euo pipefail

TIMEOUT="${SERVICES_TIMEOUT:-60}"
log() { echo "services: $*" >&2; }

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }
maria_up() { mariadb-admin -h 127.0.0.1 -P 3306 -uroot ping >/dev/null 2>&1; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }

start_pg() {
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
}
start_maria() {
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
}
start_redis() {
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
}

ensure() {
  local name=$1 probe=$2 start=$3
  if $probe; then
    log "$name is up"
    return 0
  fi
  log "$name is down; starting it"
  $start || log "$name: the start command failed"
  local waited=0
  until $probe; do
    if ((waited >= TIMEOUT)); then
      log "ERROR: $name did not come up within ${TIMEOUT}s"
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  log "$name is up (after ${waited}s)"
}

case "${1:-up}" in
  up)
    ensure PostgreSQL pg_up start_pg
    ensure MariaDB maria_up start_maria
    ensure Redis redis_up start_redis
    ;;
  status)
    for s in pg_up:PostgreSQL maria_up:MariaDB redis_up:Redis; do
      if ${s%%:*}; then echo "${s#*:} up"; else echo "${s#*:} down"; fi
    done
    ;;
  *) echo "usage: $0 [up|status]" >&2; exit 2 ;;
esac
