#!/usr/bin/env bash
# The main job: install everything, then process a real bug report end to end (demo/run_demo.py):
# `jobq run` and `jobq api` on the Redis at REDIS_URL (or one the demo starts for itself), a real
# screenshot and rrweb replay posted, each job followed to `completed` and its files checked.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python demo/run_demo.py "$@"
