"""Memory and time of writing a large result alone (stack, per-endmember rasters, class raster,
error map, plot, report, record): what the writing stage adds to a run's peak.

    python scripts/bench_writing.py [--size 4000] [--endmembers 4] [--root PATH]

A synthetic result (random fractions that sum to one, a nodata corner) of ``size`` x ``size``
pixels is written with ``write_outputs`` into a temporary folder; prints the growth of the
process's peak resident memory during the writing, the memory the maps themselves hold, and the
seconds. ``--root`` takes the package from another checkout (e.g. a ``git worktree`` of an
earlier commit), to compare versions.
"""
import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4000)
    ap.add_argument("--endmembers", type=int, default=4)
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[1]))
    args = ap.parse_args()
    sys.path.insert(0, args.root)
    import numpy as np

    from dffn_qgis.core.io.outputs import plan_outputs, write_outputs
    from dffn_qgis.core.io.scene import Scene
    from dffn_qgis.core.run.result import UnmixResult

    n, P, L = args.size, args.endmembers, 224
    rng = np.random.default_rng(0)
    A = rng.random((P, n, n), dtype=np.float32)
    A /= A.sum(0)
    A[:, :50, :50] = np.nan
    error = rng.random((n, n), dtype=np.float32)
    error[:50, :50] = np.nan
    scene = Scene(data=None, valid=np.isfinite(error), wavelengths=np.linspace(400, 2500, L), wavelength_units="nm",
                  band_indices=list(range(1, L + 1)), band_names=[f"band {b}" for b in range(1, L + 1)],
                  source="synthetic", geotransform=(0, 30, 0, 0, 0, -30), crs_wkt=None)
    result = UnmixResult(abundances=A, endmembers=rng.random((L, P), dtype=np.float32), error=error, loss=0.1,
                         history=[0.1], record={"timings": {}})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        write_outputs(plan_outputs(folder, "synthetic"), scene, result)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(f"{n} x {n} x {P}: writing added {grown:.0f} MB to the peak (the maps hold "
          f"{(A.nbytes + error.nbytes) / 2 ** 20:.0f} MB) in {time.perf_counter() - t0:.1f} s; package from {args.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
