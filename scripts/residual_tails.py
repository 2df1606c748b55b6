"""The judge's two measures on cached runs: would a material left out have been seen?

    python scripts/residual_tails.py [--scenes samson,G10-enmap-5] [--seeds 1,2,3] [--denoised]
    python scripts/residual_tails.py --run .bench/mosaic/out/scene1000-base-1 --image .bench/scale/scene1000.tif

For every cached run of the default preset on the development scenes (``.bench/scenes-runs/``, written
by ``make bench-scenes``), the run's judge (``method/pixel_simplex.py``) is repeated on its endmembers
as saved: the image's extreme pixels (VCA's or N-FINDR's, whichever fits better, the run's seed), the
mean reconstruction angle of both sets and the percentiles of their residual norms ``||y - E c||``
(non-negative fits), as the network's over the pixels'. The true endmembers are measured the same way:
how far endmembers that are right can lie from the pixels on the same scene. With ``--run`` and
``--image``, the same for one output folder of ``python -m dffn_qgis unmix`` on the scalable path,
judged on its training windows as the run was. The endmembers saved are brightness-scaled; the fits
absorb any scale, so the measures are the run's own.

Each cached run's line also gives its final training loss and the smallest *vertex margin* of its
endmembers over that of the pixels: an endmember's margin is its angle to its non-negative fit on the
other endmembers (near zero for a duplicate or for an endmember inside the others' cone). With
``--denoised`` every measure is taken on the image projected on its signal subspace (what the default's
training sees, ``method/signal_subspace.py``), the extreme pixels picked there: the noise floor
is then far lower than in the pixels as read. docs/BENCHMARKS.md ("2026-12-08, morning") has what
these measures tell apart and what they do not.
"""
import argparse
import csv
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402

from bench_scenes import RUNS, method_key  # noqa: E402
from benchmarks import scenes  # noqa: E402
from dffn_qgis.core.eval.metrics import matched_sad  # noqa: E402
from dffn_qgis.core.method.abundance_lsq import fit_angles, nnls  # noqa: E402
from dffn_qgis.core.method.pixel_simplex import TAIL, TAIL_RATIO, ImagePixels, fit_residuals  # noqa: E402
from dffn_qgis.core.method.signal_subspace import signal_subspace  # noqa: E402
from dffn_qgis.core.run.config import DEFAULT_PRESET  # noqa: E402

PERCENTILES = (50, 90, TAIL, 99)


def tails(reference: ImagePixels, E: np.ndarray) -> np.ndarray:
    return np.percentile(fit_residuals(reference.sample, E)[1], PERCENTILES)


def vertex_margins(E: np.ndarray) -> np.ndarray:
    """Per endmember (column of ``E``, L x P): the angle (rad) to its non-negative fit on the others."""
    E = np.asarray(E, dtype=np.float64)
    margins = []
    for i in range(E.shape[1]):
        others = np.delete(E, i, axis=1)
        margins.append(fit_angles(E[:, [i]], others @ nnls(E[:, [i]], others))[0])
    return np.array(margins)


def line(label: str, reference: ImagePixels, E: np.ndarray, truth=None) -> str:
    pixels = tails(reference, reference.pixels)
    angles, residuals = fit_residuals(reference.sample, E)
    text = (f"{label}: pixels by {reference.picker}; mean angle {angles.mean():.4f} against the pixels' "
            f"{reference.angle:.4f} rad; residual percentiles {'/'.join(str(p) for p in PERCENTILES)} as the "
            f"pixels' {' / '.join(f'{v:.2f}' for v in np.percentile(residuals, PERCENTILES) / pixels)}")
    if truth is not None:
        text += f"; the truth's {' / '.join(f'{v:.2f}' for v in tails(reference, truth) / pixels)}"
    return text


def cached_runs(names, seeds, denoised: bool = False) -> None:
    key = method_key("dffn", DEFAULT_PRESET, {})
    for name in names:
        bench = None
        for seed in seeds:
            path = RUNS / f"{name}--{key}--seed{seed}.json"
            if not path.exists() or not path.with_suffix(".npz").exists():
                continue
            if bench is None:
                bench = scenes.load(name)
                Y = bench.scene.data[:, bench.scene.valid].astype(np.float64)
                subspace = signal_subspace(Y, bench.endmembers.shape[1]) if denoised else None
                Y = Y if subspace is None else subspace.project(Y)
                if denoised:
                    print(f"{name}: signal subspace of "
                          f"{'every band' if subspace is None else f'{subspace.components} components'} "
                          f"of {Y.shape[0]}", flush=True)
            rec = json.loads(path.read_text())
            E = np.load(path.with_suffix(".npz"))["endmembers"].astype(np.float64)
            reference = ImagePixels.of(Y, E.shape[1], seed)
            worst = max(rec["sad_rad"])
            margin = vertex_margins(E).min() / vertex_margins(reference.pixels).min()
            pixel_sad = np.nanmean(matched_sad(np.maximum(reference.pixels, 0.0), bench.endmembers))
            print(line(f"{name} seed {seed} (mean SAD {rec['mean_sad_rad']:.4f}, worst material {worst:.3f} rad, "
                       f"final loss {rec['final_loss']:.4f})", reference, E, bench.endmembers)
                  + f"; smallest vertex margin {margin:.2f} times the pixels'; the pixels themselves: mean SAD "
                    f"{pixel_sad:.4f} rad from the truth", flush=True)


def read_csv(path: Path):
    rows = list(csv.reader(path.open()))
    values = np.array([[float(v) for v in row] for row in rows[1:]])
    return values[:, 0], values[:, 1:]


def one_output(folder: Path, image: Path) -> None:
    from osgeo import gdal

    record = json.loads(next(folder.glob("*_abundances.json")).read_text())
    wavelengths, E = read_csv(next(folder.glob("*_endmembers.csv")))
    ds = gdal.Open(str(image))
    band_wl = np.array([float(re.search(r"\(([\d.]+)", ds.GetRasterBand(i + 1).GetDescription()).group(1))
                        for i in range(ds.RasterCount)])
    bands = [int(np.argmin(np.abs(band_wl - w))) for w in wavelengths]
    pixels = []
    for r0, c0, rows, cols in record["scalable"]["training_windows"]:
        block = ds.ReadAsArray(c0, r0, cols, rows).astype(np.float64)[bands]
        nodata = ds.GetRasterBand(1).GetNoDataValue()
        block = block.reshape(len(bands), -1)
        pixels.append(block if nodata is None else block[:, (block != nodata).all(axis=0)])
    Y = np.concatenate(pixels, axis=1)
    reference = ImagePixels.of(Y, E.shape[1], record["seed"])
    print(line(f"{folder.name} (training windows)", reference, E))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenes", default="", help="comma-separated scene names (default: all)")
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--run", default="", help="an output folder of the scalable path (with --image)")
    ap.add_argument("--image", default="", help="the raster that run unmixed")
    ap.add_argument("--denoised", action="store_true",
                    help="measure on the image projected on its signal subspace (what the training sees)")
    args = ap.parse_args()
    print(f"the judge calls a material left out above {TAIL_RATIO:g} times the pixels' {TAIL}th percentile")
    if args.run:
        one_output(Path(args.run), Path(args.image))
        return
    names = [s for s in args.scenes.split(",") if s] or scenes.ALL_NAMES
    cached_runs([n for n in names if not scenes.available(n)], [int(s) for s in args.seeds.split(",") if s],
                args.denoised)


if __name__ == "__main__":
    main()
