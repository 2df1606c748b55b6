#!/usr/bin/env bash
# Set up everything the project needs on a Debian 12 or 13 machine: QGIS and GDAL from Debian's
# packages, a virtual environment in .venv/ that sees them, torch without touching the system numpy.
# Safe to run twice: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
SYS_PY=/usr/bin/python3
APT_PACKAGES="qgis python3-qgis qgis-providers python3-gdal gdal-bin python3-matplotlib python3-scipy python3-venv python3-pip xvfb xauth"

need_apt() {
    for p in $APT_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 0
    done
    return 1
}

if need_apt; then
    echo "setup: installing QGIS, GDAL and Xvfb from Debian's packages (a few minutes the first time)"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV (with the system's site packages: QGIS, GDAL, numpy)"
    "$SYS_PY" -m venv --system-site-packages "$VENV"
fi
PY="$VENV/bin/python"

# Pin numpy to the system's version so pip never upgrades it past what GDAL was built against.
NUMPY_VERSION=$("$SYS_PY" -c 'import numpy; print(numpy.__version__)')
CONSTRAINTS="$VENV/numpy-constraint.txt"
echo "numpy==$NUMPY_VERSION" > "$CONSTRAINTS"

if ! "$PY" -c 'import torch' 2>/dev/null; then
    PYVER=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    if [ "$PYVER" = "3.11" ]; then
        echo "setup: installing torch 2.13.0 (CPU build)"
        "$PY" -m pip install -q -c "$CONSTRAINTS" torch==2.13.0
    else
        # Debian 13 (Python 3.13): Debian's own CPU build of torch if available, else PyPI's.
        SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        if apt-cache show python3-torch >/dev/null 2>&1; then
            echo "setup: installing Debian's python3-torch"
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-torch >/dev/null
        fi
        "$PY" -c 'import torch' 2>/dev/null || "$PY" -m pip install -q -c "$CONSTRAINTS" torch
    fi
fi

if ! "$PY" -c 'import spectral, pytest, pytest_qgis, hypothesis, distributed' 2>/dev/null; then
    echo "setup: installing spectral, dask.distributed, pytest, pytest-qgis, hypothesis"
    "$PY" -m pip install -q --use-pep517 -c "$CONSTRAINTS" -r requirements-dev.txt
fi
# earthlib (MIT): ~7,000 measured spectra, used for the development scenes (benchmarks/) and the
# default library that names endmembers. Only its data files are read, so its own dependencies
# (pandas, loguru, tqdm) are not installed.
if ! "$PY" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("earthlib") is None)' 2>/dev/null; then
    echo "setup: installing earthlib's spectral library (data only)"
    "$PY" -m pip install -q --no-deps earthlib==1.1.0
fi
# the default library that names endmembers, built from earthlib (dffn_qgis/data/, git-ignored)
if [ ! -f dffn_qgis/data/default_library.csv ]; then
    echo "setup: building the default spectral library for naming endmembers"
    "$PY" -c 'from dffn_qgis.core.method.naming import write_default_library; write_default_library()'
fi
"$PY" -c 'import torch, numpy, spectral; from osgeo import gdal; import qgis.core; print("setup: ok - torch", torch.__version__, "numpy", numpy.__version__, "GDAL", gdal.__version__, "QGIS", qgis.core.Qgis.QGIS_VERSION)'
