#!/usr/bin/env bash
# Downloads into .whl/ the wheels the GPU image lacks (scripts/gpu_wheels.txt):
# CPython 3.12, manylinux x86-64, no dependencies. Run it here, on a machine
# with the package registry; then on the GPU machine `bash scripts/gpu_suite.sh`
# with .whl carried (docs/performance.md). WHEEL_DIR overrides .whl.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
WHEEL_DIR="${WHEEL_DIR:-.whl}"
mkdir -p "$WHEEL_DIR"
rm -f "$WHEEL_DIR"/*.whl  # exactly the pinned set, no stale versions
sed 's/#.*//' scripts/gpu_wheels.txt | awk NF | while read -r requirement; do
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$WHEEL_DIR" "$requirement"
done
echo "gpu_wheels: in $WHEEL_DIR/:"
ls -l "$WHEEL_DIR"/*.whl | awk '{printf "  %-60s %8.1f KiB\n", $NF, $5 / 1024}'
du -ch "$WHEEL_DIR"/*.whl | tail -1 | sed 's/^/  /'
