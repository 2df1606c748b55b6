"""Reading hyperspectral rasters through GDAL into a :class:`~dffn_qgis.core.io.scene.Scene`.

Any raster GDAL opens (GeoTIFF, ENVI, VRT, ...) of any real data type is read band by band
(in row blocks), with each band's GDAL scale/offset applied. A pixel is invalid when any
selected band holds that band's nodata value or a NaN/infinite value, or when the dataset's
own mask (alpha band, ``.msk``) says so. Bad bands flagged by ``bbl`` and bands that hold no
valid value at all are left out unless the caller chose the bands. Finally every valid value is
divided by the largest valid value, so the image maximum is 1: reflectance stored as integers x
10000 then gives the same data as reflectance in [0, 1], and an image already in [0, 1] with a
maximum of 1 (the Samson benchmark) is unchanged. Files ending in ``.mat`` go to
:mod:`dffn_qgis.core.io.mat_io`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
from osgeo import gdal

from ..errors import InputError
from ..run.progress import Monitor, as_monitor
from . import band_noise
from .scene import Scene
from .gdal_open import _last_gdal_error, _quiet_gdal, open_raster
from .band_metadata import (_format_ranges, absorption_flags, bad_band_flags, find_wavelengths, read_envi_header,
                             validate_band_list)
from .scaling import _F32_MAX, extreme_values_note, negative_values_note, scale_to_unit_max, scaling_record

DEFAULT_BLOCK_BYTES = 64 * 1024 * 1024      # float64 working memory per read block
_IDENTITY_GEOTRANSFORM = (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# public entry point

def read_scene(path, bands: Optional[Sequence[int]] = None, use_bbl: bool = True,
               monitor: Optional[Monitor] = None) -> Scene:
    """Read a raster into a :class:`Scene` scaled so that its largest valid value is 1.

    ``bands`` is an optional list of 1-based band numbers (kept in the given order); without
    it every band is used except alpha bands, bands flagged bad by ``bbl`` (when ``use_bbl``)
    and bands without a single valid value. Raises :class:`InputError` with a one-line message
    for anything the user has to fix.
    """
    path = os.fspath(path)
    if path.lower().endswith(".mat"):
        from .mat_io import read_mat_scene
        return read_mat_scene(path, bands=bands, monitor=monitor)
    monitor = as_monitor(monitor)
    ds = open_raster(path)
    try:
        return _read_dataset(ds, path, bands, use_bbl, monitor)
    finally:
        ds = None  # noqa: F841  (closes the dataset)


# ---------------------------------------------------------------------------------------------
# opening


# ---------------------------------------------------------------------------------------------
# band selection


def _default_bands(ds, path: str, use_bbl: bool, header: Optional[dict],
                   notes: List[str]) -> List[int]:
    """Every band except alpha bands and, when ``use_bbl``, bands flagged bad."""
    n = ds.RasterCount
    numbers = [i for i in range(1, n + 1)
               if ds.GetRasterBand(i).GetColorInterpretation() != gdal.GCI_AlphaBand]
    if len(numbers) < n:
        notes.append(f"Left out {n - len(numbers)} alpha band(s); they act as the mask.")
    if not numbers:
        raise InputError(f"{path} holds only alpha bands; choose an image with data bands")
    bad = bad_band_flags(ds, header) if use_bbl else None
    if bad is not None and bad.any():
        kept = [b for b in numbers if not bad[b - 1]]
        if not kept:
            raise InputError(f"{path}: the bad-band list (bbl) flags every band as bad; "
                             f"turn off the bad-band list or choose bands")
        dropped = [b for b in numbers if bad[b - 1]]
        notes.append(f"Dropped {len(dropped)} bad band(s) flagged by the bad-band list (bbl): "
                     f"{_format_ranges(dropped)}.")
        numbers = kept
    if use_bbl:
        numbers = _without_absorption_bands(ds, header, numbers, notes)
        numbers = _without_noisy_bands(ds, path, numbers, notes)
    return numbers


def _without_noisy_bands(ds, path: str, numbers: List[int], notes: List[str]) -> List[int]:
    """``numbers`` without the bands far noisier than their neighbours (:mod:`.band_noise`)."""
    if len(numbers) < 2 * band_noise.NEIGHBOURS:
        return numbers
    boxes = band_noise.sample_windows(ds.RasterYSize, ds.RasterXSize)
    noise = []
    for number in numbers:
        band = ds.GetRasterBand(number)
        scale, offset = _band_scale_offset(band)
        nodata = band.GetNoDataValue()
        parts = []
        for c0, r0, cols, rows in boxes:
            values, hits, bad = read_band_window(band, path, number, scale, offset, nodata,
                                                 c0, r0, cols, rows)
            values[hits | bad] = np.nan
            parts += [values, np.full((rows, 1), np.nan)]    # no difference across two windows
        noise.append(band_noise.relative_noise(np.hstack(parts)))
    found = band_noise.noisy_bands(noise)
    if not found or len(numbers) - len(found) < 3:
        return numbers
    dropped = {numbers[i] for i, _ in found}
    worst = max(found, key=lambda item: item[1])
    notes.append(f"Dropped {len(found)} band(s) far noisier than their neighbours (noise relative to level more "
                 f"than {band_noise.RATIO:g} times theirs, up to {worst[1]:.0f} times): {_format_ranges(sorted(dropped))}; "
                 f"keep them with --keep-bad-bands (KEEP_BAD_BANDS in QGIS).")
    return [b for b in numbers if b not in dropped]


def _without_absorption_bands(ds, header: Optional[dict], numbers: List[int], notes: List[str]) -> List[int]:
    """``numbers`` without the bands in the atmospheric water-vapour windows, when wavelengths are known."""
    wavelengths, units = find_wavelengths(ds, header)
    if wavelengths is None:
        return numbers
    flags = absorption_flags(wavelengths, units)
    dropped = [b for b in numbers if flags[b - 1]]
    kept = [b for b in numbers if not flags[b - 1]]
    if not dropped or len(kept) < 3:
        return numbers
    notes.append(f"Dropped {len(dropped)} band(s) in the atmospheric water-vapour windows (about 1340-1460 and "
                 f"1790-1960 nm, and beyond 2450 nm): {_format_ranges(dropped)}; keep them with "
                 f"--keep-bad-bands (KEEP_BAD_BANDS in QGIS).")
    return kept


# ---------------------------------------------------------------------------------------------
# wavelengths


# ---------------------------------------------------------------------------------------------
# reading pixels

@dataclass
class _BandRead:
    """What reading the selected bands produced, before bands without data are dropped."""

    cube: np.ndarray                      # float32 (bands, rows, cols), scale/offset applied
    nodata_hits: np.ndarray               # bool (rows, cols): nodata in some kept band
    nonfinite_hits: np.ndarray            # bool (rows, cols): NaN/Inf in some kept band
    empty_bands: List[int] = field(default_factory=list)   # positions with no valid value
    scales: List[float] = field(default_factory=list)
    offsets: List[float] = field(default_factory=list)
    nodata: List[Optional[float]] = field(default_factory=list)


def _band_scale_offset(band) -> Tuple[float, float]:
    scale, offset = band.GetScale(), band.GetOffset()
    scale = 1.0 if scale is None else float(scale)
    offset = 0.0 if offset is None else float(offset)
    return scale, offset


def nodata_hits(raw: np.ndarray, nodata: Optional[float]) -> np.ndarray:
    """Where ``raw`` equals ``nodata`` as the file stores it (compared in the raw data type)."""
    if nodata is None:
        return np.zeros(raw.shape, dtype=bool)
    if np.isnan(nodata):
        return np.isnan(raw) if raw.dtype.kind == "f" else np.zeros(raw.shape, dtype=bool)
    if raw.dtype.kind in "iu":
        info = np.iinfo(raw.dtype)
        if not float(nodata).is_integer() or not info.min <= nodata <= info.max:
            return np.zeros(raw.shape, dtype=bool)   # a value this type cannot hold
        return raw == raw.dtype.type(int(nodata))
    if raw.dtype.kind == "f":
        return raw == raw.dtype.type(nodata)
    return raw == nodata


def block_rows_for(width: int, height: int, budget_bytes: int = DEFAULT_BLOCK_BYTES) -> int:
    """Rows per read block so a float64 block of one band stays within ``budget_bytes``."""
    return int(max(1, min(height, budget_bytes // max(1, 8 * width))))


def _check_data_types(ds, path: str, numbers: Sequence[int]) -> None:
    for b in numbers:
        data_type = ds.GetRasterBand(b).DataType
        if gdal.DataTypeIsComplex(data_type):
            raise InputError(f"{path}: band {b} holds complex numbers "
                             f"({gdal.GetDataTypeName(data_type)}); convert the image to real "
                             f"values (e.g. the amplitude) first")


def _read_bands(ds, path: str, numbers: Sequence[int], monitor: Monitor,
                block_rows: Optional[int] = None) -> _BandRead:
    """Read the selected bands in row blocks, applying scale/offset and finding invalid pixels."""
    height, width = ds.RasterYSize, ds.RasterXSize
    rows_per_block = block_rows or block_rows_for(width, height)
    out = _BandRead(cube=np.zeros((len(numbers), height, width), dtype=np.float32),
                    nodata_hits=np.zeros((height, width), dtype=bool),
                    nonfinite_hits=np.zeros((height, width), dtype=bool))
    for position, number in enumerate(numbers):
        monitor.check()
        band = ds.GetRasterBand(number)
        scale, offset = _band_scale_offset(band)
        nodata = band.GetNoDataValue()
        out.scales.append(scale)
        out.offsets.append(offset)
        out.nodata.append(nodata)
        band_nodata = np.zeros((height, width), dtype=bool)
        band_nonfinite = np.zeros((height, width), dtype=bool)
        for row0 in range(0, height, rows_per_block):
            rows = min(rows_per_block, height - row0)
            values, hits, bad_values = read_band_window(band, path, number, scale, offset, nodata,
                                                        0, row0, width, rows)
            out.cube[position, row0:row0 + rows] = values
            band_nodata[row0:row0 + rows] = hits
            band_nonfinite[row0:row0 + rows] = bad_values
        if np.all(band_nodata | band_nonfinite):
            out.empty_bands.append(position)
        else:
            out.nodata_hits |= band_nodata
            out.nonfinite_hits |= band_nonfinite
        monitor.progress((position + 1) / len(numbers),
                         f"read band {number} ({position + 1} of {len(numbers)})")
    return out


def read_band_window(band, path: str, number: int, scale: float, offset: float, nodata: Optional[float],
                     col0: int, row0: int, cols: int, rows: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One band's window with scale/offset applied: (values float64 with invalid set to 0,
    nodata hits, NaN/Inf hits)."""
    raw = _read_block(band, path, number, col0, row0, cols, rows)
    hits = nodata_hits(raw, nodata)
    values = raw.astype(np.float64)
    if scale != 1.0 or offset != 0.0:
        with np.errstate(over="ignore", invalid="ignore"):    # overflow gives Inf: flagged just below
            values = values * scale + offset
    bad_values = ~np.isfinite(values) & ~hits
    _check_float32_range(values, hits | bad_values, path, number)
    values[hits | bad_values] = 0.0
    return values, hits, bad_values


