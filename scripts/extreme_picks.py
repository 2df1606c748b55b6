"""Which materials do the scalable path's extreme-pixel windows land on? (no training)

    python scripts/extreme_picks.py RASTER TRUTH_ENDMEMBERS_CSV [--seed 1]

Streams RASTER as the scalable path does (band Gram matrix, then the skewer pass of
``dffn_qgis.core.method.extreme_pixels``), and prints, for the pixels the windows would be centred
on, the nearest true endmember and its spectral angle, and for each true endmember the closest
pick: once as the code picks them (candidates grouped by angle, ATGP on the groups' mean spectra)
and once by ATGP on the raw candidates (the code before the grouping). The truth is a
``*_truth_endmembers.csv`` (``make bench-scale``, ``scripts/bench_mosaic.py``), matched to the
bands the raster reader keeps.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dffn_qgis.core.eval.metrics import sad_matrix  # noqa: E402
from dffn_qgis.core.eval.synthetic import read_truth_endmembers  # noqa: E402
from dffn_qgis.core.io.raster_source import RasterSource  # noqa: E402
from dffn_qgis.core.method.extreme_pixels import SkewerExtremes, atgp  # noqa: E402
from dffn_qgis.core.method.ffm_scalable import valid_blocks  # noqa: E402
from dffn_qgis.core.run.progress import as_monitor  # noqa: E402


def describe(label: str, picked: np.ndarray, truth: np.ndarray, names) -> None:
    M = sad_matrix(picked, truth)
    nearest = ", ".join(f"{names[j]} ({M[i, j]:.3f})" for i, j in enumerate(M.argmin(axis=1)))
    closest = ", ".join(f"{n} {v:.3f}" for n, v in zip(names, M.min(axis=0)))
    print(f"{label}\n  picks, nearest truth (rad): {nearest}\n  closest pick per truth (rad): {closest}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("raster")
    ap.add_argument("truth")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    _, truth, names = read_truth_endmembers(args.truth)
    source = RasterSource(args.raster)
    truth = truth[np.asarray(source.scene.band_indices) - 1]
    P = truth.shape[1]
    device, monitor = torch.device("cpu"), as_monitor(None)
    gram = np.zeros((source.n_bands, source.n_bands))
    for Yb in valid_blocks(source, device, monitor, "band Gram matrix"):
        Y = Yb.double().numpy()
        gram += Y @ Y.T
    finder = SkewerExtremes(gram, P, args.seed)
    for Yb, rows, cols in valid_blocks(source, device, monitor, "skewers", positions=True):
        finder.update(Yb.numpy(), rows, cols)
    spectra, positions, _ = finder.candidates()
    print(f"{positions.shape[0]} distinct candidates; {P} materials")
    where = {tuple(p): i for i, p in enumerate(positions.tolist())}
    grouped = [where[p] for p in finder.pick(P)]
    describe("grouped by angle, ATGP on the groups' means (the code):", spectra[:, grouped], truth, names)
    describe("ATGP on the raw candidates (before the grouping):", spectra[:, atgp(spectra, P)], truth, names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
