#!/usr/bin/env bash
# Build the benchmark's own environment: a virtualenv with jobq and its Python peers (arq pins
# redis<6, which the main venv's redis 8 would conflict with), and BullMQ's Node dependencies.
# Usage: bench/setup.sh && bench/.venv/bin/python bench/core_bench.py
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3.11}"
if [ ! -x "$here/.venv/bin/python" ]; then
  "$python" -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install -q --upgrade pip
# kombu 5.6+ wants redis-py 6.1+, which arq's pin forbids: hold Celery and kombu below those releases.
"$here/.venv/bin/pip" install -q -e "$here/../core" \
  "arq>=0.26" "rq>=2.0" "dramatiq[redis]>=1.17" "celery[redis]>=5.4,<5.5" "kombu>=5.4,<5.6" "packaging>=23" \
  "py-spy>=0.3"
if command -v npm >/dev/null 2>&1; then
  (cd "$here/peers/bullmq" && npm install --no-audit --no-fund --loglevel=error)
else
  echo "npm not found: the BullMQ peer will be skipped" >&2
fi
"$here/.venv/bin/python" - <<'PY'
import importlib.metadata as m
for d in ("jobq", "redis", "hiredis", "arq", "rq", "dramatiq", "celery", "kombu"):
    print(f"{d:10s} {m.version(d)}")
PY