def _read_block(band, path: str, number: int, col0: int, row0: int, cols: int, rows: int) -> np.ndarray:
    try:
        with _quiet_gdal():
            gdal.ErrorReset()
            raw = band.ReadAsArray(col0, row0, cols, rows)
    except RuntimeError:
        raw = None
    if raw is None:
        raise InputError(f"{path}: GDAL could not read band {number}{_last_gdal_error()}; "
                         f"the file may be truncated or damaged")
    return raw


def _check_float32_range(values: np.ndarray, invalid: np.ndarray, path: str, number: int) -> None:
    finite = values[~invalid]
    if finite.size and float(np.max(np.abs(finite))) > _F32_MAX:
        raise InputError(f"{path}: band {number} holds values beyond the float32 range "
                         f"(|value| > 3.4e38); rescale the image before unmixing")


def dataset_mask(ds, numbers: Sequence[int], block_rows: Optional[int] = None) -> Optional[np.ndarray]:
    """Validity (True = valid) from a per-dataset mask or alpha band, or None when there is none."""
    band = ds.GetRasterBand(numbers[0])
    flags = band.GetMaskFlags()
    if flags & gdal.GMF_ALL_VALID or not flags & gdal.GMF_PER_DATASET:
        return None
    mask_band = band.GetMaskBand()
    height, width = ds.RasterYSize, ds.RasterXSize
    rows_per_block = block_rows or block_rows_for(width, height)
    valid = np.ones((height, width), dtype=bool)
    for row0 in range(0, height, rows_per_block):
        rows = min(rows_per_block, height - row0)
        block = mask_band.ReadAsArray(0, row0, width, rows)
        if block is not None:
            valid[row0:row0 + rows] = block > 0
    return None if valid.all() else valid


