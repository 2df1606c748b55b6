"""``python -m dffn_qgis``: the command line of the DFFN engine (no QGIS needed)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
