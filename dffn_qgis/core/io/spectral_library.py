"""Spectral libraries: reading ENVI libraries and resampling spectra to a sensor's bands.

A sensor band sees a spectrum through its spectral response, modelled here as a Gaussian of the
band's full width at half maximum (FWHM) around its centre wavelength. :func:`resample` integrates
a library spectrum against each band's response; where the library has gaps (for example the
water-vapour windows that field spectra leave out) it is interpolated linearly, and beyond its ends
it is held at its first or last value.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError

_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
_GRID_STEP_NM = 1.0          # the fine grid the responses are integrated on


@dataclass(frozen=True)
class SpectralLibrary:
    """Spectra (K, B) over ``wavelengths`` (B,) in nanometres, with a name and a class each."""

    wavelengths: np.ndarray
    spectra: np.ndarray
    names: Tuple[str, ...]
    classes: Tuple[str, ...]

    def __post_init__(self):
        if self.spectra.ndim != 2 or self.spectra.shape[1] != self.wavelengths.size:
            raise InputError(f"a library needs spectra (count, bands) over its wavelengths; got "
                             f"{self.spectra.shape} and {self.wavelengths.size} wavelengths")
        if not len(self.names) == len(self.classes) == self.spectra.shape[0]:
            raise InputError("a library needs one name and one class per spectrum")

    def of_class(self, label: str) -> np.ndarray:
        """Indices of the spectra whose class is ``label``."""
        return np.flatnonzero(np.asarray(self.classes) == label)


def _to_nm(wavelengths: np.ndarray, units: Optional[str]) -> np.ndarray:
    from .band_metadata import normalise_units
    unit = normalise_units(units)
    if unit == "um":
        return wavelengths * 1000.0
    if unit == "nm":
        return wavelengths
    # no unit given: reflectance spectrometry covers about 0.35-2.5 um, i.e. 350-2500 nm
    return wavelengths * 1000.0 if wavelengths.max() < 30.0 else wavelengths


def read_envi_library(path, classes: Optional[Dict[str, str]] = None) -> SpectralLibrary:
    """An ENVI spectral library (``.sli`` with its ``.hdr``, or the header's path).

    ``classes`` maps spectrum names to class labels (default: every spectrum's class is its name).
    """
    from spectral.io import envi
    path = Path(path)
    candidates = [path] if path.suffix.lower() == ".hdr" else [Path(str(path) + ".hdr"), path.with_suffix(".hdr")]
    header = next((c for c in candidates if c.exists()), None)
    if header is None:
        raise InputError(f"no ENVI header for the spectral library {path} (looked for "
                         f"{' and '.join(c.name for c in candidates)})")
    try:
        lib = envi.open(str(header), None if path.suffix.lower() == ".hdr" else str(path))
    except Exception as exc:  # spectral raises its own types for malformed files
        raise InputError(f"cannot read the spectral library {path}: {exc}") from exc
    centres = getattr(lib.bands, "centers", None)
    if not centres:
        raise InputError(f"the spectral library {path} lists no wavelengths")
    wl = _to_nm(np.asarray(centres, dtype=np.float64), getattr(lib.bands, "band_unit", None))
    spectra = np.asarray(lib.spectra, dtype=np.float64)
    names = tuple(lib.names or [f"spectrum {i + 1}" for i in range(spectra.shape[0])])
    labels = tuple((classes or {}).get(n, n) for n in names)
    return SpectralLibrary(wavelengths=wl, spectra=spectra, names=names, classes=labels)


def earthlib_folder() -> Optional[Path]:
    """The data folder of the installed ``earthlib`` package (MIT), or None when it is missing.

    Only its data files are used; the package itself is never imported (its own dependencies
    are not needed).
    """
    spec = find_spec("earthlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    return folder if (folder / "spectra.sli.hdr").exists() else None


def read_earthlib() -> SpectralLibrary:
    """earthlib's ~7,000 spectra (400-2450 nm), classed by its third level (``soil``, ``canopy``,
    ``road``, ``comp_shingle``, ``npv``, ``char``, ...)."""
    folder = earthlib_folder()
    if folder is None:
        raise InputError("the earthlib package is not installed (make setup installs it)")
    with open(folder / "spectra.csv", newline="") as f:
        classes = {row["NAME"]: row["LEVEL_3"] for row in csv.DictReader(f)}
    return read_envi_library(folder / "spectra.sli", classes)


def default_fwhm(centres: np.ndarray) -> np.ndarray:
    """Band widths when none are given: the spacing of neighbouring band centres."""
    c = np.asarray(centres, dtype=np.float64)
    if c.size < 2:
        return np.full(c.shape, 10.0)
    order = np.argsort(c)
    spacing = np.empty_like(c)
    spacing[order] = np.gradient(c[order])          # the mean distance to the two neighbours
    return np.maximum(spacing, 1e-3)


def resample(wavelengths: np.ndarray, spectra: np.ndarray, centres: Sequence[float],
             fwhm: Optional[Sequence[float]] = None) -> np.ndarray:
    """``spectra`` (K, B) over ``wavelengths`` (B,) seen by bands at ``centres`` (n,) with Gaussian
    responses of ``fwhm`` (n,; default: the band spacing), all in nanometres. Returns (K, n)."""
    wl = np.asarray(wavelengths, dtype=np.float64)
    S = np.atleast_2d(np.asarray(spectra, dtype=np.float64))
    c = np.asarray(centres, dtype=np.float64)
    w = default_fwhm(c) if fwhm is None else np.asarray(fwhm, dtype=np.float64)
    if S.shape[1] != wl.size or wl.size < 2:
        raise InputError(f"spectra {S.shape} do not match {wl.size} wavelengths")
    if w.shape != c.shape or np.any(w <= 0):
        raise InputError("each band needs one positive width")
    order = np.argsort(wl)
    wl, S = wl[order], S[:, order]
    sigma = w * _FWHM_TO_SIGMA
    lo, hi = float((c - 4 * sigma).min()), float((c + 4 * sigma).max())
    grid = np.arange(np.floor(lo), np.ceil(hi) + _GRID_STEP_NM, _GRID_STEP_NM)
    fine = np.stack([np.interp(grid, wl, s) for s in S])                   # (K, G): flat beyond the ends
    response = np.exp(-0.5 * ((grid[None, :] - c[:, None]) / sigma[:, None]) ** 2)   # (n, G)
    too_narrow = response.sum(axis=1) < 1e-9                               # narrower than the grid step
    response[too_narrow] = 0.0
    response[too_narrow, np.abs(grid[None, :] - c[too_narrow, None]).argmin(axis=1)] = 1.0
    response /= response.sum(axis=1, keepdims=True)
    return fine @ response.T
