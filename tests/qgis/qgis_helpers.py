"""Helpers shared by the QGIS tests (imported as ``qgis_helpers``; conftest holds the fixtures)."""
import os
import time

from qgis.core import QgsApplication

HEIGHT, WIDTH, BANDS, ENDMEMBERS = 16, 16, 24, 3

# Parameters that make a run take a second or two on a small CPU.
FAST = {
    "N_ENDMEMBERS": ENDMEMBERS,
    "PRESET": 0,          # fast
    "DEVICE": 1,          # cpu
    "SEED": 1,
    "EPOCHS": 3,
    "STARTS": 1,
    "START_EPOCHS": 0,
    "PATIENCE": 0,
    "PRECISION": 1,       # float32
    "THREADS": 1,
}


def write_scene(path, seed=0, height=HEIGHT, width=WIDTH, bands=BANDS, endmembers=ENDMEMBERS):
    from dffn_qgis.core.eval.synthetic import make_scene, write_geotiff

    scene = make_scene(height, width, bands, endmembers, seed=seed)
    write_geotiff(scene, str(path))
    return str(path)


def destinations(folder, stem="run"):
    """Explicit file destinations for every output, in ``folder``."""
    folder = str(folder)
    return {
        "OUTPUT": os.path.join(folder, stem + "_abundances.tif"),
        "ABUNDANCE_FOLDER": os.path.join(folder, stem + "_per_endmember"),
        "ENDMEMBERS": os.path.join(folder, stem + "_endmembers.csv"),
        "PLOT": os.path.join(folder, stem + "_report.html"),
        "ERROR": os.path.join(folder, stem + "_error.tif"),
    }


def wait_for(condition, timeout=120.0):
    """Process Qt events until ``condition()`` is true; False on timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        QgsApplication.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    QgsApplication.processEvents()
    return bool(condition())
