#!/usr/bin/env bash
# One-shot GPU suite (see scripts/gpu_suite.py): writes gpu_suite.json and
# gpu_suite.md to $OUT, else the current folder.
#
# The GPU image lacks some of our packages and cannot fetch any: first the
# wheels in .whl/ (scripts/gpu_wheels.sh, run where the registry is; WHEEL_DIR
# overrides the folder) are installed with `pip install --no-index --no-deps
# --target` into a temporary folder, which, with the repository, goes on
# PYTHONPATH for every process the suite starts. Nothing else is installed;
# the folder is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PYTHON="${PYTHON:-python3}"
WHEEL_DIR="${WHEEL_DIR:-.whl}"
TARGET="$(mktemp -d "${TMPDIR:-/tmp}/gpu_suite_wheels.XXXXXX")"
trap 'rm -rf "$TARGET"' EXIT
shopt -s nullglob
wheels=("$WHEEL_DIR"/*.whl)
if ((${#wheels[@]})); then
  if "$PYTHON" -m pip --version >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet --no-index --no-deps --disable-pip-version-check \
      --target "$TARGET" "${wheels[@]}"
  else  # no pip: a pure-Python wheel unpacked is installed for imports
    for wheel in "${wheels[@]}"; do "$PYTHON" -m zipfile -e "$wheel" "$TARGET"; done
  fi
  echo "gpu_suite: installed into $TARGET (on PYTHONPATH):"
  for wheel in "${wheels[@]}"; do echo "  $(basename "$wheel")"; done
else
  echo "gpu_suite: no wheels in $WHEEL_DIR/ (run scripts/gpu_wheels.sh where the registry is);" \
       "using what is installed"
fi
export PYTHONPATH="$TARGET:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
  || echo "gpu_suite: nvidia-smi not found; running on whatever jax and torch see"
"$PYTHON" scripts/gpu_suite.py "$@"
