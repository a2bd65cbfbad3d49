#!/usr/bin/env bash
# Make sure a Redis answers at REDIS_URL's port (default 6379); start a local one if none does.
set -euo pipefail
port=${REDIS_PORT:-6379}
if redis-cli -p "$port" ping >/dev/null 2>&1 || (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  exit 0
fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis.sh: installing redis-server" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >&2
fi
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --maxmemory-policy noeviction --dir /tmp --logfile /tmp/jobq-redis-"$port".log
for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && exit 0; sleep 0.1; done
echo "redis.sh: redis-server did not start" >&2; exit 1
