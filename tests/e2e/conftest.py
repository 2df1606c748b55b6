"""End-to-end tests: QGIS's own executables (qgis_process, the desktop under Xvfb) with the
packaged plugin in a scratch profile. Slow; marked ``e2e`` (and ``qgis``)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
for path in (REPO, HERE):
    if path not in sys.path:
        sys.path.insert(0, path)
