"""What a raster says about its bands: ENVI header fields, bad-band lists (``bbl``), wavelengths
and their units, and the user's band choice.
"""
from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError

_NM_NAMES = {"nm", "nanometer", "nanometers", "nanometre", "nanometres"}
_UM_NAMES = {"um", "µm", "μm", "micrometer", "micrometers", "micrometre", "micrometres",
             "micron", "microns"}
_UNKNOWN_UNITS = {"", "unknown", "none", "index", "n/a", "na"}
_WAVELENGTH_IN_TEXT = re.compile(
    r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*"
    r"(nanometers?|nanometres?|nm|micrometers?|micrometres?|microns?|um|µm|μm)(?![a-z])",
    re.IGNORECASE)


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
    metadata, and the ENVI header read with SPy. Wavelengths without a unit (some EMIT and other
    ENVI products) get one from their range (:func:`unit_from_range`), with a note; when the range
    says nothing, band numbers are used, with a note.
    """
    n = ds.RasterCount
    unitless = None
    for values, units in (_wavelengths_from_band_metadata(ds), _wavelengths_from_descriptions(ds),
                          _wavelengths_from_envi_domain(ds), _wavelengths_from_header(header)):
        if values is None or len(values) != n or not np.all(np.isfinite(values)):
            continue
        short = normalise_units(units)
        if short is None:
            unitless = values if unitless is None else unitless
            continue
        return values, short
    if unitless is not None:
        guess = unit_from_range(unitless)
        if notes is not None:
            span = f"{unitless.min():g}-{unitless.max():g}"
            notes.append(f"The file lists wavelengths ({span}) without a unit; read as "
                         f"{'nanometres' if guess == 'nm' else 'micrometres'} from their range." if guess else
                         f"The file lists wavelengths ({span}) without a unit that their range could tell; "
                         f"band numbers are used instead.")
        if guess:
            return unitless, guess
    return None, None


# Atmospheric water-vapour windows (nm) where surface reflectance cannot be measured, and beyond 2450 nm
ABSORPTION_WINDOWS_NM = ((1340.0, 1460.0), (1790.0, 1960.0), (2450.0, float("inf")))


def absorption_flags(wavelengths: np.ndarray, units: str) -> np.ndarray:
    """True for the bands whose centre lies in an atmospheric absorption window."""
    wl = np.asarray(wavelengths, dtype=np.float64) * (1000.0 if units == "um" else 1.0)
    flags = np.zeros(wl.shape, dtype=bool)
    for low, high in ABSORPTION_WINDOWS_NM:
        flags |= (wl > low) & (wl < high)
    return flags


def unit_from_range(values: np.ndarray) -> Optional[str]:
    """``"um"`` for values within 0.2-30 (reflective and thermal infrared in micrometres), ``"nm"``
    for values within 200-30000, otherwise None; None too for band numbers (1, 2, ..., n or 0, ...)."""
    values = np.asarray(values, dtype=np.float64)
    steps = np.arange(values.size, dtype=np.float64)
    if np.array_equal(values, steps + 1) or np.array_equal(values, steps):
        return None
    low, high = float(np.min(values)), float(np.max(values))
    if 0.2 <= low and high <= 30.0 and high > low:
        return "um"
    if 200.0 <= low and high <= 30000.0 and high > low:
        return "nm"
    return None
