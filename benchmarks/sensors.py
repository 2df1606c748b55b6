"""Band grids of real imaging spectrometers (centre wavelength and FWHM per band, in nanometres).

The grids follow the instruments' published band counts, ranges and typical widths; they are
approximations (evenly spaced within each detector), close enough to give generated scenes each
sensor's sampling and spectral smoothing.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

Grid = Tuple[np.ndarray, np.ndarray]     # (centres, fwhm)


def _even(first: float, last: float, count: int, fwhm: float) -> Grid:
    centres = np.linspace(first, last, count)
    return centres, np.full(count, float(fwhm))


def enmap() -> Grid:
    """EnMAP: 224 bands, VNIR 91 bands 418-993 nm (FWHM ~8 nm), SWIR 133 bands 902-2445 nm
    (~10 nm); the two detectors overlap between 902 and 993 nm."""
    v, vw = _even(418.2, 993.0, 91, 8.0)
    s, sw = _even(902.0, 2445.0, 133, 10.0)
    return np.concatenate([v, s]), np.concatenate([vw, sw])


def emit() -> Grid:
    """EMIT: 285 bands, 381-2493 nm, about 7.4 nm apart, FWHM ~8.5 nm."""
    return _even(381.0, 2493.0, 285, 8.5)


def aviris_ng() -> Grid:
    """AVIRIS-NG: 425 bands, 377-2500 nm, 5 nm apart, FWHM ~5.5 nm."""
    return _even(377.0, 2500.0, 425, 5.5)


def broadband_56() -> Grid:
    """A 56-band spectrometer over 420-2420 nm (about 36 nm apart, FWHM 40 nm), the 50-60 band
    class of airborne and small-satellite instruments."""
    return _even(420.0, 2420.0, 56, 40.0)


SENSORS: Dict[str, callable] = {"enmap": enmap, "emit": emit, "aviris-ng": aviris_ng, "broad56": broadband_56}
