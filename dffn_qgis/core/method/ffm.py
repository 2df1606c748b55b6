"""Feature fusion module (FFM): spectral and spatial similarity, fused into the enhanced image.

``Yhat = norm(w * norm(S_B @ Y) + (1 - w) * norm(Y @ S_P))`` with ``S_B`` the L x L band
similarity and ``S_P`` the N x N pixel similarity, ``sim(V)_ij = exp(-||v_i - v_j||^2)``.
``S_P`` is never materialised: ``Y @ S_P`` is computed a block of pixels at a time, so memory
is bounded by ``N x block`` entries.

Band distances are sums over the N pixels, so without a bandwidth ``S_B`` turns into the
identity as images grow. The project scales them to a reference pixel count
(``spectral_pixels``, Samson's 9025 by default): ``d_ij = (N_ref / N) * ||b_i - b_j||^2``, which
is the literal formula on Samson and gives any image the band similarity a Samson-sized image
with the same pixel statistics would have. ``spectral_pixels=0`` keeps the raw sums.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..run.progress import Monitor, as_monitor


def minmax(x: torch.Tensor) -> torch.Tensor:
    """``(x - min x) / (max x - min x)`` over the whole array (0 where the array is constant)."""
    lo, hi = x.min(), x.max()
    span = hi - lo
    if span <= 0:
        return torch.zeros_like(x)
    return (x - lo) / span


def _sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between the rows of ``a`` and the rows of ``b``."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return d.clamp_(min=0.0)


def spectral_kernel(gram: torch.Tensor, n_pixels: int, spectral_pixels: int) -> torch.Tensor:
    """``S_B`` from the band Gram matrix ``Y @ Y.T`` of ``n_pixels`` pixels (see the module notes)."""
    sq = torch.diagonal(gram)
    d = (sq[:, None] + sq[None, :] - 2.0 * gram).clamp_(min=0.0)
    if spectral_pixels > 0:
        d = d * (float(spectral_pixels) / float(max(n_pixels, 1)))
    return torch.exp(-d)


def spectral_similarity(Y: torch.Tensor, spectral_pixels: int = 0) -> torch.Tensor:
    """``S_B``: L x L similarity of the bands (each band an N-vector)."""
    return spectral_kernel(Y @ Y.T, Y.shape[1], spectral_pixels)


def spatial_product(Y: torch.Tensor, block: int = 2048, monitor: Optional[Monitor] = None) -> torch.Tensor:
    """``Y @ S_P`` computed a block of pixels at a time (``S_P`` is symmetric).

    Peak extra memory is one N x ``block`` slice of ``S_P``.
    """
    monitor = as_monitor(monitor)
    _, n = Y.shape
    pixels = Y.T.contiguous()                       # N x L
    out = torch.empty_like(Y)
    for start in range(0, n, block):
        monitor.check()
        stop = min(start + block, n)
        kernel = torch.exp_(-_sq_distances(pixels, pixels[start:stop]))   # N x B: columns of S_P
        out[:, start:stop] = Y @ kernel
        monitor.progress(stop / n, "feature fusion: spatial similarity")
    return out


def spatial_product_dense(Y: torch.Tensor) -> torch.Tensor:
    """``Y @ S_P`` with ``S_P`` materialised: for tests on small inputs only."""
    return Y @ torch.exp(-_sq_distances(Y.T, Y.T))


def fuse(Y: torch.Tensor, w: float = 0.5, block: int = 2048, monitor: Optional[Monitor] = None,
         spectral_pixels: int = 0) -> torch.Tensor:
    """The FFM: the enhanced image (L x N) of ``Y`` (L x N)."""
    monitor = as_monitor(monitor)
    monitor.progress(0.0, "feature fusion: spectral similarity")
    spectral = minmax(spectral_similarity(Y, spectral_pixels) @ Y) if w > 0 else torch.zeros_like(Y)
    spatial = minmax(spatial_product(Y, block, monitor)) if w < 1 else torch.zeros_like(Y)
    return minmax(w * spectral + (1.0 - w) * spatial)


def fuse_array(Y: np.ndarray, w: float = 0.5, block: int = 2048, dtype=torch.float32,
               device: str = "cpu", monitor: Optional[Monitor] = None, spectral_pixels: int = 0) -> np.ndarray:
    """:func:`fuse` on a numpy L x N array; returns numpy of the same layout."""
    out = fuse(torch.as_tensor(np.ascontiguousarray(Y), dtype=dtype, device=device), w, block, monitor,
               spectral_pixels)
    return out.cpu().numpy()
