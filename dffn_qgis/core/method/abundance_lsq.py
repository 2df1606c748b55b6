"""Abundances from known endmembers by constrained least squares, for all pixels at once.

* :func:`fcls`: fully constrained (``a >= 0``, ``sum(a) = 1``), the classical baseline's
  abundances.
* :func:`nnls`: non-negative only. Its solution ``E a`` is the projection of the pixel on the
  cone the endmembers span, which is also the point of that cone at the smallest spectral angle
  from the pixel: these are the abundances that minimise DFFN's reconstruction term
  ``SAD(Y, E A)`` for given endmembers (the refinement of docs/METHOD.md, "Abundance refinement").

Both solve the small P x P normal equations exactly with one primal active-set method (Lawson and
Hanson's NNLS, adapted to the simplex for FCLS) run on a whole chunk of pixels at once.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError

CHUNK = 65536     # pixels solved together (bounds the (chunk, P+1, P+1) system stack)
REFINED_NOTE = ("abundances refined: each pixel's non-negative least-squares fit on the learned endmembers "
                "(the smallest reconstruction angle they allow), scaled to sum to one")


def fcls(Y: np.ndarray, E: np.ndarray, max_iter: int = 0) -> np.ndarray:
    """Fully constrained least-squares abundances (P, N) of pixels ``Y`` (L, N) given ``E`` (L, P).

    Each pixel solves ``min ||y - E a||`` subject to ``a >= 0`` and ``sum(a) = 1``; ``max_iter``
    (default ``10 P + 20``) bounds the active-set steps.
    """
    return _solve_all(Y, E, max_iter, simplex=True, what="fcls")


def nnls(Y: np.ndarray, E: np.ndarray, max_iter: int = 0, sum_weight: float = 0.0) -> np.ndarray:
    """Non-negative least-squares abundances (P, N) of pixels ``Y`` (L, N) given ``E`` (L, P).

    Each pixel solves ``min ||y - E a||^2 + sum_weight^2 (sum(a) - 1)^2`` subject to ``a >= 0``:
    with ``sum_weight = 0`` (plain NNLS) the sum is free, a larger weight pulls it towards one (FCLS
    in the limit); scale the result with :func:`dffn_qgis.core.run.result.sum_to_one`. A pixel with no
    positive correlation with any endmember gets all zeros.
    """
    return _solve_all(Y, E, max_iter, simplex=False, what="nnls", sum_weight=sum_weight)


def fit_angles(Y: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """Angle (rad) between each pixel (column of ``Y``, L x N) and its fit (the same column of
    ``fit``); a zero spectrum is at right angles to everything."""
    cos = (Y * fit).sum(0) / np.maximum(np.linalg.norm(Y, axis=0) * np.linalg.norm(fit, axis=0), 1e-300)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def even_columns(Y: np.ndarray, count: int) -> np.ndarray:
    """``Y`` (L x N), or ``count`` of its columns evenly spread over it when N is larger (the pixels
    a fit over the image looks at)."""
    if Y.shape[1] <= count:
        return Y
    return Y[:, np.linspace(0, Y.shape[1] - 1, count).astype(np.int64)]


def _solve_all(Y, E, max_iter: int, simplex: bool, what: str, sum_weight: float = 0.0) -> np.ndarray:
    Y = np.asarray(Y, dtype=np.float64)
    E = np.asarray(E, dtype=np.float64)
    if Y.ndim != 2 or E.ndim != 2 or Y.shape[0] != E.shape[0]:
        raise InputError(f"{what} needs Y (bands, pixels) and E (bands, P) with equal band counts; "
                         f"got {Y.shape} and {E.shape}")
    P = E.shape[1]
    G = E.T @ E
    G = G + 1e-10 * max(float(np.trace(G)) / P, 1e-300) * np.eye(P)   # keeps the systems regular
    B = Y.T @ E    # (N, P): E^T y per pixel
    if sum_weight:   # the soft sum term: a row sum_weight * 1^T appended to E, sum_weight to each y
        G = G + sum_weight ** 2
        B += sum_weight ** 2
    iters = max_iter or 10 * P + 20
    out = np.empty((Y.shape[1], P))
    for start in range(0, Y.shape[1], CHUNK):
        out[start:start + CHUNK] = _active_set_qp(G, B[start:start + CHUNK], iters, simplex)
    return out.T


def _active_set_qp(G: np.ndarray, B: np.ndarray, max_iter: int, simplex: bool) -> np.ndarray:
    """Minimise ``a^T G a / 2 - b^T a`` over ``a >= 0`` (and ``sum(a) = 1`` when ``simplex``) for
    every row ``b`` of ``B`` (n, P).

    State per pixel: the passive set (entries allowed to be positive) and a feasible point that
    is, when ``settled``, optimal on it. A settled pixel frees the entry whose gradient is the
    most below the passive set's level (the sum constraint's multiplier, or zero without it), or
    stops when none is; an unsettled one solves the problem on its passive set and moves as far
    towards that solution as stays feasible.
    """
    n, P = B.shape
    scale = float(np.abs(np.diag(G)).max()) + float(np.abs(B).max()) + 1e-300
    tol = 1e-12 * scale
    A = np.zeros((n, P))
    if simplex:    # start at the best single endmember
        first = np.argmin(0.5 * np.diag(G)[None, :] - B, axis=1)
        A[np.arange(n), first] = 1.0
    passive = A > 0          # NNLS starts at zero with nothing passive
    settled = np.ones(n, dtype=bool)
    live = np.arange(n)
    for _ in range(max_iter):
        if live.size == 0:
            break
        a, m, s, b = A[live], passive[live], settled[live], B[live]
        # settled pixels: free the most promising entry, or finish
        grad = a @ G - b
        if simplex:
            level = (grad * m).sum(axis=1) / m.sum(axis=1)
        else:
            level = np.zeros(len(live))
        gain = np.where(m, -np.inf, level[:, None] - grad)
        best = np.argmax(gain, axis=1)
        done = s & (gain[np.arange(len(live)), best] <= tol)
        free = s & ~done
        m[free, best[free]] = True
        # every unfinished pixel: solve on its passive set and step towards the solution
        work = ~done
        z = _solve_on_passive(G, b[work], m[work], simplex)
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
    return A / A.sum(axis=1, keepdims=True) if simplex else A


def _solve_on_passive(G: np.ndarray, B: np.ndarray, M: np.ndarray, simplex: bool) -> np.ndarray:
    """For each row: argmin ``a^T G a / 2 - b^T a`` with ``a = 0`` off ``M`` (and ``sum(a) = 1``
    when ``simplex``)."""
    n, P = B.shape
    size = P + 1 if simplex else P
    K = np.zeros((n, size, size))
    K[:, :P, :P] = np.where(M[:, :, None] & M[:, None, :], G, 0.0)
    K[:, np.arange(P), np.arange(P)] += ~M
    rhs = np.where(M, B, 0.0)
    if simplex:
        K[:, :P, P] = M
        K[:, P, :P] = M
        rhs = np.concatenate([rhs, np.ones((n, 1))], axis=1)
    return np.linalg.solve(K, rhs[:, :, None])[:, :P, 0]
