"""Opening a raster with GDAL, with one clear line when it cannot be opened (ENVI headers given
instead of their data file included).
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional

from osgeo import gdal

from ..errors import InputError

_ENVI_DATA_SUFFIXES = ("", ".img", ".dat", ".bsq", ".bil", ".bip", ".raw")


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
