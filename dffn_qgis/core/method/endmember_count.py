"""How many endmembers: a random-matrix count, HySime and HFC virtual dimensionality, from the image alone.

* **Noise edge (random matrix theory)**, the recommended count: each band is divided by its noise
  standard deviation (estimated by regression on all the other bands, its residual variance taken
  over the residual degrees of freedom), and the eigenvalues of the whitened correlation matrix
  are counted above the largest one that noise alone reaches, the Marchenko-Pastur edge
  ``(1 + sqrt(L / n))^2`` for ``n`` pixels of ``L`` bands. A material whose signal variance is a
  fraction of the noise's still clears that edge once enough pixels are seen, where HySime asks for
  more signal than noise power in its direction; the idea is that of Cawse-Nicholson et al.
  ("Determining the intrinsic dimension of a hyperspectral image using random matrix theory",
  IEEE TIP 2013).
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

    rmt: int                        # eigenvalues above the noise edge (noise by regression)
    hysime: int                     # noise by regression across bands
    hysime_spatial: Optional[int]   # noise from differences of neighbouring pixels (None: no pairs)
    hfc: int
    far: float
    n_pixels: int
    hysime_signal_power: np.ndarray = field(repr=False)     # projected signal power per eigenvector
    hysime_noise_power: np.ndarray = field(repr=False)      # projected noise power (x 2: the threshold)
    eigen_correlation: np.ndarray = field(repr=False)       # HFC: eigenvalues, largest first
    eigen_covariance: np.ndarray = field(repr=False)
    eigen_whitened: np.ndarray = field(repr=False)          # noise-edge count: eigenvalues, largest first
    noise_edge: float = 0.0                                 # the largest eigenvalue noise alone gives
    notes: List[str] = field(default_factory=list)

    @property
    def recommended_by(self) -> str:
        """``rmt``; ``hysime-spatial`` where the regression has explained the noise away (smooth real
        spectra): its count is more than twice the one with the noise of neighbouring pixels."""
        if self.hysime_spatial is not None and self.rmt > 2 * max(self.hysime_spatial, 1):
            return "hysime-spatial"
        return "rmt"

    @property
    def recommended(self) -> int:
        count = self.hysime_spatial if self.recommended_by == "hysime-spatial" else self.rmt
        return max(2, count)

    def to_dict(self) -> dict:
        return {"rmt": self.rmt, "noise_edge": self.noise_edge, "hysime": self.hysime,
                "hysime_spatial": self.hysime_spatial, "hfc": self.hfc, "hfc_false_alarm_rate": self.far, "recommended": self.recommended,
                "recommended_by": self.recommended_by, "pixels_used": self.n_pixels, "notes": list(self.notes)}

    def describe(self) -> str:
        spatial = "" if self.hysime_spatial is None else f", HySime with neighbour noise {self.hysime_spatial}"
        why = (" (the regression's count is more than twice the neighbour-noise one: the regression has "
               "explained the noise away)" if self.recommended_by == "hysime-spatial" else "")
        return (f"endmember count: noise edge (RMT) {self.rmt}, HySime {self.hysime}{spatial}, HFC {self.hfc} "
                f"(false-alarm rate {self.far:g}) on {self.n_pixels} pixels; recommended {self.recommended}{why}")


def estimate_noise(Y: np.ndarray) -> np.ndarray:
    """Noise of each pixel (L x n) by multiple regression of every band on all the others (the
    residuals: their mean square underestimates the noise variance by the factor (n - L + 1) / n,
    see :func:`regression_noise_power`)."""
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


def regression_noise_power(Y: np.ndarray) -> np.ndarray:
    """Each band's noise variance (L,) from :func:`estimate_noise`, over the residual degrees of
    freedom (n pixels less the L - 1 regressors)."""
    Y = np.asarray(Y, dtype=np.float64)
    L, n = Y.shape
    W = estimate_noise(Y)
    return np.einsum("ij,ij->i", W, W) / max(n - L + 1, 1)


def noise_edge_count(Y: np.ndarray, noise_power: np.ndarray) -> Tuple[int, np.ndarray, float]:
    """How many eigenvalues of the noise-whitened correlation matrix exceed the Marchenko-Pastur
    edge ``(1 + sqrt(L / n))^2``; the eigenvalues (largest first) and the edge.

    Bands with (almost) no noise of their own, which the others predict exactly (a band filled by
    interpolation, a copy), are left out: whitened, their tiny noise would make a dimension of its own.
    """
    Y = np.asarray(Y, dtype=np.float64)
    noise_power = np.asarray(noise_power, dtype=np.float64)
    own = noise_power > 1e-3 * float(np.median(noise_power))
    if own.sum() >= 3:
        Y, noise_power = Y[own], noise_power[own]
    L, n = Y.shape
    Z = Y / np.sqrt(np.maximum(noise_power, np.finfo(float).tiny))[:, None]
    eigenvalues = np.sort(np.linalg.eigvalsh(Z @ Z.T / n))[::-1]
    edge = (1.0 + math.sqrt(L / n)) ** 2
    return int(np.count_nonzero(eigenvalues > edge)), eigenvalues, edge


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
    regression_noise = regression_noise_power(Y)
    k_rmt, whitened, edge = noise_edge_count(Y, regression_noise)
    # HySime as published: the residuals' plain mean square
    k_hysime, signal, noise = hysime(Y, regression_noise * max(n - L + 1, 1) / n)
    k_spatial = None if neighbour_noise is None else hysime(Y, neighbour_noise)[0]
    k_hfc, correlation, covariance = hfc(Y, far)
    return CountEstimate(k_rmt, k_hysime, k_spatial, k_hfc, far, n, signal, noise, correlation, covariance,
                         whitened, edge)


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
