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

import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from .abundance_lsq import even_columns, nnls
from .endmember_count import regression_noise_power

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


# Brightness spreads tried by :func:`choose_brightness_spread` (relative standard deviation of the
# pixels' brightness; inf: free, plain NNLS scaled to sum to one).
SPREADS = (math.inf, 1.0, 0.3, 0.1, 0.03, 0.01, 0.003)
SPREAD_PIXELS = 8192    # pixels the choice looks at (an even sample)


@dataclass(frozen=True)
class BrightnessSpread:
    """How much each pixel's brightness may differ from the mixture of the endmembers.

    Fractions are ``c / sum(c)`` with ``c`` the non-negative minimiser of
    ``||y - E c||^2 + sum_weight^2 (sum(c) - 1)^2``: the posterior mode when the pixel's brightness
    ``sum(c)`` has spread ``spread`` about one and the noise per band standard deviation ``noise``,
    ``sum_weight = noise / spread``. ``spread = inf`` is the free brightness (weight 0).
    """

    spread: float
    sum_weight: float
    noise: float
    how: str                                  # "chosen", "free" or "fixed"
    held_out_error: Tuple[float, ...] = ()    # per spread of SPREADS, relative to the smallest

    def to_dict(self) -> dict:
        return {"spread": None if math.isinf(self.spread) else self.spread, "sum_weight": self.sum_weight,
                "noise_sd": self.noise, "how": self.how,
                "held_out_error": [round(e, 6) for e in self.held_out_error]}

    def note(self) -> str:
        if self.how == "free":
            return "pixel brightness free: each pixel's fit is scaled to sum to one (insensitive to illumination)"
        if math.isinf(self.spread):
            return ("pixel brightness: the image's held-out bands are best predicted with the brightness free "
                    "(illumination varies): each pixel's fit is scaled to sum to one")
        what = "chosen by held-out bands" if self.how == "chosen" else "fixed"
        return (f"pixel brightness {what}: within about {self.spread:g} of the mixture's (fractions sum to one "
                f"with a soft constraint of weight {self.sum_weight:.3g})")


def brightness_spread(Y: np.ndarray, E: np.ndarray, mode: str = "auto") -> BrightnessSpread:
    """The brightness spread the abundances assume, for endmembers ``E`` (L, P) at the data's brightness
    and pixels ``Y`` (L, n).

    ``mode``: ``free`` (today's fractions: NNLS scaled to sum to one), ``fixed`` (a spread of 0.003:
    close to FCLS) or ``auto``: the spread of :data:`SPREADS` whose fits on the even bands best predict
    the odd bands and the reverse (noise is independent between bands, the signal is not, so a
    constraint that only removes noise lowers the held-out error and one that fights real illumination
    raises it). Needs more pixels than bands for the noise estimate; otherwise free.
    """
    if mode == "free":
        return BrightnessSpread(math.inf, 0.0, 0.0, "free")
    Y = even_columns(np.asarray(Y, dtype=np.float64), SPREAD_PIXELS)
    E = np.asarray(E, dtype=np.float64)
    L, n = Y.shape
    if n <= L + 1 or L < 4:
        return BrightnessSpread(math.inf, 0.0, 0.0, "free")
    noise = float(np.sqrt(np.mean(regression_noise_power(Y))))
    if mode == "fixed":
        spread = SPREADS[-1]
        return BrightnessSpread(spread, noise / spread, noise, "fixed")
    errors = []
    halves = (slice(0, None, 2), slice(1, None, 2))
    for spread in SPREADS:
        weight = 0.0 if math.isinf(spread) else noise / spread
        error = 0.0
        for fit, test in (halves, halves[::-1]):
            C = nnls(Y[fit], E[fit], sum_weight=weight)
            error += float(np.sum((Y[test] - E[test] @ C) ** 2))
        errors.append(error)
    best = int(np.argmin(errors))
    lowest = max(errors[best], 1e-300)
    spread = SPREADS[best]
    return BrightnessSpread(spread, 0.0 if math.isinf(spread) else noise / spread, noise, "chosen",
                            tuple(e / lowest for e in errors))
