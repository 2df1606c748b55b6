"""Endmembers at the data's brightness, so that abundances are physical fractions.

DFFN's loss compares spectra by angle, so the network leaves each endmember's brightness
arbitrary; fractions computed with endmembers at the wrong brightness are wrong even when their
shapes are right (a spectrum twice too bright gets half its share). :func:`fit_brightness`
rescales each endmember so that the non-negative least-squares coefficients of the pixels on the
endmembers sum to one as closely as possible over the image (least squares over the pixels). A
pixel's coefficients on the rescaled endmembers, divided by their sum, are then its fractions; the
sum itself is the pixel's brightness relative to the mixture (illumination, topography), which
therefore does not bias the fractions (docs/METHOD.md, "Physical abundances").
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from .abundance_lsq import even_columns, nnls

BRIGHTNESS_NOTE = ("endmembers rescaled to the data's brightness (their coefficients sum to one on average), "
                   "so that abundances are fractions")
MAX_PIXELS = 65536      # pixels the fit looks at (an even sample of larger images)


def fit_brightness(Y: np.ndarray, E: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Endmembers ``E`` (L, P) rescaled to the brightness of the pixels ``Y`` (L, n), and the
    factors (P,) they were multiplied by.

    An endmember that no pixel uses keeps the median factor of the others.
    """
    Y = np.asarray(Y, dtype=np.float64)
    E = np.asarray(E, dtype=np.float64)
    Y = even_columns(Y, MAX_PIXELS)
    C = nnls(Y, E)                                              # P x n coefficients
    u = nnls(np.ones((C.shape[1], 1)), C.T)[:, 0]               # min ||C^T u - 1||, u >= 0
    used = u > 1e-9 * max(float(u.max()), 1e-300)
    if not used.any():
        return E.copy(), np.ones(E.shape[1])
    u = np.where(used, u, np.median(u[used]))
    factors = 1.0 / u
    return E * factors[None, :], factors
