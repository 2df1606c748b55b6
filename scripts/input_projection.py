"""Experiment: the abundance module fed the enhanced image restricted to its K leading directions.

    python scripts/input_projection.py SCENE --seed 1 --components 64 --mode channels
    python scripts/input_projection.py SCENE --seed 1 --components 64 --mode denoise

One default-preset run of a development scene, printed as one JSON line (seconds, epochs, final loss,
mean SAD and RMSE, scored as ``make bench-scenes`` scores). Before training, the enhanced image's
pixels give the K leading eigenvectors ``U`` (L x K) of their uncentred Gram matrix, and

* ``channels``: the abundance module's first convolution takes the K coordinates ``U^T x`` instead
  of the L bands (K-fold fewer multiplications in the network's largest layer);
* ``denoise``: it takes the L bands of ``U U^T x`` (the image without what lies outside those K
  directions; same cost as the default).

Nothing here is used by the plugin; docs/BENCHMARKS.md (notes) has what it measured. ``denoise`` is
what ``input_components = K`` does since 2026-12-07 (same function, K coordinates' cost); ``channels``
is the parameter's form before (weights on the K coordinates).
"""
import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402

from bench_scene_run import scores  # noqa: E402
from benchmarks import scenes  # noqa: E402
from dffn_qgis.core.method import model, train  # noqa: E402
from dffn_qgis.core.run.config import params_for  # noqa: E402
from dffn_qgis.core.run.pipeline import unmix_scene  # noqa: E402


def leading_directions(image: np.ndarray, k: int) -> np.ndarray:
    """L x k: the leading eigenvectors of the uncentred Gram matrix of the image's pixels."""
    pixels = np.moveaxis(np.asarray(image, dtype=np.float64), -3, 0).reshape(image.shape[-3], -1)
    values, vectors = np.linalg.eigh(pixels @ pixels.T)
    return vectors[:, np.argsort(values)[::-1][:k]]


def install(k: int, mode: str) -> None:
    """Patch the training so that it sees the restricted image (this process only)."""
    original = train.train

    def restricted(image, Y, valid_index, params, monitor=None, hardware=None):
        U = leading_directions(image, min(k, image.shape[-3]))
        z = np.einsum("lk,...lhw->...khw", U, np.asarray(image, dtype=np.float64))
        if mode == "denoise":
            z = np.einsum("lk,...khw->...lhw", U, z)
        return original(z.astype(np.float32), Y, valid_index, params, monitor, hardware)

    if mode == "channels":
        class ChannelsDFFN(model.DFFN):
            def __init__(self, n_bands, n_endmembers, n_pixels, kernel=5, padding=2, projection=None):
                super().__init__(n_bands, n_endmembers, n_pixels, kernel, padding)
                self.aem[0] = model._conv_block(min(k, n_bands), 128, kernel, padding)
        train.DFFN = ChannelsDFFN
    train.train = restricted


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("scene", choices=scenes.ALL_NAMES)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--components", type=int, default=64)
    ap.add_argument("--mode", choices=("channels", "denoise"), default="channels")
    args = ap.parse_args()
    install(args.components, args.mode)
    bench = scenes.load(args.scene)
    scene = bench.scene
    Y = scene.data[:, scene.valid].astype(np.float64)
    # the first convolution on the bands (as when this was measured), not on the image's rank
    params = params_for("fast", n_endmembers=bench.endmembers.shape[1], seed=args.seed, device="cpu",
                        input_components=10 ** 5)
    t0 = time.perf_counter()
    result = unmix_scene(scene, params)
    seconds = time.perf_counter() - t0
    s = scores(result.endmembers, result.abundances[:, scene.valid], bench, Y)
    print(json.dumps({"scene": args.scene, "seed": args.seed, "components": args.components, "mode": args.mode,
                      "seconds": round(seconds, 1), "epochs": result.record["epochs_run"],
                      "loss": round(result.loss, 5), "mean_sad_rad": round(s["mean_sad_rad"], 4),
                      "mean_rmse": round(s["mean_rmse"], 4)}))


if __name__ == "__main__":
    main()
