"""The classical baseline: VCA endmembers, then FCLS abundances.

* :func:`vca` is Vertex Component Analysis (J. M. P. Nascimento and J. M. Bioucas-Dias, "Vertex
  component analysis: a fast algorithm to unmix hyperspectral data", IEEE TGRS 43(4), 2005),
  written here from the paper's description.
* :func:`fcls` is fully constrained least squares (abundances >= 0, summing to one), solved
  exactly for all pixels at once by an active-set method on the small P x P normal equations.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from .errors import InputError

FCLS_CHUNK = 65536     # pixels solved together (bounds the (chunk, P+1, P+1) KKT stack)


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
# FCLS

def fcls(Y: np.ndarray, E: np.ndarray, max_iter: int = 0) -> np.ndarray:
    """Fully constrained least-squares abundances (P, N) of pixels ``Y`` (L, N) given ``E`` (L, P).

    Each pixel solves ``min ||y - E a||`` subject to ``a >= 0`` and ``sum(a) = 1``. The solver is
    an exact primal active-set method (Lawson-Hanson adapted to the simplex) run on all pixels
    of a chunk at once; ``max_iter`` (default ``10 P + 20``) bounds its steps.
    """
    Y = np.asarray(Y, dtype=np.float64)
    E = np.asarray(E, dtype=np.float64)
    if Y.ndim != 2 or E.ndim != 2 or Y.shape[0] != E.shape[0]:
        raise InputError(f"fcls needs Y (bands, pixels) and E (bands, P) with equal band counts; "
                         f"got {Y.shape} and {E.shape}")
    P = E.shape[1]
    G = E.T @ E
    G = G + 1e-10 * max(float(np.trace(G)) / P, 1e-300) * np.eye(P)   # keeps the KKT systems regular
    B = (Y.T @ E)   # (N, P): E^T y per pixel
    iters = max_iter or 10 * P + 20
    out = np.empty((Y.shape[1], P))
    for start in range(0, Y.shape[1], FCLS_CHUNK):
        out[start:start + FCLS_CHUNK] = _simplex_qp(G, B[start:start + FCLS_CHUNK], iters)
    return out.T


def vca_fcls(Y: np.ndarray, P: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """VCA endmembers (L, P) and their FCLS abundances (P, N)."""
    E, _ = vca(Y, P, seed)
    return E, fcls(Y, E)


def _simplex_qp(G: np.ndarray, B: np.ndarray, max_iter: int) -> np.ndarray:
    """Minimise ``a^T G a / 2 - b^T a`` over the simplex for every row ``b`` of ``B`` (n, P).

    State per pixel: the passive set (entries allowed to be positive) and a feasible point that
    is, when ``settled``, optimal on it. A settled pixel frees the entry whose gradient is the
    most below that of the passive set, or stops when none is; an unsettled one solves the
    equality-constrained problem on its passive set and moves as far towards it as stays feasible.
    """
    n, P = B.shape
    scale = float(np.abs(np.diag(G)).max()) + float(np.abs(B).max()) + 1e-300
    tol = 1e-12 * scale
    # start at the best single endmember
    first = np.argmin(0.5 * np.diag(G)[None, :] - B, axis=1)
    A = np.zeros((n, P))
    A[np.arange(n), first] = 1.0
    passive = A > 0
    settled = np.ones(n, dtype=bool)
    live = np.arange(n)
    for _ in range(max_iter):
        if live.size == 0:
            break
        a, m, s, b = A[live], passive[live], settled[live], B[live]
        # settled pixels: free the most promising entry, or finish
        grad = a @ G - b
        level = (grad * m).sum(axis=1) / m.sum(axis=1)
        gain = np.where(m, -np.inf, level[:, None] - grad)
        best = np.argmax(gain, axis=1)
        done = s & (gain[np.arange(len(live)), best] <= tol)
        free = s & ~done
        m[free, best[free]] = True
        # every unfinished pixel: solve on its passive set and step towards the solution
        work = ~done
        z = _solve_on_passive(G, b[work], m[work])
        aw, mw = a[work], m[work]
        ok = np.all(~mw | (z > 0), axis=1)
        # blocked pixels: go as far as feasible and drop the entries that reach zero
        ratio = np.where(mw & (z <= 0), aw / np.maximum(aw - z, 1e-300), np.inf)
        step = np.where(ok, 1.0, np.clip(ratio.min(axis=1), 0.0, 1.0))
        aw = aw + step[:, None] * (z - aw)
        mw &= ok[:, None] | (aw > tol)
        aw = np.where(mw, np.maximum(aw, 0.0), 0.0)
        a[work], m[work], s[work] = aw, mw, ok
        A[live], passive[live], settled[live] = a, m, s
        live = live[work]
    A = np.maximum(A, 0.0)
    return A / A.sum(axis=1, keepdims=True)


def _solve_on_passive(G: np.ndarray, B: np.ndarray, M: np.ndarray) -> np.ndarray:
    """For each row: argmin ``a^T G a / 2 - b^T a`` with ``sum(a) = 1`` and ``a = 0`` off ``M``."""
    n, P = B.shape
    K = np.zeros((n, P + 1, P + 1))
    K[:, :P, :P] = np.where(M[:, :, None] & M[:, None, :], G, 0.0)
    K[:, np.arange(P), np.arange(P)] += ~M
    K[:, :P, P] = M
    K[:, P, :P] = M
    rhs = np.concatenate([np.where(M, B, 0.0), np.ones((n, 1))], axis=1)
    return np.linalg.solve(K, rhs[:, :, None])[:, :P, 0]
