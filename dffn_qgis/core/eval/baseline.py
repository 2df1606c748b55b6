"""The classical baseline: VCA endmembers, then FCLS abundances.

* :func:`vca` is Vertex Component Analysis (J. M. P. Nascimento and J. M. Bioucas-Dias, "Vertex
  component analysis: a fast algorithm to unmix hyperspectral data", IEEE TGRS 43(4), 2005),
  written here from the paper's description.
* :func:`fcls` (in :mod:`.abundance_lsq`) is fully constrained least squares (abundances >= 0,
  summing to one).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from ..method.abundance_lsq import fcls
from ..errors import InputError


# ---------------------------------------------------------------------------------------------
# VCA

def vca(Y: np.ndarray, P: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Extract ``P`` endmembers from ``Y`` (bands L x pixels N).

    Returns ``(E, indices)``: ``E`` (L, P) are the chosen pixels projected onto the estimated
    signal subspace (the paper's denoised endmembers), ``indices`` the pixel index of each.
    ``seed`` drives the random projection directions.
    """
    Y = _check_image(Y, P)
    L, N = Y.shape
    rng = np.random.default_rng(seed)
    snr = estimate_snr(Y, P)
    if snr > 15.0 + 10.0 * np.log10(P):
        # high SNR: P-dimensional subspace through the origin, then projective projection
        U = _top_subspace(Y @ Y.T / N, P)
        X = U.T @ Y
        u = X.mean(axis=1)
        scale = u @ X
        scale = np.where(np.abs(scale) > 1e-12, scale, 1e-12)
        Z = X / scale
        indices = _pick_vertices(Z, P, rng)
        E = U @ X[:, indices]
    else:
        # low SNR: (P-1)-dimensional affine subspace, lifted by a constant coordinate
        mean = Y.mean(axis=1, keepdims=True)
        centred = Y - mean
        U = _top_subspace(centred @ centred.T / N, P - 1)
        X = U.T @ centred
        c = np.sqrt((X * X).sum(axis=0)).max()
        Z = np.vstack([X, np.full((1, N), c)])
        indices = _pick_vertices(Z, P, rng)
        E = U @ X[:, indices] + mean
    return E, indices


def estimate_snr(Y: np.ndarray, P: int) -> float:
    """The signal-to-noise ratio (dB) VCA uses to choose its projection (paper, eq. 13).

    Compares the power of the data with that of their projection onto the mean plus the P
    leading principal directions; +inf when the data lie exactly in that subspace.
    """
    L, N = Y.shape
    mean = Y.mean(axis=1, keepdims=True)
    centred = Y - mean
    U = _top_subspace(centred @ centred.T / N, P)
    power_all = float((Y * Y).sum()) / N
    projected = U.T @ centred
    power_sig = float((projected * projected).sum()) / N + float((mean * mean).sum())
    noise = power_all - power_sig
    signal = power_sig - P / L * power_all
    if noise <= 1e-12 * power_all:
        return float("inf")
    if signal <= 0:
        return float("-inf")
    return float(10.0 * np.log10(signal / noise))


def _top_subspace(C: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` leading eigenvectors (columns) of the symmetric matrix ``C``."""
    values, vectors = np.linalg.eigh(C)
    return vectors[:, np.argsort(values)[::-1][:k]]


def _pick_vertices(Z: np.ndarray, P: int, rng: np.random.Generator) -> np.ndarray:
    """VCA's loop: project on a random direction orthogonal to the vertices found so far and
    take the pixel at the extreme."""
    d = Z.shape[0]
    A = np.zeros((d, P))
    A[-1, 0] = 1.0
    indices = np.zeros(P, dtype=int)
    for i in range(P):
        w = rng.standard_normal(d)
        f = w - A @ (np.linalg.pinv(A) @ w)
        f /= max(np.linalg.norm(f), 1e-300)
        k = int(np.argmax(np.abs(f @ Z)))
        A[:, i] = Z[:, k]
        indices[i] = k
    return indices


def _check_image(Y, P: int) -> np.ndarray:
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim != 2:
        raise InputError(f"the image must be a (bands, pixels) matrix; got shape {Y.shape}")
    L, N = Y.shape
    if not 2 <= P <= min(L, N):
        raise InputError(f"the endmember count must lie in [2, min(bands, pixels)] = [2, {min(L, N)}]; got {P}")
    if not np.isfinite(Y).all():
        raise InputError("the image holds NaN or infinite values; keep only valid pixels")
    return Y


# ---------------------------------------------------------------------------------------------
# VCA + FCLS

def vca_fcls(Y: np.ndarray, P: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """VCA endmembers (L, P) and their FCLS abundances (P, N)."""
    E, _ = vca(Y, P, seed)
    return E, fcls(Y, E)


# ---------------------------------------------------------------------------------------------
# N-FINDR

def nfindr(Y: np.ndarray, P: int, seed: int = 0, max_sweeps: int = 20) -> Tuple[np.ndarray, np.ndarray]:
    """Extract ``P`` endmembers from ``Y`` (L, N) with N-FINDR (M. E. Winter, "N-FINDR: an
    algorithm for fast autonomous spectral end-member determination in hyperspectral data",
    Proc. SPIE 3753, 1999): the ``P`` pixels spanning the simplex of largest volume in the
    (P-1)-dimensional principal subspace, found by replacing one vertex at a time.

    Returns ``(E, indices)``: the chosen pixels (L, P) and their indices. Starts from VCA's
    pixels (of the same ``seed``).
    """
    Y = _check_image(Y, P)
    L, N = Y.shape
    mean = Y.mean(axis=1, keepdims=True)
    U = _top_subspace((Y - mean) @ (Y - mean).T / N, P - 1)
    Z = np.vstack([np.ones((1, N)), U.T @ (Y - mean)])          # P x N: affine coordinates
    _, indices = vca(Y, P, seed)
    indices = np.array(indices)
    for _ in range(max_sweeps):
        changed = False
        for i in range(P):
            S = Z[:, indices]
            try:
                inverse = np.linalg.inv(S)
            except np.linalg.LinAlgError:     # a flat simplex: any pixel that lifts it will do
                inverse = np.linalg.pinv(S)
            # the volume with vertex i replaced by pixel x is |det S| * |inverse[i] @ x|
            gain = np.abs(inverse[i] @ Z)
            best = int(np.argmax(gain))
            if gain[best] > 1.0 + 1e-9 and best not in indices:
                indices[i] = best
                changed = True
        if not changed:
            break
    return Y[:, indices], indices


def nfindr_fcls(Y: np.ndarray, P: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """N-FINDR endmembers (L, P) and their FCLS abundances (P, N)."""
    E, _ = nfindr(Y, P, seed)
    return E, fcls(Y, E)
