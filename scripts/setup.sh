#!/usr/bin/env bash
# Create .venv and install the core, the libraries and every plugin (editable) with test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
args=(-e "core[test,s3,speed]")
for d in libs/* plugins/*; do
  [ -f "$d/pyproject.toml" ] && args+=(-e "$d[test]")
done
.venv/bin/python -m pip install -q "${args[@]}" "ruff>=0.6" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import jobq" && echo "setup: ok ($(.venv/bin/python -m pip list 2>/dev/null | grep -c jobq) jobq packages)"
