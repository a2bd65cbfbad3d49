#!/usr/bin/env bash
# Build a wheel of every distribution (core, libs/*, plugins/*) into dist/ (or $1), plus the wheels of
# their dependencies, so `pip install --no-index --find-links dist jobq-plugin-screenshot` works offline.
# JOBQ_WHEELS_NO_DEPS=1 builds only the project's own wheels (publishing: upload those, not the deps).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-dist}")
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
mkdir -p "$out"
srcs=(./core)
for d in libs/* plugins/*; do
  [ -f "$d/pyproject.toml" ] && srcs+=("./$d")
done
# Our own distributions first, without their dependencies: pip then finds jobq>=0.1 in $out. With
# hatchling already installed (the test extras have it) the build needs no network.
isolation=()
"$PY" -c "import hatchling" 2>/dev/null && isolation=(--no-build-isolation)
"$PY" -m pip wheel -q --no-deps "${isolation[@]}" -w "$out" "${srcs[@]}"
if [ "${JOBQ_WHEELS_NO_DEPS:-}" != 1 ]; then
  # The third-party dependencies (every extra a deployment may choose), then the build backend, so a
  # plugin that depends on jobq>=0.1 can be built from $out too.
  extras=("$out"/jobq-*.whl "$out"/jobq_bugreports-*.whl)
  "$PY" -m pip wheel -q --find-links "$out" -w "$out" "${extras[0]}[s3,speed]" "${extras[1]}[api,postgres]" \
    "$out"/jobq_plugin_*.whl "hatchling>=1.18"
fi
echo "wheels.sh: $(ls "$out"/*.whl | wc -l) wheels in $out"
