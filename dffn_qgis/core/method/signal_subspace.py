"""The image's signal subspace: what the fusion and the training see when ``denoise`` is on.

Noise is estimated per band by multiple regression (:mod:`~dffn_qgis.core.method.endmember_count`);
in noise-whitened coordinates the signal lives in the leading eigenvectors of the correlation
matrix, those above the noise edge (random matrix theory), and at least one per endmember. Pixels
are projected there and back: the noise that lies outside that subspace (most of it, with many
bands) is gone, the signal is untouched. The projection is linear, so it applies to pixel blocks,
to a band Gram matrix and to a sample alike, and the scalable path uses it the same way as the
exact one (docs/METHOD.md, "Denoising").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .abundance_lsq import even_columns
from .endmember_count import noise_edge_count, regression_noise_power

MAX_PIXELS = 8192          # pixels the subspace is estimated on (an even sample of the given ones)

NOTE = ("denoised: the feature fusion and the training see each pixel projected on the image's signal "
        "subspace; the endmember brightness, the abundances and the error map use the data as read")


@dataclass
class SignalSubspace:
    """Projection ``Y -> left @ (right @ Y)`` onto ``components`` noise-whitened components."""

    left: np.ndarray            # L x k: noise scale times the basis
    right: np.ndarray           # k x L: the basis over the noise scale
    components: int
    noise_edge: int
    snr_db: float
    mean_angle: float           # mean angle (rad) between the sample's pixels and their projections

    def project(self, Y):
        """Project the columns of ``Y`` (L x n, numpy or torch). Always by torch, whose thread count
        the run sets: numpy's BLAS may use another number of threads in another process (a Dask
        worker), and a last-bit difference in what the network sees changes the whole training."""
        if isinstance(Y, torch.Tensor):
            left = torch.from_numpy(self.left).to(Y.device, Y.dtype)
            right = torch.from_numpy(self.right).to(Y.device, Y.dtype)
            return left @ (right @ Y)
        return self.project(torch.from_numpy(np.ascontiguousarray(Y))).numpy()

    def project_gram(self, gram: np.ndarray) -> np.ndarray:
        """The Gram matrix (L x L) of the projected pixels, from that of the pixels."""
        M = torch.from_numpy(self.left).double() @ torch.from_numpy(self.right).double()
        return (M @ torch.from_numpy(np.asarray(gram, dtype=np.float64)) @ M.T).numpy()

    def to_dict(self) -> dict:
        return {"components": self.components, "noise_edge": self.noise_edge, "bands": int(self.left.shape[0]),
                "snr_db": round(self.snr_db, 2), "mean_removed_angle_rad": self.mean_angle}

    def note(self) -> str:
        return (f"{NOTE} ({self.components} of {self.left.shape[0]} components, {self.noise_edge} above the noise "
                f"edge; estimated SNR {self.snr_db:.1f} dB; the projection moves a pixel by {self.mean_angle:.4f} "
                f"rad on average)")


def signal_subspace(pixels: np.ndarray, n_endmembers: int) -> Optional[SignalSubspace]:
    """The signal subspace of ``pixels`` (L x n, the image's or a sample of them; estimated on an
    even sample of at most :data:`MAX_PIXELS`), or None where it cannot be estimated or would keep
    every band (too few pixels for the noise regression, no noise, as many components as bands)."""
    Y = even_columns(np.asarray(pixels, dtype=np.float64), MAX_PIXELS)
    L, n = Y.shape
    if n <= L + 1 or L < 3:
        return None
    # rounded to float32: numpy's BLAS may run another number of threads in another process (a Dask
    # worker), which changes the estimate's last bits, and what the network sees must not change
    noise_power = regression_noise_power(Y).astype(np.float32).astype(np.float64)
    if not np.all(np.isfinite(noise_power)) or float(noise_power.max()) <= 0.0:
        return None
    edge, _, _ = noise_edge_count(Y, noise_power)
    k = max(int(n_endmembers), edge)
    if k >= L:
        return None
    scale = np.sqrt(np.maximum(noise_power, 1e-12 * float(noise_power.max())))
    Z = torch.from_numpy(Y / scale[:, None])
    _, vectors = torch.linalg.eigh(Z @ Z.T / n)            # torch: see :meth:`SignalSubspace.project`
    basis = vectors.numpy()[:, ::-1][:, :k]
    left = (scale[:, None] * basis).astype(np.float32)
    right = (basis.T / scale[None, :]).astype(np.float32)
    projected = SignalSubspace(left, right, k, edge, 0.0, 0.0).project(Y)
    cos = np.einsum("ij,ij->j", projected, Y) / np.maximum(
        np.linalg.norm(projected, axis=0) * np.linalg.norm(Y, axis=0), 1e-300)
    snr = 10.0 * math.log10(max(float(np.einsum("ij,ij->", Y, Y)) / (n * float(noise_power.sum())), 1e-30))
    return SignalSubspace(left, right, k, edge, snr, float(np.mean(np.arccos(np.clip(cos, -1.0, 1.0)))))
