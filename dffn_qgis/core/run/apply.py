"""Unmix a raster with given spectra: a run's endmembers or a library, applied elsewhere.

The spectra (a run's CSV or ENVI library, or any CSV / ENVI library with a wavelength column) are
matched to the raster's bands: taken as they are when both have the same bands, resampled with a
Gaussian response per band when both know their wavelengths and the grids differ, refused otherwise.
One common factor then brings them to the raster's brightness (the pixels' mean non-negative
coefficient sum becomes 1; their relative brightness is kept), and every pixel is solved tile by
tile: FCLS (fractions: non-negative, summing to one; the default), NNLS (non-negative, then scaled to
sum to one, as DFFN's refined abundances) or unconstrained least squares (the raw coefficients).
The outputs are those of ``unmix`` (stack, per-endmember rasters named after the spectra, spectra,
report, error map, record), written all or nothing.
"""
from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError
from ..io.outputs import OutputPlan, write_outputs
from ..io.raster_source import RasterSource, windows
from ..io.scene import Scene
from ..method.abundance_lsq import fcls, fit_angles, nnls
from .parameters import SOLVERS
from .progress import Monitor, as_monitor
from .result import UnmixResult, sum_to_one

TILE = 256                      # side of the tiles solved together
FIT_PIXELS = 20_000             # pixels the brightness factor is fitted on


@dataclass(frozen=True)
class Spectra:
    """Spectra (bands, K) with their names; ``wavelengths`` in nanometres, or None for band numbers."""

    values: np.ndarray
    names: Tuple[str, ...]
    wavelengths: Optional[np.ndarray]


def read_spectra(path) -> Spectra:
    """A CSV (first column ``wavelength`` or ``band``, then one column per spectrum, as ``unmix``
    writes) or an ENVI spectral library (``.sli`` / ``.hdr``)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"spectra file not found: {path}")
    if path.suffix.lower() in (".sli", ".hdr"):
        from ..io.spectral_library import read_envi_library
        library = read_envi_library(path)
        return Spectra(library.spectra.T.copy(), tuple(library.names), library.wavelengths)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the spectra file {path}: {exc}") from None
    if len(rows) < 3 or len(rows[0]) < 2:
        raise InputError(f"{path}: a spectra CSV needs a header row, a wavelength or band column and at "
                         f"least one spectrum column over two or more bands")
    header = [h.strip() for h in rows[0]]
    axis = header[0].lower()
    if not axis.startswith(("wavelength", "band")):
        raise InputError(f"{path}: the first column must be 'wavelength' or 'band' (got {header[0]!r})")
    try:
        table = np.array([[float(c) for c in r] for r in rows[1:]], dtype=np.float64)
    except ValueError:
        raise InputError(f"{path}: every value below the header must be a number") from None
    if table.shape[1] != len(header):
        raise InputError(f"{path}: rows must have as many columns as the header ({len(header)})")
    wavelengths = None
    if axis.startswith("wavelength"):
        from ..io.spectral_library import _to_nm
        wavelengths = _to_nm(table[:, 0], "um" if "um" in axis or "µm" in axis else ("nm" if "nm" in axis else None))
    return Spectra(table[:, 1:], tuple(header[1:]), wavelengths)


def match_bands(spectra: Spectra, scene: Scene) -> Tuple[np.ndarray, str]:
    """The spectra on the scene's bands (L, K), and how they were matched (a log line)."""
    L = scene.n_bands
    image_wl = scene.wavelengths_nm
    if spectra.wavelengths is not None and image_wl is not None:
        same = spectra.values.shape[0] == L and np.allclose(spectra.wavelengths, image_wl, atol=0.5)
        if same:
            return spectra.values, "spectra on the image's bands"
        lo, hi = float(spectra.wavelengths.min()), float(spectra.wavelengths.max())
        outside = (image_wl < lo - 5.0) | (image_wl > hi + 5.0)
        if outside.any():
            raise InputError(f"the spectra cover {lo:.0f}-{hi:.0f} nm but {int(outside.sum())} of the image's "
                             f"bands lie outside ({image_wl.min():.0f}-{image_wl.max():.0f} nm); choose bands "
                             f"inside that range")
        from ..io.spectral_library import resample
        return (resample(spectra.wavelengths, spectra.values.T, image_wl).T,
                f"spectra resampled from {spectra.values.shape[0]} to the image's {L} bands by wavelength")
    if spectra.values.shape[0] == L:
        return spectra.values, "spectra taken band for band (no wavelengths to match them by)"
    raise InputError(f"the spectra have {spectra.values.shape[0]} bands and the image {L}, and wavelengths are "
                     f"missing on {'both sides' if spectra.wavelengths is None and image_wl is None else 'one side'}: "
                     f"they cannot be matched")


