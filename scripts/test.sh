#!/usr/bin/env bash
# The test command: install everything, make sure Redis answers, lint, run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/redis.sh
if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null && command -v pg_ctlcluster >/dev/null 2>&1; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
.venv/bin/ruff check .
export JOBQ_TEST_REDIS_URL=${JOBQ_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}  # never fakeredis here
exec .venv/bin/python -m pytest "$@"