# ---------------------------------------------------------------------------------------------
# scaling


# ---------------------------------------------------------------------------------------------
# putting it together

def _georeference(ds) -> Tuple[Optional[tuple], Optional[str]]:
    transform = ds.GetGeoTransform(can_return_null=True)
    if transform is not None and tuple(float(v) for v in transform) == _IDENTITY_GEOTRANSFORM:
        transform = None
    wkt = ds.GetProjection() or None
    return (tuple(transform) if transform is not None else None), wkt


def _drop_empty_bands(read: _BandRead, numbers: List[int], explicit: bool, path: str,
                      notes: List[str]) -> List[int]:
    """Leave out bands without a single valid value (an error when the user chose them)."""
    if not read.empty_bands:
        return numbers
    notes.append(empty_bands_note([numbers[i] for i in read.empty_bands], numbers, explicit, path))
    empty = set(read.empty_bands)
    keep = [i for i in range(len(numbers)) if i not in empty]
    for target, source in enumerate(keep):      # compact in place: no second copy of the cube
        if target != source:
            read.cube[target] = read.cube[source]
        for attribute in ("scales", "offsets", "nodata"):
            getattr(read, attribute)[target] = getattr(read, attribute)[source]
    read.cube = read.cube[:len(keep)]
    for attribute in ("scales", "offsets", "nodata"):
        setattr(read, attribute, getattr(read, attribute)[:len(keep)])
    return [numbers[i] for i in keep]


