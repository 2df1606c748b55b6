"""Abundance fits of the same learned endmembers, on every cached default run that kept them.

    python scripts/abundance_fits.py [RUN.npz ...]
    python scripts/abundance_fits.py --truth

For each ``.bench/scenes-runs/*.npz`` of the default preset (written by ``make bench-scenes``), the
abundance RMSE against the scene's truth of: NNLS on the max-normalised endmembers scaled to sum to
one (the refined abundances before the brightness fit), the same after the brightness fit (today's
default until 2026-12-04), FCLS on the brightness-fitted endmembers, and the soft sum-to-one fit
with the brightness spread chosen on held-out bands (``pixel_brightness=auto``, the default since).
Named ``.npz`` files (``bench_scene_run.py --save``, named ``<anything>-<scene>-<seed>.npz``) are
scored instead of the cache. ``--truth``: the same fits of every generated development scene's true
endmember shapes (max-normalised, then brightness-fitted as a run's), which separates the abundance
step from the endmembers' errors.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402

from bench_scenes import RUNS, method_key  # noqa: E402
from benchmarks import scenes  # noqa: E402
from dffn_qgis.core.method.abundance_lsq import fcls, nnls  # noqa: E402
from dffn_qgis.core.method.brightness import brightness_spread, fit_brightness  # noqa: E402
from dffn_qgis.core.run.config import DEFAULT_PRESET  # noqa: E402
from dffn_qgis.core.eval.metrics import evaluate, normalise_endmembers  # noqa: E402
from dffn_qgis.core.run.result import sum_to_one  # noqa: E402


def runs():
    """(scene name, label, endmembers) of every run to score."""
    if sys.argv[1:] == ["--truth"]:
        for name in scenes.ALL_NAMES:
            if name.startswith("G"):
                yield name, "true shapes", scenes.load(name).endmembers
        return
    key = method_key("dffn", DEFAULT_PRESET, {})
    named = [Path(a) for a in sys.argv[1:]]
    for path in named or sorted(RUNS.glob(f"*--{key}--*.npz")):
        name = next(n for n in scenes.ALL_NAMES if f"-{n}-" in path.name) if named else path.name.split("--")[0]
        yield name, path.name.split("--")[-1][:-4], np.load(path)["endmembers"]


def main():
    for name, label, endmembers in runs():
        bench = scenes.load(name)
        Y = bench.scene.data[:, bench.scene.valid].astype(np.float64)
        A_true = bench.abundances[:, bench.scene.valid]
        E = normalise_endmembers(endmembers)
        fitted, _ = fit_brightness(Y, E)

        def rmse(A):
            return evaluate(E, A, bench.endmembers, A_true)["mean_rmse"]
        spread = brightness_spread(Y, fitted)
        chosen = sum_to_one(nnls(Y, fitted, sum_weight=spread.sum_weight))[0]
        print(f"{name} ({label}): max-normalised NNLS {rmse(sum_to_one(nnls(Y, E))[0]):.4f}, "
              f"brightness-fitted NNLS {rmse(sum_to_one(nnls(Y, fitted))[0]):.4f}, "
              f"FCLS on the fitted {rmse(fcls(Y, fitted)):.4f}, "
              f"soft sum (spread {spread.spread:g}, chosen) {rmse(chosen):.4f}", flush=True)


if __name__ == "__main__":
    main()
