"""The abundance-scale figures of docs/METHOD.md and docs/BENCHMARKS.md, from the truth alone.

    python scripts/abundance_scale.py

Samson (needs ../shared/data/samson/Samson.mat): NNLS and FCLS with the truth endmembers against
the truth abundances. Synthetic scene S1 (generated): NNLS with the true spectra at their true
brightness, with each scaled to a maximum of 1, and the latter rescaled so that the NNLS
abundances sum to one as nearly as possible; the same rescaling on Samson's truth.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from dffn_qgis.core.eval import synthetic  # noqa: E402
from dffn_qgis.core.method.abundance_lsq import fcls, nnls  # noqa: E402
from dffn_qgis.core.eval.metrics import evaluate  # noqa: E402
from dffn_qgis.core.run.result import sum_to_one  # noqa: E402

SAMSON = ROOT.parent / "shared" / "data" / "samson" / "Samson.mat"


def rmse(E, A, E_true, A_true) -> float:
    return evaluate(E, A.reshape(A_true.shape), E_true, A_true)["mean_rmse"]


def nnls_summed(Y, E):
    return sum_to_one(nnls(Y, E))[0]


def rescaled(Y, E):
    """NNLS abundances after scaling each endmember so that they best sum to one (least squares)."""
    C = nnls(Y, E)
    s, *_ = np.linalg.lstsq(C.T, np.ones(C.shape[1]), rcond=None)
    return sum_to_one(C * s[:, None])[0]


def main():
    s = synthetic.make_scene(64, 64, 50, 3, seed=0, snr_db=30, pure_pixels=True)    # S1 of bench.py
    Y = (s.cube / s.cube.max()).reshape(s.cube.shape[0], -1)
    E_true = s.endmembers / s.cube.max()
    E_max1 = E_true / E_true.max(axis=0)
    print("S1, peak of each true spectrum (image maximum 1): " + ", ".join(f"{v:.2f}" for v in E_true.max(axis=0)))
    print(f"S1, NNLS, spectra at true brightness: RMSE {rmse(E_true, nnls_summed(Y, E_true), s.endmembers, s.abundances):.4f}")
    print(f"S1, NNLS, spectra scaled to max 1:    RMSE {rmse(E_max1, nnls_summed(Y, E_max1), s.endmembers, s.abundances):.4f}")
    print(f"S1, NNLS, max 1 then rescaled:        RMSE {rmse(E_max1, rescaled(Y, E_max1), s.endmembers, s.abundances):.4f}")
    if not SAMSON.exists():
        print(f"Samson: skipped, {SAMSON} not present")
        return
    from dffn_qgis.core.io.mat_io import read_mat_scene, read_mat_truth
    scene = read_mat_scene(str(SAMSON))
    A_true, M = read_mat_truth(str(SAMSON))
    Y = scene.data.reshape(scene.n_bands, -1).astype(np.float64)
    print(f"Samson, NNLS with the truth endmembers:  RMSE {rmse(M, nnls_summed(Y, M), M, A_true):.4f}")
    print(f"Samson, FCLS with the truth endmembers:  RMSE {rmse(M, fcls(Y, M), M, A_true):.4f}")
    print(f"Samson, NNLS, truth endmembers rescaled: RMSE {rmse(M, rescaled(Y, M), M, A_true):.4f}")


if __name__ == "__main__":
    main()
