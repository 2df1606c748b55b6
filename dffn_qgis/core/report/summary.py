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
    A = np.asarray(result.abundances, dtype=np.float64)
    error = np.asarray(result.error, dtype=np.float64)
    valid = np.isfinite(A).all(axis=0)
    dominant = np.argmax(np.where(valid, A, -np.inf), axis=0)
    area = pixel_area(scene)
    rows = []
    for i, name in enumerate(result.endmember_names):
        where = valid & (dominant == i)
        fits = error[where & np.isfinite(error)]
        rows.append({"name": name, "mean_fraction": float(A[i][valid].mean()) if valid.any() else None,
                     "dominant_pixels": int(where.sum()),
                     "dominant_area_m2": None if area is None else float(where.sum() * area),
                     "mean_error_where_dominant_rad": float(fits.mean()) if fits.size else None})
    return rows


def error_statistics(error: np.ndarray) -> Optional[dict]:
    """Mean, median, 95th percentile and maximum of the per-pixel reconstruction angle (radians) over
    the valid pixels, with their count; None when no pixel has one."""
    values = np.asarray(error, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    return {"mean_rad": float(values.mean()), "median_rad": float(np.median(values)),
            "p95_rad": float(np.percentile(values, 95)), "max_rad": float(values.max()), "pixels": int(values.size)}