def solve(Y: np.ndarray, E: np.ndarray, solver: str) -> np.ndarray:
    """Abundances (K, n) of the pixels ``Y`` (L, n) on ``E`` (L, K)."""
    if solver == "fcls":
        return fcls(Y, E)
    if solver == "nnls":
        return sum_to_one(nnls(Y, E))[0]
    if solver == "ls":
        return np.linalg.lstsq(E, Y, rcond=None)[0]
    raise InputError(f"solver must be one of {', '.join(SOLVERS)} (got {solver!r})")


def _sample(source, limit: int) -> np.ndarray:
    from ..method.endmember_count import sample_pixels
    return sample_pixels(source, limit)[0]


def apply_spectra(input_path, spectra_path, plan: OutputPlan, solver: str = "fcls",
                  bands: Optional[Sequence[int]] = None, monitor: Optional[Monitor] = None):
    """Unmix ``input_path`` with the spectra in ``spectra_path`` and write ``plan``'s outputs."""
    from .pipeline import RunSummary

    monitor = as_monitor(monitor)
    if solver not in SOLVERS:
        raise InputError(f"solver must be one of {', '.join(SOLVERS)} (got {solver!r})")
    t0 = time.perf_counter()
    spectra = read_spectra(spectra_path)
    source = RasterSource(str(input_path), bands=list(bands) if bands else None, monitor=monitor.sub(0.0, 0.1))
    try:
        scene = source.scene
        for note in scene.notes:
            monitor.info(note)
        E, how = match_bands(spectra, scene)
        monitor.info(how)
        K = E.shape[1]
        if scene.n_bands < K:
            raise InputError(f"{K} spectra need at least {K} bands; the image has {scene.n_bands}")
        Ys = _sample(source, FIT_PIXELS)
        if Ys.shape[1] == 0:
            raise InputError(f"{input_path}: no valid pixel to unmix")
        factor = float(np.mean(nnls(Ys, E).sum(axis=0)))
        if not factor > 0:
            raise InputError("no pixel is a positive mixture of these spectra: are they of this kind of image?")
        E = E * factor
        monitor.info(f"spectra scaled by {factor:.4g} to the image's brightness; solver {solver}")
        abundances = np.full((K, source.height, source.width), np.nan, dtype=np.float32)
        error = np.full((source.height, source.width), np.nan, dtype=np.float32)
        boxes = list(windows(source.height, source.width, TILE))
        for k, (r0, c0, rows, cols) in enumerate(boxes):
            monitor.check()
            data, ok = source.read(r0, c0, rows, cols)
            if ok.any():
                Y = data[:, ok].astype(np.float64)
                A = solve(Y, E, solver)
                block = np.full((K, rows, cols), np.nan, dtype=np.float32)
                block[:, ok] = A
                abundances[:, r0:r0 + rows, c0:c0 + cols] = block
                err = np.full((rows, cols), np.nan, dtype=np.float32)
                err[ok] = fit_angles(Y, E @ A)
                error[r0:r0 + rows, c0:c0 + cols] = err
            monitor.progress(0.1 + 0.8 * (k + 1) / len(boxes), f"solving tile {k + 1} of {len(boxes)}")
        t_solve = time.perf_counter() - t0
        record = {"input": str(input_path), "job": "apply", "spectra": str(spectra_path), "solver": solver,
                  "band_matching": how, "brightness_factor": factor, "names": list(spectra.names),
                  "mean_reconstruction_angle_rad": float(np.nanmean(error)), "scaling": scene.scaling,
                  "bands_used": list(scene.band_indices), "notes": list(scene.notes),
                  "timings": {"solve_s": round(t_solve, 3)}}
        result = UnmixResult(abundances=abundances, endmembers=E.astype(np.float32), error=error,
                             loss=record["mean_reconstruction_angle_rad"], record=record,
                             names=list(spectra.names))
        paths = write_outputs(plan, scene, result, monitor.sub(0.9, 1.0))
    finally:
        source.close()
    monitor.progress(1.0, "done")
    return RunSummary(scene=scene, result=result, paths=paths)

