"""One pixel of a run's input against the run's endmembers: what the spectra panel's map tool shows.

:func:`load_run` reads a run's record (``<stack>.json``) and its endmember spectra (the CSV, or
the ENVI library); :func:`pixel_spectrum` reads pixel (row, col) of the run's input as the run read
it (the bands it used, each band's GDAL scale and offset, divided by the run's divisor, so in the
endmembers' units) and fits it with the run's own rule: the refined abundances' non-negative least
squares scaled to sum to one (DFFN's default, what the abundance rasters hold), FCLS, NNLS or plain
least squares for a run of ``apply``, or the abundance raster's values for a run that kept the
network's abundances. The reconstruction is the endmembers times the fit's coefficients (the pixel's
own brightness); :func:`~dffn_qgis.core.io.scaling.in_file_values` turns both back into the
input's values for display.

No QGIS here; the map tool (``gui/pixel_tool.py``) turns a map click into (row, col) with
:meth:`RasterGrid.pixel_at`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError
from ..io.scaling import in_file_values
from ..method.abundance_lsq import fcls, nnls

# GDAL's geotransform of a raster without one; QGIS draws such a raster with y growing upwards.
_NO_GEOTRANSFORM = (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class RunSpectra:
    """What a run found, as the spectra panel needs it."""

    record_path: str
    input_path: str
    bands: Tuple[int, ...]              # 1-based band numbers the run used, in its order
    endmembers: np.ndarray              # (bands, P) in the engine's units, as the CSV holds them
    names: Tuple[str, ...]
    wavelengths: Optional[np.ndarray]   # nanometres, or None (the x axis is then the band number)
    scaling: dict                       # the record's: GDAL scale/offset and the divisor
    rule: str                           # "nnls" (refined), "fcls", "ls" or "network"
    stack_path: Optional[str]           # the abundance stack (read for rule "network")
    sum_weight: float = 0.0             # of the refined fit's soft sum term (the record's pixel_brightness)

    @property
    def n_endmembers(self) -> int:
        return int(self.endmembers.shape[1])

    def in_file_values(self, values: np.ndarray) -> Tuple[np.ndarray, str]:
        """``values`` (engine units) as the input file holds them, and the y-axis label."""
        return in_file_values(values, self.scaling)


@dataclass(frozen=True)
class PixelFit:
    """Pixel (row, col) of a run's input, its fractions and the reconstruction they give."""

    row: int
    col: int
    spectrum: np.ndarray        # (bands,) engine units
    fractions: np.ndarray       # (P,)
    reconstruction: np.ndarray  # (bands,) engine units
    angle_rad: float            # spectral angle between the spectrum and its reconstruction
    rule: str

    def describe(self, names: Sequence[str]) -> str:
        """``pixel (row 5, col 7): vegetation 0.62, soil 0.30; angle 1.2°`` (0-based row and column)."""
        parts = ", ".join(f"{n} {f:.2f}" for n, f in zip(names, self.fractions))
        return f"pixel (row {self.row}, col {self.col}): {parts}; angle {np.degrees(self.angle_rad):.1f}°"


