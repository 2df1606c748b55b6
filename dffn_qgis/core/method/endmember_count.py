"""How many endmembers: HySime and HFC virtual dimensionality, from the image alone.

* **HySime** (Bioucas-Dias and Nascimento, IEEE TGRS 2008): the noise of each band is estimated by
  regressing it on all the other bands; the signal subspace is then the set of eigenvectors of the
  signal correlation whose projected signal power exceeds twice the projected noise power (the
  eigenvectors that lower the mean squared error of a projection). On real scenes with smooth
  spectra the regression can explain almost all of the noise away (Samson: 78 "signal" dimensions
  of 156); HySime is therefore also run with the noise of neighbouring pixels' differences, and
  when the regression's count is more than twice that one, the latter is recommended.
* **HFC** (Harsanyi, Farrand and Chang 1993; Chang and Du, IEEE TGRS 2004): a source present in the
  image raises an eigenvalue of the correlation matrix above the matching eigenvalue of the
  covariance matrix; the count is how many of the differences pass a Neyman-Pearson test at the
  false-alarm rate ``far``.

Both work on a sample of at most ``MAX_PIXELS`` valid pixels, read window by window for a large
raster (:func:`count_source`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from ..errors import InputError
from ..run.progress import Monitor, as_monitor

MAX_PIXELS = 100_000
DEFAULT_FAR = 1e-3


@dataclass
class CountEstimate:
    """Both estimates, the one recommended and the curves behind them (for the report)."""

    hysime: int                     # noise by regression across bands
    hysime_spatial: Optional[int]   # noise from differences of neighbouring pixels (None: no pairs)
    hfc: int
    far: float
    n_pixels: int
    hysime_signal_power: np.ndarray = field(repr=False)     # projected signal power per eigenvector
    hysime_noise_power: np.ndarray = field(repr=False)      # projected noise power (x 2: the threshold)
    eigen_correlation: np.ndarray = field(repr=False)       # HFC: eigenvalues, largest first
    eigen_covariance: np.ndarray = field(repr=False)
    notes: List[str] = field(default_factory=list)

    @property
    def recommended_by(self) -> str:
        if self.hysime_spatial is not None and self.hysime > 2 * max(self.hysime_spatial, 1):
            return "hysime-spatial"
        return "hysime"

    @property
    def recommended(self) -> int:
        count = self.hysime_spatial if self.recommended_by == "hysime-spatial" else self.hysime
        return max(2, count)

    def to_dict(self) -> dict:
        return {"hysime": self.hysime, "hysime_spatial": self.hysime_spatial, "hfc": self.hfc,
                "hfc_false_alarm_rate": self.far, "recommended": self.recommended,
                "recommended_by": self.recommended_by, "pixels_used": self.n_pixels, "notes": list(self.notes)}

    def describe(self) -> str:
        spatial = "" if self.hysime_spatial is None else f", HySime with neighbour noise {self.hysime_spatial}"
        why = (" (the regression's count is more than twice the neighbour-noise one: the regression has "
               "explained the noise away)" if self.recommended_by == "hysime-spatial" else "")
        return (f"endmember count: HySime {self.hysime}{spatial}, HFC {self.hfc} (false-alarm rate {self.far:g}) "
                f"on {self.n_pixels} pixels; recommended {self.recommended}{why}")


def estimate_noise(Y: np.ndarray) -> np.ndarray:
    """Noise of each pixel (L x n) by multiple regression of every band on all the others."""
    Y = np.asarray(Y, dtype=np.float64)
    L = Y.shape[0]
    R = Y @ Y.T
    R_inv = np.linalg.inv(R + 1e-6 * np.trace(R) / L * np.eye(L))
    noise = np.empty_like(Y)
    for i in range(L):
        # inverse of R with band i removed, from the full inverse (Schur complement)
        others = R_inv - np.outer(R_inv[:, i], R_inv[i, :]) / R_inv[i, i]
        r = R[:, i].copy()
        r[i] = 0.0
        beta = others @ r
        beta[i] = 0.0
        noise[i] = Y[i] - beta @ Y
    return noise


def hysime(Y: np.ndarray, noise_power: Optional[np.ndarray] = None) -> Tuple[int, np.ndarray, np.ndarray]:
    """Signal subspace dimension, and the projected signal and noise powers of each eigenvector.

    ``noise_power``: each band's noise variance (L,); estimated by regression when not given.
    """
    Y = np.asarray(Y, dtype=np.float64)
    n = Y.shape[1]
    if noise_power is None:
        W = estimate_noise(Y)
        noise_power = np.einsum("ij,ij->i", W, W) / n
    Rn = np.diag(noise_power)
    Ry = Y @ Y.T / n
    Rx = Ry - Rn
    eigenvalues, vectors = np.linalg.eigh(Rx)
    vectors = vectors[:, np.argsort(eigenvalues)[::-1]]
    signal = np.einsum("ij,ij->j", vectors, Ry @ vectors)
    noise = np.einsum("ij,ij->j", vectors, Rn @ vectors)
    return int(np.count_nonzero(signal - 2.0 * noise > 0)), signal, noise


def hfc(Y: np.ndarray, far: float = DEFAULT_FAR) -> Tuple[int, np.ndarray, np.ndarray]:
    """Virtual dimensionality at false-alarm rate ``far``, and the two eigenvalue series."""
    from scipy.stats import norm

    if not 0.0 < far < 0.5:
        raise InputError(f"the false-alarm rate must lie between 0 and 0.5 (got {far})")
    Y = np.asarray(Y, dtype=np.float64)
    n = Y.shape[1]
    correlation = np.sort(np.linalg.eigvalsh(Y @ Y.T / n))[::-1]
    centred = Y - Y.mean(axis=1, keepdims=True)
    covariance = np.sort(np.linalg.eigvalsh(centred @ centred.T / n))[::-1]
    sigma = np.sqrt(2.0 / n * (correlation ** 2 + covariance ** 2))
    threshold = norm.isf(far) * sigma
    return int(np.count_nonzero(correlation - covariance > threshold)), correlation, covariance


def count_endmembers(Y: np.ndarray, far: float = DEFAULT_FAR,
                     neighbour_noise: Optional[np.ndarray] = None) -> CountEstimate:
    """The estimates for the pixels ``Y`` (L x n); ``neighbour_noise``: each band's noise variance
    from differences of neighbouring pixels (:func:`neighbour_noise_power`), when known."""
    Y = np.asarray(Y, dtype=np.float64)
    L, n = Y.shape
    if L < 3:
        raise InputError(f"counting endmembers needs at least 3 bands (got {L})")
    if n < L + 1:
        raise InputError(f"counting endmembers on {L} bands needs at least {L + 1} valid pixels (got {n})")
    k_hysime, signal, noise = hysime(Y)
    k_spatial = None if neighbour_noise is None else hysime(Y, neighbour_noise)[0]
    k_hfc, correlation, covariance = hfc(Y, far)
    return CountEstimate(k_hysime, k_spatial, k_hfc, far, n, signal, noise, correlation, covariance)


def neighbour_noise_power(data: np.ndarray, valid: np.ndarray) -> Tuple[np.ndarray, int]:
    """Sum over horizontally adjacent valid pixel pairs of half their squared difference, per band
    (L,), and the number of pairs: divided, each band's noise variance (plus the scene's texture)."""
    pairs = valid[:, 1:] & valid[:, :-1]
    difference = (data[:, :, 1:] - data[:, :, :-1])[:, pairs].astype(np.float64)
    return 0.5 * np.einsum("ij,ij->i", difference, difference), int(pairs.sum())


def sample_pixels(source, max_pixels: int = MAX_PIXELS,
                  monitor: Optional[Monitor] = None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Every k-th valid pixel of ``source`` (an ArraySource or RasterSource), window by window,
    at most about ``max_pixels`` (L x n, float64), and each band's neighbour noise variance over the
    whole image (None without adjacent valid pixels)."""
    from ..io.raster_source import windows

    monitor = as_monitor(monitor)
    valid = source.scene.valid
    step = max(1, math.ceil(int(valid.sum()) / max_pixels))
    picked, seen = [], 0
    noise, pairs = np.zeros(source.n_bands), 0
    boxes = list(windows(source.height, source.width))
    for k, (r0, c0, rows, cols) in enumerate(boxes):
        monitor.check()
        data, ok = source.read(r0, c0, rows, cols)
        window_noise, window_pairs = neighbour_noise_power(data, ok)
        noise += window_noise
        pairs += window_pairs
        flat = data.reshape(data.shape[0], -1)[:, ok.ravel()]
        positions = np.arange(seen, seen + flat.shape[1])
        seen += flat.shape[1]
        picked.append(flat[:, positions % step == 0].astype(np.float64))
        monitor.progress((k + 1) / len(boxes), f"reading pixels: window {k + 1} of {len(boxes)}")
    Y = np.concatenate(picked, axis=1) if picked else np.empty((source.n_bands, 0))
    return Y, (noise / pairs if pairs else None)


def count_source(source, far: float = DEFAULT_FAR, max_pixels: int = MAX_PIXELS,
                 monitor: Optional[Monitor] = None) -> CountEstimate:
    """Both estimates for a raster, on a sample of its valid pixels."""
    monitor = as_monitor(monitor)
    Y, neighbour_noise = sample_pixels(source, max_pixels, monitor.sub(0.0, 0.8))
    estimate = count_endmembers(Y, far, neighbour_noise)
    estimate.notes = list(source.scene.notes)
    monitor.progress(1.0, "counted")
    return estimate
