"""Figures an analyst reads: per endmember, the mean fraction, where it dominates and how well it fits
there; for the whole image, the reconstruction error's statistics."""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from ..io.scene import Scene
from ..run.result import UnmixResult


def pixel_area(scene: Scene) -> Optional[float]:
    """The area of one pixel in the CRS's squared units when the CRS is projected, else None."""
    if not scene.geotransform or not scene.crs_wkt:
        return None
    try:
        from osgeo import osr
        srs = osr.SpatialReference(wkt=scene.crs_wkt)
        if not srs.IsProjected():
            return None
        unit = srs.GetLinearUnits()                    # metres per CRS unit
    except Exception:                                   # an unreadable CRS: report pixels only
        return None
    gt = scene.geotransform
    return abs(gt[1] * gt[5] - gt[2] * gt[4]) * unit * unit


def endmember_summary(scene: Scene, result: UnmixResult) -> List[dict]:
    """One entry per endmember: name, mean fraction, pixels (and square metres) where it has the
    largest fraction, and the mean reconstruction angle there."""
    from ..io.outputs import DOMINANT_NODATA, dominant_endmember

    A, error = result.abundances, result.error                # float32; no float64 copy of the stack
    classes = dominant_endmember(A)
    valid = classes != DOMINANT_NODATA
    finite_error = np.isfinite(error)
    area = pixel_area(scene)
    rows = []
    for i, name in enumerate(result.endmember_names):
        where = classes == i + 1
        fits = error[where & finite_error]
        rows.append({"name": name, "mean_fraction": float(A[i][valid].mean(dtype=np.float64)) if valid.any() else None,
                     "dominant_pixels": int(where.sum()),
                     "dominant_area_m2": None if area is None else float(where.sum() * area),
                     "mean_error_where_dominant_rad": float(fits.mean(dtype=np.float64)) if fits.size else None})
    return rows


def error_statistics(error: np.ndarray) -> Optional[dict]:
    """Mean, median, 95th percentile and maximum of the per-pixel reconstruction angle (radians) over
    the valid pixels, with their count; None when no pixel has one."""
    values = np.asarray(error)
    values = values[np.isfinite(values)].astype(np.float64)   # the valid pixels only (not the nodata)
    if values.size == 0:
        return None
    mean, largest = float(values.mean()), float(values.max())
    median, p95 = np.percentile(values, [50, 95], overwrite_input=True)        # reorders ``values``
    return {"mean_rad": mean, "median_rad": float(median), "p95_rad": float(p95), "max_rad": largest,
            "pixels": int(values.size)}
