"""Epoch times through one training of a development scene, as the default run prepares it.

    python scripts/epoch_profile.py SCENE [--epochs 300] [--seed 1] [--windows 6]
                                    [--plain-sigmoid] [--bands]

The scene's enhanced image and training target are made exactly as ``unmix`` makes them (the default
preset: fusion, denoising), then trained for ``--epochs`` epochs without restarts or the patience
stop; printed: the median milliseconds per epoch in ``--windows`` equal spans of the training, and
the lowest loss with every digit (two settings that compute the same thing should print the same
loss). ``--plain-sigmoid``: torch's sigmoid in the endmember module (before 2026-12-07, with
subnormal gradients); ``--bands``: the first convolution on the bands instead of the image's span
(``input_components`` at least the band count). Torch runs 2 threads. Nothing here is used by the
plugin; docs/BENCHMARKS.md ("2026-12-07, night") has what it measured.
"""
import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks import scenes  # noqa: E402
from dffn_qgis.core.method import model, train  # noqa: E402
from dffn_qgis.core.run import driver  # noqa: E402
from dffn_qgis.core.run.config import params_for  # noqa: E402
from dffn_qgis.core.run.pipeline import unmix_scene  # noqa: E402
from dffn_qgis.core.run.progress import Monitor  # noqa: E402


class _Prepared(Exception):
    """Raised by the patched training to stop the run once its inputs are known."""


def training_inputs(scene_name: str, seed: int) -> tuple:
    """(enhanced image, target, valid index, parameters) of the default run on the scene."""
    bench = scenes.load(scene_name)
    params = params_for("fast", n_endmembers=bench.endmembers.shape[1], seed=seed, device="cpu")
    got = {}

    def capture(image, Y, valid_index, params, *args, **kwargs):
        got.update(image=image, Y=Y, valid_index=valid_index, params=params)
        raise _Prepared()

    real = driver.train_with_cpu_fallback
    driver.train_with_cpu_fallback = capture
    try:
        unmix_scene(bench.scene, params)
    except _Prepared:
        pass
    finally:
        driver.train_with_cpu_fallback = real
    return got["image"], got["Y"], got["valid_index"], got["params"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scene", choices=scenes.ALL_NAMES)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--windows", type=int, default=6)
    ap.add_argument("--plain-sigmoid", action="store_true")
    ap.add_argument("--bands", action="store_true")
    args = ap.parse_args()
    image, Y, valid_index, params = training_inputs(args.scene, args.seed)
    torch.set_num_threads(2)
    if args.plain_sigmoid:
        model._Sigmoid = torch.nn.Sigmoid
    overrides = {"epochs": args.epochs, "patience": 0, "restarts": 0}
    if args.bands:
        overrides["input_components"] = 10 ** 5
    params = replace(params, **overrides)
    stamps = []
    outcome = train.train(image, Y, valid_index, params.validate(),
                          Monitor(progress=lambda fraction, message: stamps.append(time.perf_counter())))
    per_epoch = np.diff(stamps[:args.epochs]) * 1000      # the time of epochs 2 to N (then 'done')
    spans = np.array_split(per_epoch, args.windows)
    start = 1
    for span in spans:
        print(f"epochs {start + 1}-{start + len(span)}: {np.median(span):.0f} ms", flush=True)
        start += len(span)
    print(f"{args.scene}: {outcome.input_components}; lowest loss {outcome.loss!r}")


if __name__ == "__main__":
    main()
