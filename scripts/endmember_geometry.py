"""Where each true endmember lies relative to the pixels, and which methods find it.

    python scripts/endmember_geometry.py [--scenes samson,G04-emit-5]

For every development scene: each true endmember's angle to its nearest pixel (how far outside the
data's cone of directions it lies), and its spectral angle to the endmember matched to it (one-to-one)
by the default preset's cached runs (``.bench/scenes-runs/``, written by ``make bench-scenes``; the
median over the cached seeds), by VCA and by N-FINDR (seed 1); and the angle of the default's matched
endmember to its own nearest pixel. An endmember far from every pixel's
direction can only be found by a method that extrapolates beyond the pixels.
"""
import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from bench_scenes import RUNS, method_key  # noqa: E402
from benchmarks import scenes  # noqa: E402
from dffn_qgis.core.eval.baseline import nfindr_fcls, vca_fcls  # noqa: E402
from dffn_qgis.core.run.config import DEFAULT_PRESET  # noqa: E402


def angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spectral angles between the columns of ``a`` (L x p) and of ``b`` (L x q): p x q."""
    a = a / np.linalg.norm(a, axis=0)
    b = b / np.linalg.norm(b, axis=0)
    return np.arccos(np.clip(a.T @ b, -1.0, 1.0))


def matched(truth: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Each true endmember's angle to the estimate matched to it one-to-one."""
    S = angles(truth, estimate)
    rows, cols = linear_sum_assignment(S)
    out = np.full(truth.shape[1], np.nan)
    out[rows] = S[rows, cols]
    return out


def matched_nearest_pixel(truth: np.ndarray, estimate: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """For each true endmember, the angle of the estimate matched to it to that estimate's nearest pixel."""
    rows, cols = linear_sum_assignment(angles(truth, estimate))
    out = np.full(truth.shape[1], np.nan)
    out[rows] = angles(estimate[:, cols], Y).min(axis=1)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenes", default="", help="comma-separated scene names (default: all available)")
    args = ap.parse_args()
    names = [s for s in args.scenes.split(",") if s] or [n for n in scenes.ALL_NAMES if not scenes.available(n)]
    key = method_key("dffn", DEFAULT_PRESET, {})
    print("| scene | true endmember | angle to the nearest pixel | default (median of cached seeds) | VCA | N-FINDR | "
          "default's endmember: angle to its nearest pixel |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in names:
        bench = scenes.load(name)
        Y = bench.scene.data[:, bench.scene.valid].astype(np.float64)
        M = bench.endmembers
        P = M.shape[1]
        nearest = angles(M, Y).min(axis=1)
        estimates = [np.load(path)["endmembers"] for path in sorted(RUNS.glob(f"{name}--{key}--*.npz"))]
        runs = [matched(M, E) for E in estimates]
        dffn = [statistics.median(r[k] for r in runs) if runs else float("nan") for k in range(P)]
        own = [matched_nearest_pixel(M, E, Y) for E in estimates]
        dffn_near = [statistics.median(r[k] for r in own) if own else float("nan") for k in range(P)]
        vca = matched(M, vca_fcls(Y, P, seed=1)[0])
        nfindr = matched(M, nfindr_fcls(Y, P, seed=1)[0])
        for k in range(P):
            print(f"| {name} | {bench.names[k]} | {nearest[k]:.3f} | {dffn[k]:.3f} ({len(runs)}) | {vca[k]:.3f} | "
                  f"{nfindr[k]:.3f} | {dffn_near[k]:.3f} |")


if __name__ == "__main__":
    main()
