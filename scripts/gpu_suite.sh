#!/usr/bin/env bash
# One-shot GPU suite (see scripts/gpu_suite.py): writes gpu_suite.json and
# gpu_suite.md to $OUT, else the current folder. Installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
  || echo "gpu_suite: nvidia-smi not found; running on whatever jax and torch see"
exec "$PYTHON" scripts/gpu_suite.py "$@"
