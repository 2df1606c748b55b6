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

import contextlib
import os
import re
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
from osgeo import gdal

from ..errors import InputError
from ..run.progress import Monitor, as_monitor
from .scene import Scene

SCALING_RULE = "divided by the maximum valid value"
DEFAULT_BLOCK_BYTES = 64 * 1024 * 1024      # float64 working memory per read block
_F32_MAX = float(np.finfo(np.float32).max)
_IDENTITY_GEOTRANSFORM = (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
_ENVI_DATA_SUFFIXES = ("", ".img", ".dat", ".bsq", ".bil", ".bip", ".raw")

_NM_NAMES = {"nm", "nanometer", "nanometers", "nanometre", "nanometres"}
_UM_NAMES = {"um", "µm", "μm", "micrometer", "micrometers", "micrometre", "micrometres",
             "micron", "microns"}
_UNKNOWN_UNITS = {"", "unknown", "none", "index", "n/a", "na"}
_WAVELENGTH_IN_TEXT = re.compile(
    r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*"
    r"(nanometers?|nanometres?|nm|micrometers?|micrometres?|microns?|um|µm|μm)(?![a-z])",
    re.IGNORECASE)


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

@contextlib.contextmanager
def _quiet_gdal() -> Iterator[None]:
    """Keep GDAL from printing errors to stderr while we turn them into InputErrors."""
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        yield
    finally:
        gdal.PopErrorHandler()


def _gdal_open(path: str, flags: int):
    """``gdal.OpenEx`` that returns None on failure whatever GDAL's exception setting."""
    try:
        with _quiet_gdal():
            gdal.ErrorReset()
            return gdal.OpenEx(path, flags)
    except RuntimeError:
        return None


def _last_gdal_error() -> str:
    msg = " ".join((gdal.GetLastErrorMsg() or "").split())
    return f" ({msg})" if msg else ""


def _envi_data_file_for(header_path: str) -> Optional[str]:
    """The data file beside an ENVI ``.hdr`` (GDAL opens the data file, not the header)."""
    stem = header_path[:-4]
    for suffix in _ENVI_DATA_SUFFIXES:
        candidate = stem + suffix
        if os.path.isfile(candidate):
            return candidate
    return None


def open_raster(path: str) -> "gdal.Dataset":
    """Open ``path`` as a raster with bands, or raise an :class:`InputError` naming the file."""
    ds = _gdal_open(path, gdal.OF_RASTER)
    if ds is None and path.lower().endswith(".hdr"):
        data_file = _envi_data_file_for(path)
        if data_file is not None:
            ds = _gdal_open(data_file, gdal.OF_RASTER)
    if ds is None:
        raise InputError(_open_failure_message(path))
    if ds.RasterCount == 0:
        subdatasets = ds.GetMetadata("SUBDATASETS") or {}
        names = [v for k, v in sorted(subdatasets.items()) if k.endswith("_NAME")]
        if names:
            raise InputError(f"{path} holds {len(names)} sub-datasets, not one image; "
                             f"open one of them instead, e.g. {names[0]}")
        raise InputError(f"{path} has no raster bands; choose a raster image")
    return ds


def _open_failure_message(path: str) -> str:
    if not os.path.exists(path) and not path.startswith("/vsi") and ":" not in path[2:]:
        return f"{path}: no such file; check the path"
    if os.path.isdir(path):
        return f"{path} is a folder, not a raster file; choose the image file inside it"
    error = _last_gdal_error()
    vector = _gdal_open(path, gdal.OF_VECTOR)
    if vector is not None:
        driver = vector.GetDriver().ShortName
        return f"{path} is a vector file ({driver}), not a raster; choose a raster image"
    return f"{path} is not a raster GDAL can read{error}; choose a GeoTIFF, ENVI or other raster"


# ---------------------------------------------------------------------------------------------
# band selection

def validate_band_list(bands: Sequence[int], n_bands: int, source: str) -> List[int]:
    """Check a user's list of 1-based band numbers against a file of ``n_bands`` bands."""
    try:
        requested = list(bands)
    except TypeError:
        raise InputError(f"{source}: bands must be a list of band numbers (got {bands!r})") from None
    if not requested:
        raise InputError(f"{source}: the band list is empty; give at least one band number (1-based)")
    result: List[int] = []
    for b in requested:
        if not _is_whole_number(b):
            raise InputError(f"{source}: band numbers must be whole numbers (got {b!r})")
        number = int(b)
        if not 1 <= number <= n_bands:
            raise InputError(f"{source}: band {number} does not exist; the file has {n_bands} "
                             f"band(s), numbered 1 to {n_bands}")
        if number in result:
            raise InputError(f"{source}: band {number} is listed twice; give each band once")
        result.append(number)
    return result


def _is_whole_number(value) -> bool:
    if isinstance(value, (bool, np.bool_, str, bytes)):
        return False
    try:
        return float(value).is_integer()
    except (TypeError, ValueError, OverflowError):
        return False


def _metadata_value(obj, key: str, domains: Tuple[str, ...] = ("", "ENVI")) -> Optional[str]:
    """A metadata item of a band or dataset, looked up case-insensitively in ``domains``."""
    for domain in domains:
        items = obj.GetMetadata(domain) or {}
        if not isinstance(items, dict):
            continue
        for k, v in items.items():
            if k.lower() == key:
                return v
    return None


def parse_envi_list(text) -> List[str]:
    """``'{1, 0, 1}'`` (ENVI header syntax) or a list as returned by SPy -> list of strings."""
    if isinstance(text, (list, tuple)):
        return [str(v).strip() for v in text]
    text = str(text).strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    return [part.strip() for part in text.split(",") if part.strip()]


def _floats(values: Sequence[str]) -> Optional[np.ndarray]:
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return None


def read_envi_header(ds) -> Optional[dict]:
    """The ENVI header of an ENVI dataset, read with SPy, or None."""
    if ds.GetDriver().ShortName != "ENVI":
        return None
    headers = [f for f in (ds.GetFileList() or []) if f.lower().endswith(".hdr")]
    if not headers:
        return None
    try:
        from spectral.io import envi
        return envi.read_envi_header(headers[0])
    except Exception:  # optional source of metadata: GDAL's ENVI domain usually has it all
        return None


def bad_band_flags(ds, header: Optional[dict] = None) -> Optional[np.ndarray]:
    """True for each source band flagged bad (``bbl`` = 0), or None when there is no ``bbl``."""
    n = ds.RasterCount
    per_band = [_metadata_value(ds.GetRasterBand(i), "bbl") for i in range(1, n + 1)]
    values = None
    if all(v is not None for v in per_band):
        values = _floats(per_band)
    if values is None:
        dataset_bbl = _metadata_value(ds, "bbl", ("ENVI",))
        if dataset_bbl is not None:
            values = _floats(parse_envi_list(dataset_bbl))
    if values is None and header is not None and "bbl" in header:
        values = _floats(parse_envi_list(header["bbl"]))
    if values is None or len(values) != n:
        return None
    return values == 0


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
    return numbers


def _format_ranges(numbers: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``'1-3, 7'``."""
    parts: List[str] = []
    numbers = sorted(numbers)
    start = prev = None
    for n in numbers + [None]:
        if start is None:
            start = prev = n
        elif n is not None and n == prev + 1:
            prev = n
        else:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = n
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------
# wavelengths

def normalise_units(units) -> Optional[str]:
    """``'Nanometers'`` -> ``'nm'``, ``'Micrometers'`` -> ``'um'``, unknown -> None, else as given."""
    if units is None:
        return None
    text = str(units).strip()
    key = text.lower()
    if key in _UNKNOWN_UNITS:
        return None
    if key in _NM_NAMES:
        return "nm"
    if key in _UM_NAMES:
        return "um"
    return text


def _wavelengths_from_band_metadata(ds) -> Tuple[Optional[np.ndarray], Optional[str]]:
    n = ds.RasterCount
    values, units = [], None
    for i in range(1, n + 1):
        band = ds.GetRasterBand(i)
        value = _metadata_value(band, "wavelength")
        if value is None:
            return None, None
        values.append(value)
        if units is None:
            units = _metadata_value(band, "wavelength_units")
    if units is None:
        units = _metadata_value(ds, "wavelength_units")
    return _floats(values), units


def _wavelengths_from_descriptions(ds) -> Tuple[Optional[np.ndarray], Optional[str]]:
    values, units = [], set()
    for i in range(1, ds.RasterCount + 1):
        match = _WAVELENGTH_IN_TEXT.search(ds.GetRasterBand(i).GetDescription() or "")
        if match is None:
            return None, None
        values.append(match.group(1))
        units.add(normalise_units(match.group(2)))
    if len(units) != 1:
        return None, None
    return _floats(values), units.pop()


def _wavelengths_from_envi_domain(ds) -> Tuple[Optional[np.ndarray], Optional[str]]:
    text = _metadata_value(ds, "wavelength", ("ENVI",))
    if text is None:
        return None, None
    units = _metadata_value(ds, "wavelength_units", ("ENVI", ""))
    return _floats(parse_envi_list(text)), units


def _wavelengths_from_header(header: Optional[dict]) -> Tuple[Optional[np.ndarray], Optional[str]]:
    if not header or "wavelength" not in header:
        return None, None
    return _floats(parse_envi_list(header["wavelength"])), header.get("wavelength units")


def find_wavelengths(ds, header: Optional[dict] = None,
                     notes: Optional[List[str]] = None) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """Wavelengths of every source band and their short unit, first complete source wins.

    Sources in order: band metadata ``wavelength``/``wavelength_units`` (default and ENVI
    domains), band descriptions such as ``band 1 (418.24 Nanometers)``, the dataset's ENVI
    metadata, and the ENVI header read with SPy. Wavelengths whose unit is unknown are not used
    (``(None, None)``), with a note.
    """
    n = ds.RasterCount
    unitless = False
    for values, units in (_wavelengths_from_band_metadata(ds), _wavelengths_from_descriptions(ds),
                          _wavelengths_from_envi_domain(ds), _wavelengths_from_header(header)):
        if values is None or len(values) != n or not np.all(np.isfinite(values)):
            continue
        short = normalise_units(units)
        if short is None:
            unitless = True
            continue
        return values, short
    if unitless and notes is not None:
        notes.append("The file lists wavelengths without a unit; band numbers are used instead.")
    return None, None


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

def scale_to_unit_max(cube: np.ndarray, valid: np.ndarray, source: str) -> float:
    """Zero invalid pixels and divide ``cube`` in place by its largest valid value.

    Raises :class:`InputError` when there is no valid pixel, the largest valid value is not
    positive or the image is constant. Returns the divisor.
    """
    vmax, vmin = -np.inf, np.inf
    any_valid = bool(valid.any())
    for band in cube:
        band[~valid] = 0.0
        if any_valid:
            values = band[valid]
            vmax = max(vmax, float(values.max()))
            vmin = min(vmin, float(values.min()))
    divisor = unit_max_divisor(vmin, vmax, any_valid, source)
    for band in cube:
        band /= np.float32(divisor)
    return divisor


def unit_max_divisor(vmin: float, vmax: float, any_valid: bool, source: str) -> float:
    """The divisor that brings the largest valid value to 1, or :class:`InputError` for an image
    that has no valid pixel, is constant or holds no positive value."""
    if not any_valid:
        raise InputError(f"{source}: no valid pixel; every pixel is nodata, NaN or masked "
                         f"in at least one selected band")
    if vmin == vmax:
        raise InputError(f"{source}: the image is constant ({vmax:g} in every valid pixel and "
                         f"band); there is nothing to unmix")
    if vmax <= 0:
        raise InputError(f"{source}: the largest valid value is {vmax:g}; the method needs "
                         f"positive, reflectance-like values")
    if -vmin / vmax > _F32_MAX:
        raise InputError(f"{source}: the most negative valid value ({vmin:g}) is beyond the float32 "
                         f"range once divided by the largest one ({vmax:g}); the method needs "
                         f"reflectance-like values")
    return float(vmax)


def _compact(values: Sequence[float]):
    """A single value when every band shares it, else the list."""
    values = [float(v) for v in values]
    return values[0] if len(set(values)) == 1 else values


def scaling_record(scales: Sequence[float], offsets: Sequence[float], divisor: float) -> dict:
    """The ``Scene.scaling`` dict: how file values became ``data``."""
    return {"gdal_scale": _compact(scales), "gdal_offset": _compact(offsets),
            "divisor": float(divisor), "rule": SCALING_RULE}


_OUTLIER_RATIO = 1e3      # largest value / 99th percentile above which the log warns
_UNDERFLOW = 1e-15        # 99th percentile (after scaling) below which float32 training fails
_SAMPLE = 200_000         # values looked at for the percentile


def extreme_values_note(cube: np.ndarray, valid: np.ndarray, source: str) -> Optional[str]:
    """After scaling: a note when a few huge values squash the rest of the image towards 0.

    Raises :class:`InputError` when the bulk of the image would fall below what float32 training
    can resolve (a single value 1e30 in reflectance data), because the result would be noise.
    """
    index = np.flatnonzero(valid)
    if index.size == 0:
        return None
    per_band = max(1, _SAMPLE // max(1, cube.shape[0]))
    index = index[::max(1, index.size // per_band)]
    sample = np.abs(cube.reshape(cube.shape[0], -1)[:, index])
    p99 = float(np.percentile(sample, 99))
    if p99 == 0.0 or p99 * _OUTLIER_RATIO >= 1.0:
        return None
    if p99 < _UNDERFLOW:
        raise InputError(f"{source}: a few extreme values (the largest is {1.0 / p99:.3g} times "
                         f"the 99th percentile) leave nothing of the rest of the image after "
                         f"scaling; mask them as nodata or fix the file")
    return (f"The largest valid value is {1.0 / p99:.3g} times the 99th percentile: a few extreme "
            f"values squash the rest of the image towards 0 after scaling; if they are errors, "
            f"mask them as nodata.")


def negative_values_note(cube: np.ndarray, valid: np.ndarray) -> Optional[str]:
    """A note on negative valid values (kept as they are), or None."""
    count, low = 0, 0.0
    for band in cube:
        values = band[valid]
        negative = values < 0
        if negative.any():
            count += int(negative.sum())
            low = min(low, float(values.min()))
    return negatives_note(count, low)


def negatives_note(count: int, low: float) -> Optional[str]:
    """The note for ``count`` negative valid values, the lowest ``low`` (after scaling)."""
    if not count:
        return None
    return (f"{count} valid value(s) are negative (down to {low:.4g} after scaling); "
            f"they are kept as they are.")


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
