"""Synthetic hyperspectral scenes with known truth, for the demo, the tests and the benchmarks.

Endmember spectra are analytic caricatures of common materials (no spectral library is
downloaded), evaluated at any wavelength between 400 and 2500 nm. Abundances are smooth
Gaussian random fields mapped through a softmax so they sum to one; with ``pure_pixels`` each
material also gets a region where it is (almost) alone, without it every abundance is capped
(0.8 by default) so every pixel is a mixture. Gaussian noise is added at a given SNR. Everything
is deterministic for a given seed.

Command line::

    python -m dffn_qgis.core.eval.synthetic OUT.tif --size 64 64 --bands 120 --endmembers 4 --seed 0
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError

# ---------------------------------------------------------------------------------------------
# endmember spectra (reflectance in [0, 1], wavelength in nanometres)


def _gauss(wl: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((wl - centre) / width) ** 2)


def _sigmoid(wl: np.ndarray, centre: float, width: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(wl - centre) / width))


def _absorb(wl: np.ndarray, features: Sequence[Tuple[float, float, float]]) -> np.ndarray:
    """Multiplicative absorption features given as (centre nm, width nm, depth 0..1)."""
    factor = np.ones_like(wl)
    for centre, width, depth in features:
        factor *= 1.0 - depth * _gauss(wl, centre, width)
    return factor


_LEAF_WATER = ((970, 25, 0.08), (1200, 40, 0.15), (1450, 60, 0.55), (1940, 80, 0.70))


def vegetation(wl: np.ndarray) -> np.ndarray:
    """Green vegetation: green peak, chlorophyll dip near 680 nm, red edge, leaf water bands."""
    visible = 0.04 + 0.055 * _gauss(wl, 550, 35) - 0.015 * _gauss(wl, 675, 25)
    nir = 0.48 - 0.00004 * (wl - 800)
    swir_drop = (1 - 0.30 * _sigmoid(wl, 1400, 60)) * (1 - 0.35 * _sigmoid(wl, 2000, 90))
    curve = visible + (nir - visible) * _sigmoid(wl, 715, 14)
    return curve * swir_drop * _absorb(wl, _LEAF_WATER)


def soil(wl: np.ndarray) -> np.ndarray:
    """Bare soil: smooth rise, weak hydroxyl bands, clay feature near 2200 nm."""
    curve = 0.04 + 0.40 * (1 - np.exp(-(wl - 380) / 500))
    return curve * _absorb(wl, ((1410, 40, 0.08), (1910, 50, 0.12), (2205, 25, 0.14)))


def water(wl: np.ndarray) -> np.ndarray:
    """Open water: a little blue-green, almost nothing beyond the red."""
    return 0.004 + 0.065 * np.exp(-np.clip(wl - 420, 0, None) / 110) * (1 - 0.3 * _sigmoid(400 - wl, 0, 20))


def concrete(wl: np.ndarray) -> np.ndarray:
    """Concrete / light roof: bright and nearly flat, carbonate feature near 2330 nm."""
    curve = 0.26 + 0.08 * (1 - np.exp(-(wl - 380) / 250)) - 0.03 * _sigmoid(wl, 2000, 150)
    return curve * _absorb(wl, ((1420, 40, 0.05), (1920, 50, 0.07), (2335, 30, 0.10)))


def dry_vegetation(wl: np.ndarray) -> np.ndarray:
    """Dry grass / litter: soft rise without red edge, cellulose (2100) and lignin (1730)."""
    curve = 0.06 + 0.34 * _sigmoid(wl, 700, 110) - 0.12 * _sigmoid(wl, 1900, 120)
    return curve * _absorb(wl, ((1200, 40, 0.06), (1450, 60, 0.22), (1730, 30, 0.10),
                                (1940, 70, 0.30), (2100, 50, 0.30), (2300, 40, 0.12)))


def asphalt(wl: np.ndarray) -> np.ndarray:
    """Asphalt / dark metal: dark and flat, slight rise, hydrocarbon feature near 2300 nm."""
    curve = 0.035 + 0.06 * ((wl - 400) / 2100) ** 1.6
    return curve * _absorb(wl, ((1730, 25, 0.05), (2310, 30, 0.10)))


def red_roof(wl: np.ndarray) -> np.ndarray:
    """Red clay roof tiles: dark blue-green, sharp rise near 580 nm, broad iron band near 900 nm."""
    curve = 0.06 + 0.36 * _sigmoid(wl, 585, 18) - 0.12 * _sigmoid(wl, 1700, 300)
    return curve * _absorb(wl, ((900, 110, 0.18), (1420, 40, 0.04), (1920, 50, 0.06)))


MATERIALS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "vegetation": vegetation,
    "soil": soil,
    "water": water,
    "concrete": concrete,
    "dry vegetation": dry_vegetation,
    "asphalt": asphalt,
    "red roof": red_roof,
}


def endmember_spectra(wavelengths, names: Optional[Sequence[str]] = None) -> np.ndarray:
    """Spectra (L, P) of the named materials (default: all) at ``wavelengths`` in nm, in [0, 1]."""
    wl = np.asarray(wavelengths, dtype=np.float64)
    names = list(MATERIALS) if names is None else list(names)
    unknown = [n for n in names if n not in MATERIALS]
    if unknown:
        raise InputError(f"unknown material(s) {unknown}; choose from {list(MATERIALS)}")
    spectra = np.stack([MATERIALS[n](wl) for n in names], axis=1)
    return np.clip(spectra, 0.002, 0.95)


# ---------------------------------------------------------------------------------------------
# abundances


def gaussian_random_field(height: int, width: int, correlation: float,
                          rng: np.random.Generator) -> np.ndarray:
    """A smooth zero-mean, unit-variance random field: white noise low-passed through the FFT."""
    noise = rng.standard_normal((height, width))
    ky = np.fft.fftfreq(height)[:, None]
    kx = np.fft.rfftfreq(width)[None, :]
    kernel = np.exp(-2.0 * (math.pi * correlation) ** 2 * (kx ** 2 + ky ** 2))
    field = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=(height, width))
    std = field.std()
    return (field - field.mean()) / (std if std > 0 else 1.0)


def _softmax(fields: np.ndarray) -> np.ndarray:
    shifted = fields - fields.max(axis=0, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=0, keepdims=True)


def _blob_radius(height: int, width: int) -> float:
    return max(1.5, min(height, width) / 9.0)


def _blob_centres(height: int, width: int, n: int,
                  rng: np.random.Generator) -> List[Tuple[float, float]]:
    """Well-separated random (row, col) places, one per material (the farthest of 50 tries)."""
    centres: List[Tuple[float, float]] = []
    for _ in range(n):
        best, best_gap = None, -1.0
        for _ in range(50):                       # keep the farthest of a few random tries
            r, c = rng.uniform(0, height - 1), rng.uniform(0, width - 1)
            gap = min((math.hypot(r - r0, c - c0) for r0, c0 in centres), default=math.inf)
            if gap > best_gap:
                best, best_gap = (r, c), gap
        centres.append(best)
    return centres


def _blobs_at(centres: Sequence[Tuple[float, float]], radius: float, rows: np.ndarray,
              cols: np.ndarray) -> np.ndarray:
    """Gaussian bumps (n, len(rows), len(cols)) of ``radius`` around ``centres``."""
    r, c = rows[:, None].astype(np.float64), cols[None, :].astype(np.float64)
    return np.stack([np.exp(-0.5 * ((r - r0) ** 2 + (c - c0) ** 2) / radius ** 2)
                     for r0, c0 in centres])


def _pure_blobs(height: int, width: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """One bump per material at well-separated random places, to give each a pure region."""
    return _blobs_at(_blob_centres(height, width, n, rng), _blob_radius(height, width),
                     np.arange(height), np.arange(width))


def make_abundances(height: int, width: int, n_endmembers: int, seed: int = 0,
                    pure_pixels: bool = True, max_abundance: float = 0.8,
                    correlation: Optional[float] = None) -> np.ndarray:
    """Smooth abundance maps (P, H, W), non-negative and summing to one at every pixel.

    ``pure_pixels``: every material has a region where its abundance is about 1. Otherwise the
    maps are mixed everywhere and no abundance exceeds ``max_abundance``.
    ``correlation`` is the field's smoothness length in pixels (default: an eighth of the size).
    """
    if n_endmembers < 2:
        raise InputError(f"a synthetic scene needs at least 2 endmembers (got {n_endmembers})")
    if not 1.0 / n_endmembers < max_abundance <= 1.0:
        raise InputError(f"max_abundance must lie in (1/{n_endmembers}, 1] (got {max_abundance})")
    rng = np.random.default_rng([seed, 1])
    corr = correlation if correlation is not None else max(1.0, max(height, width) / 8.0)
    fields = np.stack([gaussian_random_field(height, width, corr, rng) for _ in range(n_endmembers)])
    if pure_pixels:
        abundances = _softmax(4.0 * (fields + 5.0 * _pure_blobs(height, width, n_endmembers, rng)))
    else:
        abundances = _softmax(1.5 * fields)
        top = float(abundances.max())
        if top > max_abundance:                   # mix towards uniform until the cap holds
            t = (top - max_abundance) / (top - 1.0 / n_endmembers)
            abundances = (1.0 - t) * abundances + t / n_endmembers
    return abundances.astype(np.float32)


def nodata_mask(height: int, width: int, seed: int = 0,
                rows: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """True where a written scene holds nodata: a corner rectangle and an irregular blob.

    ``rows`` = (first, stop) gives only those rows of the mask (the same values as the full one).
    """
    row0, row1 = (0, height) if rows is None else rows
    mask = np.zeros((row1 - row0, width), dtype=bool)
    mask[: max(0, max(1, height // 6) - row0), width - max(1, width // 4):] = True
    rng = np.random.default_rng([seed, 3])
    rr, cc = np.mgrid[row0:row1, 0:width]
    cy, cx = 0.72 * (height - 1), 0.28 * (width - 1)
    radius = max(1.0, min(height, width) / 9.0)
    angle = np.arctan2(rr - cy, cc - cx)
    phase = rng.uniform(0, 2 * math.pi, size=2)
    edge = radius * (1 + 0.35 * np.sin(3 * angle + phase[0]) + 0.15 * np.cos(5 * angle + phase[1]))
    mask |= np.hypot(rr - cy, cc - cx) <= edge
    return mask


# ---------------------------------------------------------------------------------------------
# the scene


@dataclass
class SyntheticScene:
    """A synthetic image and its truth. ``cube`` = ``endmembers @ abundances`` + noise."""

    cube: np.ndarray            # float32 (L, H, W) reflectance
    abundances: np.ndarray      # float32 (P, H, W), sum to one
    endmembers: np.ndarray      # float64 (L, P) reflectance in [0, 1]
    wavelengths: np.ndarray     # (L,) nm
    names: List[str]
    seed: int = 0
    snr_db: Optional[float] = None
    noise_sigma: float = 0.0

    @property
    def shape(self) -> Tuple[int, int, int]:
        return tuple(self.cube.shape)


def _fill_clean(cube: np.ndarray, endmembers: np.ndarray, abundances: np.ndarray,
                block_rows: int) -> float:
    """``cube = endmembers @ abundances`` in row blocks; returns the mean squared signal."""
    n_bands, height, width = cube.shape
    e32 = endmembers.astype(np.float32)
    power = 0.0
    for row0 in range(0, height, block_rows):
        rows = slice(row0, min(height, row0 + block_rows))
        a = abundances[:, rows].reshape(abundances.shape[0], -1)
        block = (e32 @ a).reshape(n_bands, -1, width)
        cube[:, rows] = block
        power += float(np.square(block, dtype=np.float64).sum())
    return power / cube.size


def _add_noise(cube: np.ndarray, sigma: float, seed: int) -> None:
    """Add Gaussian noise row by row (one generator per row: independent of any block size)."""
    n_bands, height, width = cube.shape
    for row in range(height):
        rng = np.random.default_rng([seed, 2, row])
        cube[:, row, :] += rng.standard_normal((n_bands, width), dtype=np.float32) * np.float32(sigma)


def make_scene(height: int, width: int, n_bands: int, n_endmembers: int, seed: int = 0,
               snr_db: Optional[float] = 30, pure_pixels: bool = True,
               wl_range: Tuple[float, float] = (400, 2500), max_abundance: float = 0.8,
               block_rows: int = 256) -> SyntheticScene:
    """A synthetic scene of ``n_endmembers`` materials over ``n_bands`` evenly spaced bands.

    ``snr_db`` is 10 log10(signal power / noise power) of the whole cube; None or inf: no noise.
    ``block_rows`` bounds the working memory of large scenes (the cube itself is kept).
    """
    _check_sizes(height, width, n_bands, n_endmembers, wl_range)
    names = list(MATERIALS)[:n_endmembers]
    wavelengths = np.round(np.linspace(wl_range[0], wl_range[1], n_bands), 2)
    endmembers = endmember_spectra(wavelengths, names)
    abundances = make_abundances(height, width, n_endmembers, seed, pure_pixels, max_abundance)
    cube = np.empty((n_bands, height, width), dtype=np.float32)
    power = _fill_clean(cube, endmembers, abundances, max(1, int(block_rows)))
    sigma = 0.0
    if snr_db is not None and math.isfinite(snr_db):
        sigma = math.sqrt(power / 10.0 ** (snr_db / 10.0))
        _add_noise(cube, sigma, seed)
    return SyntheticScene(cube=cube, abundances=abundances, endmembers=endmembers,
                          wavelengths=wavelengths, names=names, seed=seed, snr_db=snr_db,
                          noise_sigma=sigma)


def _check_sizes(height, width, n_bands, n_endmembers, wl_range) -> None:
    if height < 2 or width < 2:
        raise InputError(f"the image must be at least 2 x 2 pixels (got {height} x {width})")
    if n_bands < 1:
        raise InputError(f"the number of bands must be at least 1 (got {n_bands})")
    if not 2 <= n_endmembers <= len(MATERIALS):
        raise InputError(f"the number of endmembers must lie between 2 and {len(MATERIALS)} "
                         f"(got {n_endmembers})")
    if not 0 < wl_range[0] < wl_range[1]:
        raise InputError(f"the wavelength range must be increasing and positive (got {wl_range})")


# ---------------------------------------------------------------------------------------------
# writing


UTM33_EPSG = 32633
PIXEL_SIZE = 30.0
ORIGIN = (368_000.0, 5_810_000.0)          # near Potsdam, like the EnMAP test tiles


def _nodata_for(dtype: np.dtype) -> float:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return -9999.0
    info = np.iinfo(dtype)
    return float(info.min if dtype.kind == "i" else info.max)


def _to_stored(block: np.ndarray, scale: Optional[float], dtype: np.dtype, nodata: float) -> np.ndarray:
    """Reflectance block -> the values written to the file (scaled, rounded, clipped)."""
    if scale is None:
        return block.astype(dtype)
    values = np.rint(block.astype(np.float64) * scale)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low = info.min + 1 if nodata == info.min else info.min
        high = info.max - 1 if nodata == info.max else info.max
        values = np.clip(values, low, high)
    return values.astype(dtype)


def _create(path: str, width: int, height: int, n_bands: int, dtype: np.dtype, compress,
            interleave: str = "BAND"):
    """A tiled GeoTIFF in UTM 33N. ``compress``: True (DEFLATE), False, or a GDAL codec name."""
    from osgeo import gdal, gdal_array, osr
    options = [f"INTERLEAVE={interleave}", "TILED=YES", "BIGTIFF=IF_SAFER"]
    codec = "DEFLATE" if compress is True else (compress or "NONE")
    if codec.upper() != "NONE":
        options += [f"COMPRESS={codec.upper()}", f"PREDICTOR={3 if dtype.kind == 'f' else 2}"]
    gdal_type = gdal_array.NumericTypeCodeToGDALTypeCode(dtype)
    ds = gdal.GetDriverByName("GTiff").Create(path, width, height, n_bands, gdal_type, options)
    if ds is None:
        raise InputError(f"{path}: GDAL could not create the file; check the folder exists "
                         f"and is writable")
    ds.SetGeoTransform((ORIGIN[0], PIXEL_SIZE, 0.0, ORIGIN[1], 0.0, -PIXEL_SIZE))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(UTM33_EPSG)
    ds.SetProjection(srs.ExportToWkt())
    return ds


def _truth_paths(path: str) -> Tuple[str, str]:
    stem = os.path.splitext(path)[0]
    return stem + "_truth_abundances.tif", stem + "_truth_endmembers.csv"


def write_geotiff(scene: SyntheticScene, path, nodata_region: bool = True,
                  scale: Optional[float] = 10000, dtype=None, block_rows: int = 256,
                  compress: bool = True) -> Dict[str, str]:
    """Write ``scene`` as a georeferenced GeoTIFF plus its truth files beside it.

    With ``scale`` the reflectance is stored as ``round(reflectance * scale)`` in ``dtype``
    (default int16, nodata -32768) with GDAL scale ``1/scale``; without it as float32 (nodata
    -9999). Bands carry ``wavelength``/``wavelength_units`` metadata and descriptions such as
    ``band 1 (418.24 Nanometers)``. ``nodata_region`` blanks :func:`nodata_mask` in every band
    (and in the truth abundances, as NaN). Returns the paths written.
    """
    path = os.fspath(path)
    dtype = np.dtype(dtype if dtype is not None else (np.int16 if scale is not None else np.float32))
    if dtype.kind not in "iuf":
        raise InputError(f"cannot write synthetic data as {dtype}; use an integer or float type")
    n_bands, height, width = scene.cube.shape
    nodata = _nodata_for(dtype)
    mask = nodata_mask(height, width, scene.seed) if nodata_region else np.zeros((height, width), bool)
    block_rows = max(1, int(block_rows))

    ds = _create(path, width, height, n_bands, dtype, compress)
    for b in range(n_bands):
        band = ds.GetRasterBand(b + 1)
        _describe_band(band, b + 1, float(scene.wavelengths[b]))
        band.SetNoDataValue(nodata)
        if scale is not None:
            band.SetScale(1.0 / scale)
            band.SetOffset(0.0)
        for row0 in range(0, height, block_rows):
            rows = slice(row0, min(height, row0 + block_rows))
            stored = _to_stored(scene.cube[b, rows], scale, dtype, nodata)
            stored[mask[rows]] = nodata
            band.WriteArray(stored, 0, row0)
    ds.FlushCache()
    ds = None

    abundance_path, endmember_path = _truth_paths(path)
    _write_truth_abundances(scene, abundance_path, mask, compress)
    _write_truth_endmembers(scene, endmember_path)
    return {"image": path, "abundances": abundance_path, "endmembers": endmember_path}


def _describe_band(band, number: int, wavelength: float) -> None:
    """Description ``band N (WL Nanometers)`` and ``wavelength``/``wavelength_units`` metadata."""
    band.SetDescription(f"band {number} ({wavelength:g} Nanometers)")
    band.SetMetadata({"wavelength": f"{wavelength:g}", "wavelength_units": "Nanometers"})


def _create_truth_abundances(path: str, width: int, height: int, names: Sequence[str], compress):
    """An empty float32 truth abundance raster, one band per material (named), nodata NaN."""
    ds = _create(path, width, height, len(names), np.dtype(np.float32), compress)
    for p, name in enumerate(names):
        band = ds.GetRasterBand(p + 1)
        band.SetDescription(name)
        band.SetNoDataValue(float("nan"))
    return ds


def _write_truth_abundances(scene: SyntheticScene, path: str, mask: np.ndarray, compress: bool) -> None:
    n_end, height, width = scene.abundances.shape
    ds = _create_truth_abundances(path, width, height, scene.names, compress)
    for p in range(n_end):
        band = ds.GetRasterBand(p + 1)
        values = scene.abundances[p].astype(np.float32)
        values[mask] = np.nan
        band.WriteArray(values)
    ds.FlushCache()
    ds = None


def _write_truth_endmembers(scene: SyntheticScene, path: str) -> None:
    write_truth_endmembers(path, scene.wavelengths, scene.endmembers, scene.names)


def write_truth_endmembers(path, wavelengths, endmembers, names: Sequence[str]) -> None:
    """The truth endmember CSV: ``wavelength`` column, then one column (L values) per material."""
    with open(os.fspath(path), "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["wavelength"] + list(names))
        for wl, row in zip(wavelengths, endmembers):
            writer.writerow([f"{wl:g}"] + [f"{v:.6f}" for v in row])


def read_truth_endmembers(path) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """(wavelengths (L,), endmembers (L, P), names) from a ``*_truth_endmembers.csv``."""
    with open(os.fspath(path), newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    names = rows[0][1:]
    table = np.array([[float(v) for v in row] for row in rows[1:]], dtype=np.float64)
    return table[:, 0], table[:, 1:], names


# ---------------------------------------------------------------------------------------------
# command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dffn_qgis.core.eval.synthetic",
        description="Write a synthetic hyperspectral GeoTIFF with known abundances and endmembers "
                    "(truth files are written beside it).")
    parser.add_argument("output", help="GeoTIFF to write, e.g. scene.tif")
    parser.add_argument("--size", nargs=2, type=int, default=(64, 64), metavar=("HEIGHT", "WIDTH"),
                        help="image size in pixels (default 64 64)")
    parser.add_argument("--bands", type=int, default=120, help="number of bands (default 120)")
    parser.add_argument("--endmembers", type=int, default=4,
                        help=f"number of materials, 2 to {len(MATERIALS)} (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--snr", type=float, default=30.0, help="signal-to-noise ratio in dB (default 30)")
    parser.add_argument("--no-pure", action="store_true",
                        help="no pure pixels: every abundance stays below 0.8")
    parser.add_argument("--float", dest="as_float", action="store_true",
                        help="store float32 reflectance instead of int16 reflectance x 10000")
    parser.add_argument("--no-nodata", action="store_true", help="do not blank a nodata region")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        scene = make_scene(args.size[0], args.size[1], args.bands, args.endmembers, seed=args.seed,
                           snr_db=args.snr, pure_pixels=not args.no_pure)
        paths = write_geotiff(scene, args.output, nodata_region=not args.no_nodata,
                              scale=None if args.as_float else 10000)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for kind, written in paths.items():
        print(f"{kind}: {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
