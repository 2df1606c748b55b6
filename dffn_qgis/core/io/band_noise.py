"""Bands whose noise is far above their spectral neighbours' (left out by default).

A band inside a deep absorption, or a detector's failing band, carries little signal and the
same noise: relative to its level it is much noisier than the bands beside it, and it pulls the
unmixing (an endmember "peak" that is noise). The file's bad-band list and the water-vapour
windows catch most such bands; this catches the rest.

Noise is estimated from a sample of the image: the median absolute difference between
horizontally adjacent valid pixels (divided by 0.6745 * sqrt(2): the standard deviation for
Gaussian noise), relative to the band's median level. Neighbouring bands see the same scene, so
the scene's own texture cancels in the ratio of a band's relative noise to the median of its
:data:`NEIGHBOURS` neighbours' on each side; a band is noisy when that ratio exceeds
:data:`RATIO`. Measured on the EnMAP Potsdam tiles (water-vapour windows already left out),
the largest ratio of any band was 2.0 (1.1-1.5 typical): 4 leaves every real band in.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

NEIGHBOURS = 5            # bands on each side a band is compared with
RATIO = 4.0               # relative noise this many times the neighbours' median: noisy
SAMPLE = 64               # side of the sample windows
_MAD_TO_SIGMA = 1.0 / (0.6745 * np.sqrt(2.0))


def relative_noise(image: np.ndarray) -> float:
    """Noise / level of one band's sample (rows x cols, NaN where invalid); NaN if unknown."""
    a = np.asarray(image, dtype=np.float64)
    d = np.abs(np.diff(a, axis=1))
    d = d[np.isfinite(d)]
    values = np.abs(a[np.isfinite(a)])
    if d.size < 16 or values.size == 0:
        return float("nan")
    level = float(np.median(values))
    if level <= 0:
        return float("nan")
    return float(np.median(d)) * _MAD_TO_SIGMA / level


def noisy_bands(noise: Sequence[float], ratio: float = RATIO) -> List[Tuple[int, float]]:
    """(position, ratio to the neighbours) of each band in ``noise`` (relative noise per band, in
    spectral order) that is ``ratio`` times noisier than the median of its neighbours."""
    rho = np.asarray(noise, dtype=np.float64)
    found = []
    for i, value in enumerate(rho):
        if not np.isfinite(value):
            continue
        near = np.concatenate([rho[max(0, i - NEIGHBOURS):i], rho[i + 1:i + 1 + NEIGHBOURS]])
        near = near[np.isfinite(near)]
        if near.size < 2:
            continue
        base = float(np.median(near))
        if base > 0 and value > ratio * base:
            found.append((i, value / base))
    return found


def sample_windows(height: int, width: int, side: int = SAMPLE) -> List[Tuple[int, int, int, int]]:
    """(col0, row0, cols, rows) of up to four sample windows, one near the centre of each quadrant
    (the whole image when it is small)."""
    if height <= 2 * side and width <= 2 * side:
        return [(0, 0, width, height)]
    boxes = []
    for fr in (0.25, 0.75):
        for fc in (0.25, 0.75):
            rows, cols = min(side, height), min(side, width)
            r0 = int(min(max(0, fr * height - rows / 2), height - rows))
            c0 = int(min(max(0, fc * width - cols / 2), width - cols))
            boxes.append((c0, r0, cols, rows))
    return sorted(set(boxes))
