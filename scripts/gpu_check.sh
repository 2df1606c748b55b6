#!/usr/bin/env bash
# The GPU check (docs/DEVELOPERS.md, "The GPU check"): run from the repository root on a machine with
# an NVIDIA GPU. It uses the python3 that holds a CUDA build of torch (the GPU image has one; the
# project's CPU .venv cannot see a GPU). GDAL is not needed: the check runs the engine on arrays, and
# where the osgeo module is missing a placeholder that fails loudly if called is put on the path.
# It runs the CUDA-only tests (tests/core/run/test_gpu.py), then scripts/gpu_check.py.
# Inputs that do not travel (../shared, earthlib) come from .gpu-inputs/ (make them here with
# `.venv/bin/python scripts/gpu_check.py --prepare`). Usage: bash scripts/gpu_check.sh [--dry-run] [--out F]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
if [ "${1:-}" = "--dry-run" ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
if ! "$PY" -c 'import osgeo' 2>/dev/null; then
    STUB=$(mktemp -d)
    mkdir -p "$STUB/osgeo"
    cat > "$STUB/osgeo/__init__.py" <<'PYEOF'
"""Placeholder: GDAL is not installed here; the GPU check needs none of it."""
class _Missing:
    def __getattr__(self, name):
        raise RuntimeError(f"GDAL is not installed here (osgeo.gdal.{name} was called)")
gdal = _Missing()
PYEOF
    export PYTHONPATH="$STUB${PYTHONPATH:+:$PYTHONPATH}"
    echo "gpu-check: osgeo missing, using a placeholder"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
# everything must end within 6 minutes on the GPU machine (a second run fits in the 15 minutes it is
# lent); a CPU dry run on 2 shared cores may take longer
status=0
if [ "${1:-}" != "--prepare" ]; then
    # the CUDA-only tests first (they skip where torch sees no GPU): the CPU-GPU tolerance
    timeout 60 "$PY" -m pytest tests/core/run/test_gpu.py -s -q -p no:cacheprovider || status=$?
fi
LIMIT=290; [ "${1:-}" = "--dry-run" ] && LIMIT=1800
timeout "$LIMIT" "$PY" scripts/gpu_check.py "$@" || status=$?
exit $status
