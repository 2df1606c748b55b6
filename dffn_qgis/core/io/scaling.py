"""Values to the unit scale (the largest valid value becomes 1) and notes on values a user should know about
(extreme, negative).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError

SCALING_RULE = "divided by the maximum valid value"
_F32_MAX = float(np.finfo(np.float32).max)


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


def in_file_values(values: np.ndarray, scaling: Optional[dict]) -> Tuple[np.ndarray, str]:
    """Spectra in the engine's units (the image divided by its largest value) back in the input's
    own values (its GDAL scale and offset applied, the division undone), with the y-axis label:
    "reflectance" when the file's scale makes the values reflectance-like (a scale below 1, values
    within 0-1.5). ``scaling`` is a scene's (or a run record's) ``scaling`` dict."""
    scaling = scaling or {}
    divisor = float(scaling.get("divisor") or 1.0)
    values = np.asarray(values, dtype=np.float64) * divisor
    scales = scaling.get("gdal_scale")
    scales = [scales] if isinstance(scales, (int, float)) else list(scales or [])
    finite = values[np.isfinite(values)]
    if scales and all(0 < s < 1 for s in scales) and finite.size and float(finite.max()) <= 1.5:
        return values, "reflectance"
    return values, "value as in the input file" if divisor != 1.0 else "value"


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