def empty_bands_note(empty_numbers: List[int], numbers: List[int], explicit: bool, path: str) -> str:
    """The note for bands without a valid value, or :class:`InputError` where they cannot be left out."""
    if explicit:
        raise InputError(f"{path}: band(s) {_format_ranges(empty_numbers)} hold no valid value "
                         f"(only nodata or NaN); leave them out of the band list")
    if len(empty_numbers) == len(numbers):
        raise InputError(f"{path}: no valid pixel; every band holds only nodata or NaN values")
    return (f"Dropped {len(empty_numbers)} band(s) holding only nodata or NaN values: "
            f"{_format_ranges(empty_numbers)}.")


def invalid_pixel_notes(total: int, n_nodata: int, n_nonfinite: int, n_masked: Optional[int],
                        nodata_value) -> List[str]:
    """Notes on the pixels left out: nodata, NaN/Inf (not already nodata), masked (None: no mask)."""
    notes = []
    if n_nodata:
        notes.append(f"{n_nodata} of {total} pixels are nodata (value {nodata_value:g}) in at "
                     f"least one band and are left out.")
    if n_nonfinite:
        notes.append(f"Masked {n_nonfinite} pixel(s) holding NaN or infinite values.")
    if n_masked is not None:
        notes.append(f"{n_masked} of {total} pixels are masked by the raster's "
                     f"mask or alpha band and are left out.")
    return notes


def _read_dataset(ds, path: str, bands, use_bbl: bool, monitor: Monitor) -> Scene:
    notes: List[str] = []
    header = read_envi_header(ds)
    explicit = bands is not None
    if explicit:
        numbers = validate_band_list(bands, ds.RasterCount, path)
    else:
        numbers = _default_bands(ds, path, use_bbl, header, notes)
    _check_data_types(ds, path, numbers)

    read = _read_bands(ds, path, numbers, monitor.sub(0.0, 0.95))
    numbers = _drop_empty_bands(read, numbers, explicit, path, notes)
    mask_valid = dataset_mask(ds, numbers)
    valid = ~(read.nodata_hits | read.nonfinite_hits)
    if mask_valid is not None:
        valid &= mask_valid
    first_nodata = next((v for v in read.nodata if v is not None), None)
    notes += invalid_pixel_notes(read.nodata_hits.size, int(read.nodata_hits.sum()),
                                 int((read.nonfinite_hits & ~read.nodata_hits).sum()),
                                 None if mask_valid is None else int((~mask_valid).sum()), first_nodata)

    monitor.check()
    divisor = scale_to_unit_max(read.cube, valid, path)
    for note in (extreme_values_note(read.cube, valid, path),
                 negative_values_note(read.cube, valid)):
        if note:
            notes.append(note)

    all_wavelengths, units = find_wavelengths(ds, header, notes)
    wavelengths = None
    if all_wavelengths is not None:
        wavelengths = all_wavelengths[[b - 1 for b in numbers]]
    geotransform, crs_wkt = _georeference(ds)
    names = [(ds.GetRasterBand(b).GetDescription() or "").strip() or f"band {b}" for b in numbers]
    nodata = read.nodata[0] if read.nodata else None
    monitor.progress(1.0, "image read")
    return Scene(data=read.cube, valid=valid, wavelengths=wavelengths,
                 wavelength_units=units if wavelengths is not None else None,
                 band_indices=list(numbers), band_names=names, geotransform=geotransform,
                 crs_wkt=crs_wkt, nodata=None if nodata is None else float(nodata),
                 scaling=scaling_record(read.scales, read.offsets, divisor), source=path,
                 notes=notes)
