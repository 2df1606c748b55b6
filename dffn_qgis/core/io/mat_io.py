"""Reading the unmixing community's MATLAB files (Samson, Jasper Ridge, Urban, ...).

Such a file holds ``Y``: bands x pixels, pixels in column-major order (pixel ``n`` is at
``row = n % H``, ``col = n // H``), the image size in keys like ``nRow``/``nCol`` (or ``H``/``W``,
``nr``/``nc``; case does not matter), and often the ground truth: ``A`` (endmembers x pixels,
same order) and ``M`` (bands x endmembers). Without a size the image is taken to be square.
A 3-D ``Y`` is read as rows x cols x bands. MATLAB v7.3 files are HDF5 and need ``h5py``.
"""
from __future__ import annotations

import math
import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError
from ..run.progress import Monitor, as_monitor
from .scaling import extreme_values_note, negative_values_note, scale_to_unit_max, scaling_record
from .band_metadata import validate_band_list
from .scene import Scene

_SIZE_KEYS = (("nrow", "ncol"), ("h", "w"), ("nr", "nc"), ("rows", "cols"), ("nrows", "ncols"))


def load_mat(path) -> Dict[str, np.ndarray]:
    """The arrays of a MATLAB file by name, or an :class:`InputError` naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file; check the path")
    from scipy.io import loadmat
    try:
        content = loadmat(path)
    except NotImplementedError:          # scipy: "Please use HDF reader for matlab v7.3 files"
        return _load_mat_v73(path)
    except Exception as exc:             # scipy raises assorted errors on non-MATLAB files
        message = " ".join(str(exc).split())
        raise InputError(f"{path} is not a MATLAB file scipy can read ({message}); "
                         f"save it from MATLAB with -v7 or choose a raster") from None
    return {k: v for k, v in content.items() if not k.startswith("__")}


def _load_mat_v73(path: str) -> Dict[str, np.ndarray]:
    """Arrays of a MATLAB v7.3 (HDF5) file through h5py, transposed back to MATLAB's order."""
    try:
        import h5py
    except ImportError:
        raise InputError(f"{path} is a MATLAB v7.3 (HDF5) file; install h5py or save it from "
                         f"MATLAB with save(..., '-v7')") from None
    arrays: Dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as handle:
            for key, item in handle.items():
                if isinstance(item, h5py.Dataset) and item.dtype.kind in "iufb":
                    arrays[key] = np.asarray(item[()]).T    # HDF5 keeps MATLAB arrays transposed
    except OSError as exc:
        message = " ".join(str(exc).split())
        raise InputError(f"{path} looks like a MATLAB v7.3 file but h5py cannot read it "
                         f"({message}); save it again from MATLAB") from None
    return arrays


def _find(arrays: Dict[str, np.ndarray], name: str) -> Optional[np.ndarray]:
    """The array called ``name`` (case-insensitive), or None."""
    for key, value in arrays.items():
        if key.lower() == name.lower():
            return np.asarray(value)
    return None


def _scalar(value: np.ndarray) -> Optional[int]:
    value = np.asarray(value)
    if value.size != 1 or value.dtype.kind not in "iuf":
        return None
    number = float(value.reshape(-1)[0])
    return int(number) if number.is_integer() and number > 0 else None


def image_size(arrays: Dict[str, np.ndarray], n_pixels: int, path: str) -> Tuple[int, int]:
    """(rows, cols) from the size keys of the file, else the side of a square image."""
    for row_key, col_key in _SIZE_KEYS:
        rows, cols = _find(arrays, row_key), _find(arrays, col_key)
        if rows is None or cols is None:
            continue
        rows, cols = _scalar(rows), _scalar(cols)
        if rows is None or cols is None:
            continue
        if rows * cols != n_pixels:
            raise InputError(f"{path}: the image size {rows} x {cols} in the file does not match "
                             f"its {n_pixels} pixels")
        return rows, cols
    side = math.isqrt(n_pixels)
    if side * side != n_pixels:
        raise InputError(f"{path}: {n_pixels} pixels do not make a square image and the file "
                         f"gives no size; add nRow and nCol to the file")
    return side, side


