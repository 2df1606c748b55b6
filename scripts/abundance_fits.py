"""Three abundance fits of the same learned endmembers, on every cached default run that kept them.

    python scripts/abundance_fits.py

For each ``.bench/scenes-runs/*.npz`` of the default preset (written by ``make bench-scenes``), the
abundance RMSE against the scene's truth of: NNLS on the max-normalised endmembers scaled to sum to
one (the refined abundances before the brightness fit), the same after the brightness fit (today's
default), and FCLS on the brightness-fitted endmembers.
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
from dffn_qgis.core.method.brightness import fit_brightness  # noqa: E402
from dffn_qgis.core.run.config import DEFAULT_PRESET  # noqa: E402
from dffn_qgis.core.eval.metrics import evaluate, normalise_endmembers  # noqa: E402
from dffn_qgis.core.run.result import sum_to_one  # noqa: E402


def main():
    key = method_key("dffn", DEFAULT_PRESET, {})
    for path in sorted(RUNS.glob(f"*--{key}--*.npz")):
        name = path.name.split("--")[0]
        bench = scenes.load(name)
        Y = bench.scene.data[:, bench.scene.valid].astype(np.float64)
        A_true = bench.abundances[:, bench.scene.valid]
        E = normalise_endmembers(np.load(path)["endmembers"])
        fitted, _ = fit_brightness(Y, E)

        def rmse(A):
            return evaluate(E, A, bench.endmembers, A_true)["mean_rmse"]
        print(f"{name} ({path.name.split('--')[-1][:-4]}): max-normalised NNLS {rmse(sum_to_one(nnls(Y, E))[0]):.4f}, "
              f"brightness-fitted NNLS {rmse(sum_to_one(nnls(Y, fitted))[0]):.4f}, "
              f"FCLS on the fitted {rmse(fcls(Y, fitted)):.4f}")


if __name__ == "__main__":
    main()
