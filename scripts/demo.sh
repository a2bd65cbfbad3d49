#!/usr/bin/env bash
# The main job: install everything, make sure Redis answers, and process real jobs end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/redis.sh
exec .venv/bin/jobq bench -n 20000