def _cube_from_y(arrays: Dict[str, np.ndarray], path: str) -> np.ndarray:
    """``Y`` as a float64 (bands, rows, cols) cube."""
    y = _find(arrays, "Y")
    if y is None:
        names = ", ".join(sorted(arrays)) or "none"
        raise InputError(f"{path} has no image matrix Y (found: {names}); the file needs Y as "
                         f"bands x pixels")
    if y.dtype.kind not in "iufb":
        raise InputError(f"{path}: Y holds {y.dtype} values; it must be a real numeric matrix")
    y = y.astype(np.float64)
    if y.ndim == 3:                                   # rows x cols x bands
        return np.transpose(y, (2, 0, 1))
    if y.ndim != 2:
        raise InputError(f"{path}: Y has {y.ndim} dimensions; expected bands x pixels")
    if y.shape[0] != y.shape[1] and _declared_pixels(arrays) == y.shape[0]:
        y = y.T                                       # stored pixels x bands
    rows, cols = image_size(arrays, y.shape[1], path)
    return y.reshape(y.shape[0], rows, cols, order="F")


def _declared_pixels(arrays: Dict[str, np.ndarray]) -> Optional[int]:
    for row_key, col_key in _SIZE_KEYS:
        rows, cols = _find(arrays, row_key), _find(arrays, col_key)
        if rows is not None and cols is not None:
            rows, cols = _scalar(rows), _scalar(cols)
            if rows is not None and cols is not None:
                return rows * cols
    return None


def read_mat_scene(path, bands: Optional[Sequence[int]] = None,
                   monitor: Optional[Monitor] = None) -> Scene:
    """Read ``Y`` of a MATLAB file into a :class:`Scene`, scaled like :func:`read_scene`.

    No georeferencing; pixels with NaN/Inf in any selected band are invalid.
    """
    path = os.fspath(path)
    monitor = as_monitor(monitor)
    monitor.check()
    cube64 = _cube_from_y(load_mat(path), path)
    n_bands = cube64.shape[0]
    numbers = list(range(1, n_bands + 1)) if bands is None else validate_band_list(bands, n_bands, path)
    cube64 = cube64[[b - 1 for b in numbers]]
    notes = []
    finite = np.isfinite(cube64)
    valid = finite.all(axis=0)
    n_bad = int((~valid).sum())
    if n_bad:
        notes.append(f"Masked {n_bad} pixel(s) holding NaN or infinite values.")
    cube64[~finite] = 0.0
    if np.abs(cube64).max(initial=0.0) > np.finfo(np.float32).max:
        raise InputError(f"{path}: Y holds values beyond the float32 range; rescale it first")
    cube = cube64.astype(np.float32)
    del cube64
    monitor.progress(0.5, "matrix read")
    divisor = scale_to_unit_max(cube, valid, path)
    for note in (extreme_values_note(cube, valid, path), negative_values_note(cube, valid)):
        if note:
            notes.append(note)
    monitor.progress(1.0, "image read")
    return Scene(data=cube, valid=valid, wavelengths=None, wavelength_units=None,
                 band_indices=numbers, band_names=[f"band {b}" for b in numbers],
                 geotransform=None, crs_wkt=None, nodata=None,
                 scaling=scaling_record([1.0], [0.0], divisor), source=path, notes=notes)


def read_mat_truth(path) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """Ground truth of a MATLAB file: abundances ``A`` as (P, rows, cols) and endmembers ``M`` (L, P).

    Either is None when the file lacks it. ``A`` is stored endmembers x pixels in the same
    column-major pixel order as ``Y``.
    """
    path = os.fspath(path)
    arrays = load_mat(path)
    a, m = _find(arrays, "A"), _find(arrays, "M")
    abundances = endmembers = None
    if a is not None and a.ndim == 2 and a.dtype.kind in "iuf":
        a = a.astype(np.float64)
        if _declared_pixels(arrays) == a.shape[0] and a.shape[0] != a.shape[1]:
            a = a.T                                     # stored pixels x endmembers
        rows, cols = image_size(arrays, a.shape[1], path)
        abundances = a.reshape(a.shape[0], rows, cols, order="F")
    if m is not None and m.ndim == 2 and m.dtype.kind in "iuf":
        endmembers = m.astype(np.float64)
        y = _find(arrays, "Y")
        if y is not None and y.ndim == 2 and endmembers.shape[0] != y.shape[0] \
                and endmembers.shape[1] == y.shape[0]:
            endmembers = endmembers.T                   # stored endmembers x bands
    return abundances, endmembers