def load_run(record_path) -> RunSpectra:
    """A run from its record (``<stack>.json``): input, bands, scaling, rule and endmember spectra.

    Raises :class:`InputError` when the record or the spectra cannot be read (the run wrote no
    endmember file, or the files were moved)."""
    from ..run.apply import read_spectra

    record_path = os.fspath(record_path)
    try:
        with open(record_path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the run record {record_path}: {exc}") from None
    outputs = record.get("outputs") or {}
    spectra_path = next((p for p in (outputs.get("endmembers_csv"), outputs.get("endmembers_sli"))
                         if p and os.path.exists(p)), None)
    if spectra_path is None:
        raise InputError(f"the run of {record_path} wrote no endmember spectra (CSV or library) that can be found")
    spectra = read_spectra(spectra_path)
    bands = tuple(int(b) for b in record.get("bands_used") or range(1, spectra.values.shape[0] + 1))
    if len(bands) != spectra.values.shape[0]:
        raise InputError(f"{spectra_path} has {spectra.values.shape[0]} bands but the run used {len(bands)}")
    return RunSpectra(record_path=record_path, input_path=str(record.get("input") or ""), bands=bands,
                      endmembers=np.asarray(spectra.values, dtype=np.float64), names=tuple(spectra.names),
                      wavelengths=spectra.wavelengths, scaling=dict(record.get("scaling") or {}),
                      rule=_rule(record), stack_path=outputs.get("stack"),
                      sum_weight=float((record.get("pixel_brightness") or {}).get("sum_weight") or 0.0))


def _rule(record: dict) -> str:
    """How the run's abundances were computed from its endmembers."""
    if record.get("job") == "apply":
        return str(record.get("solver") or "fcls")
    abundances = (record.get("params") or {}).get("abundances", "refined")
    return "network" if abundances == "network" else "nnls"


@dataclass(frozen=True)
class RasterGrid:
    """Where a raster's pixels are: its geotransform, CRS (WKT, may be empty) and size."""

    geotransform: Tuple[float, ...]
    crs_wkt: str
    width: int
    height: int

    def pixel_at(self, x: float, y: float) -> Optional[Tuple[int, int]]:
        """(row, col) of the pixel holding map point (x, y) in the raster's CRS; None outside."""
        from osgeo import gdal

        inverse = gdal.InvGeoTransform(list(self.geotransform))
        if inverse is None:
            return None
        if len(inverse) == 2 and not isinstance(inverse[0], float):   # older bindings: (ok, transform)
            ok, inverse = inverse
            if not ok:
                return None
        col = inverse[0] + inverse[1] * x + inverse[2] * y
        row = inverse[3] + inverse[4] * x + inverse[5] * y
        if not (0 <= col < self.width and 0 <= row < self.height):
            return None
        return int(np.floor(row)), int(np.floor(col))


def raster_grid(path) -> RasterGrid:
    """The grid of the raster at ``path`` (as QGIS places it: a raster without a geotransform has
    y growing upwards from 0)."""
    from ..io.gdal_open import open_raster

    path = _gdal_path(path)
    ds = open_raster(path)
    try:
        gt = ds.GetGeoTransform(can_return_null=True)
        gt = tuple(float(v) for v in gt) if gt is not None else _NO_GEOTRANSFORM
        if gt == _NO_GEOTRANSFORM:
            gt = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
        return RasterGrid(gt, ds.GetProjection() or "", ds.RasterXSize, ds.RasterYSize)
    finally:
        ds = None  # noqa: F841


def _gdal_path(path) -> str:
    path = os.fspath(path)
    if not path:
        raise InputError("the run record does not name its input raster")
    if path.lower().endswith(".mat"):
        raise InputError(f"{path} is a MATLAB file: pixels can be picked on rasters GDAL opens")
    if not os.path.exists(path):
        raise InputError(f"the run's input {path} is not found (moved or deleted?)")
    return path


def read_pixel(path, bands: Sequence[int], row: int, col: int, scaling: Optional[dict] = None) -> np.ndarray:
    """Pixel (row, col) of ``path`` over ``bands`` (1-based) with each band's GDAL scale and offset,
    divided by ``scaling``'s divisor: the values the run worked on.

    Raises :class:`InputError` outside the raster and on a pixel that is nodata, NaN or masked in
    one of the bands (the run left it out)."""
    from osgeo import gdal

    from ..io.gdal_open import open_raster
    from ..io.raster_io import _band_scale_offset, read_band_window

    path = _gdal_path(path)
    ds = open_raster(path)
    try:
        if not (0 <= row < ds.RasterYSize and 0 <= col < ds.RasterXSize):
            raise InputError(f"pixel (row {row}, col {col}) is outside the raster "
                             f"({ds.RasterYSize} rows, {ds.RasterXSize} columns)")
        values = np.empty(len(bands), dtype=np.float64)
        for i, number in enumerate(bands):
            if not 1 <= number <= ds.RasterCount:
                raise InputError(f"{path} has no band {number}: is it still the run's input?")
            band = ds.GetRasterBand(int(number))
            scale, offset = _band_scale_offset(band)
            value, hits, bad = read_band_window(band, path, int(number), scale, offset, band.GetNoDataValue(),
                                                col, row, 1, 1)
            if hits.any() or bad.any():
                raise InputError(f"pixel (row {row}, col {col}) is nodata in band {number}: the run left it out")
            values[i] = value[0, 0]
        band = ds.GetRasterBand(int(bands[0]))
        if band.GetMaskFlags() & gdal.GMF_PER_DATASET and not band.GetMaskFlags() & gdal.GMF_ALL_VALID:
            mask = band.GetMaskBand().ReadAsArray(col, row, 1, 1)
            if mask is not None and not mask[0, 0] > 0:
                raise InputError(f"pixel (row {row}, col {col}) is masked: the run left it out")
    finally:
        ds = None  # noqa: F841
    divisor = float((scaling or {}).get("divisor") or 1.0)
    return values / divisor


def fit_pixel(y: np.ndarray, E: np.ndarray, rule: str = "nnls", fractions: Optional[np.ndarray] = None,
              sum_weight: float = 0.0) -> Tuple[np.ndarray, np.ndarray, float]:
    """Fractions (P,), reconstruction (bands,) and spectral angle of the pixel ``y`` on ``E``.

    ``rule``: ``nnls`` (coefficients >= 0, fractions = coefficients / their sum: DFFN's refined
    abundances), ``fcls`` (>= 0, sum to one), ``ls`` (unconstrained coefficients, as they are) or
    ``network`` (``fractions`` given, read from the abundance raster; the reconstruction is scaled to
    the pixel's brightness by least squares). ``sum_weight``: of the ``nnls`` rule's soft sum-to-one
    term, as the run chose it (:mod:`dffn_qgis.core.method.brightness`)."""
    y = np.asarray(y, dtype=np.float64)
    E = np.asarray(E, dtype=np.float64)
    if rule == "nnls":
        coefficients = nnls(y[:, None], E, sum_weight=sum_weight)[:, 0]
        total = coefficients.sum()
        fractions = coefficients / total if total > 0 else np.full(E.shape[1], 1.0 / E.shape[1])
    elif rule == "fcls":
        coefficients = fractions = fcls(y[:, None], E)[:, 0]
    elif rule == "ls":
        coefficients = fractions = np.linalg.lstsq(E, y, rcond=None)[0]
    elif rule == "network":
        if fractions is None:
            raise InputError("the network's fractions are read from the abundance raster, which is missing")
        fractions = np.asarray(fractions, dtype=np.float64)
        r = E @ fractions
        brightness = max(float(y @ r) / max(float(r @ r), 1e-300), 0.0)
        coefficients = fractions * brightness
    else:
        raise InputError(f"unknown abundance rule {rule!r}")
    reconstruction = E @ coefficients
    norm = np.linalg.norm(y) * np.linalg.norm(reconstruction)
    angle = float(np.arccos(np.clip(y @ reconstruction / norm, -1.0, 1.0))) if norm > 0 else float("nan")
    return np.asarray(fractions, dtype=np.float64), reconstruction, angle


def _stack_fractions(run: RunSpectra, row: int, col: int) -> Optional[np.ndarray]:
    """The abundance stack's values at (row, col), or None without a readable stack."""
    from ..io.gdal_open import open_raster

    if not run.stack_path or not os.path.exists(run.stack_path):
        return None
    ds = open_raster(run.stack_path)
    try:
        values = ds.ReadAsArray(col, row, 1, 1)
    finally:
        ds = None  # noqa: F841
    if values is None:
        return None
    values = np.asarray(values, dtype=np.float64).reshape(-1)[:run.n_endmembers]
    return values if np.all(np.isfinite(values)) and np.all(values > -9000) else None


def pixel_spectrum(run: RunSpectra, row: int, col: int) -> PixelFit:
    """Pixel (row, col) of the run's input, fitted on the run's endmembers by the run's rule."""
    y = read_pixel(run.input_path, run.bands, row, col, run.scaling)
    rule, given = run.rule, None
    if rule == "network":
        given = _stack_fractions(run, row, col)
        if given is None:
            rule = "nnls"       # the stack is gone: the refined fit is the nearest thing
    fractions, reconstruction, angle = fit_pixel(y, run.endmembers, rule, given, run.sum_weight)
    return PixelFit(row=row, col=col, spectrum=y, fractions=fractions, reconstruction=reconstruction,
                    angle_rad=angle, rule=rule)
