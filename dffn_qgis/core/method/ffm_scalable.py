"""The feature fusion module for images too large for the exact product (the scalable path).

The enhanced spectrum of a pixel depends on the whole image only through a few global
quantities; once they are known, any block of pixels can be enhanced on its own:

* the spectral term ``S_B @ y`` needs the L x L band similarity, computed exactly from the
  band Gram matrix of all valid pixels (:class:`BandMoments`, which the raster's scan carries, so
  no pass of its own), with the band distances scaled to ``spectral_pixels`` (see
  :mod:`dffn_qgis.core.method.ffm`);
* the spatial term ``(Y @ S_P)[:, j] = sum_i y_i exp(-||y_i - y_j||^2)`` is approximated with the
  Nystroem method on ``m`` landmark pixels ``Z`` drawn at random from the valid pixels (the same
  :class:`BandMoments` keeps a uniform sample): ``Y @ S_P ~ (Y @ K_nm) @ inv(K_mm + eps I) @ K_mn``.
  ``Y @ K_nm`` (L x m) is one streaming pass; afterwards a pixel costs ``m`` kernel values. The
  error is measured during the run: the exact term of ``CHECK_PIXELS`` random pixels is
  accumulated in the same pass and compared with the approximation; while the relative error
  exceeds ``ffm_tolerance`` the landmarks are doubled (nested, so only the new ones cost a pass),
  up to ``MAX_LANDMARK_FACTOR`` times the first try;
* the three min-max normalisations are fixed on the pixels the network trains on
  (:meth:`ScalableFusion.normalise`), as the exact path fixes them on the image it trains on:
  a pass over every pixel only for them would cost as much as one of the spatial term's passes
  (fixed on every pixel, on a sample or on the windows, the trained endmembers differed by
  seed-to-seed scatter only: docs/BENCHMARKS.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import numpy as np
import torch

from ..run.config import DFFNParams
from .ffm import _sq_distances, spectral_kernel
from ..run.progress import Monitor, as_monitor
from ..io.raster_source import windows
from .extreme_pixels import SkewerExtremes
from .signal_subspace import SignalSubspace

CHECK_PIXELS = 64
CHUNK = 4096                 # pixels per kernel evaluation: bounds the n x m kernel block in memory
MAX_LANDMARK_FACTOR = 8
MAX_LANDMARKS = 8192
_RIDGE = 1e-8                # added to K_mm's diagonal (which is 1) before the Cholesky solve


def valid_blocks(source, device: torch.device, monitor: Monitor, label: str,
                 positions: bool = False) -> Iterator:
    """The valid pixels of each window of ``source`` as L x n float32 tensors on ``device``; with
    ``positions``, (tensor, rows, columns) with the pixels' places in the image."""
    tiles = list(windows(source.height, source.width))
    for k, (row0, col0, rows, cols) in enumerate(tiles):
        monitor.check()
        data, valid = source.read(row0, col0, rows, cols)
        if valid.any():
            Yb = torch.from_numpy(np.ascontiguousarray(data[:, valid])).to(device)
            if positions:
                rr, cc = np.nonzero(valid)
                yield Yb, rr + row0, cc + col0
            else:
                yield Yb
        monitor.progress((k + 1) / len(tiles), f"{label} ({k + 1} of {len(tiles)} windows)")


def _kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``exp(-||a_i - b_j||^2)`` for the rows of ``a`` and ``b``."""
    return torch.exp_(-_sq_distances(a, b))


class BandMoments:
    """The band Gram matrix (``Y @ Y.T``, L x L, float64) of the valid pixels and a uniform random
    sample of ``sample_size`` of them, from blocks of pixels streamed once, in any blocking: each
    pixel draws a random key (one seeded stream) and the sample is the pixels with the smallest
    keys, in key order (so already shuffled). Any pass that sees every valid pixel can carry it:
    the raster's scan does (``RasterSource(scan_with=...)``), which spares the fusion a pass.

    ``start(n_bands)``, ``update(values)`` per block (L x n), ``finish(divisor)``: the values seen
    are divided by ``divisor`` (the scan sees them before the scaling is known)."""

    def __init__(self, sample_size: int, seed: int):
        self.sample_size, self.seed = int(sample_size), seed
        self.gram: Optional[np.ndarray] = None
        self.sample: Optional[np.ndarray] = None     # L x k float32, after finish()
        self.count = 0

    @classmethod
    def for_params(cls, params: DFFNParams) -> "BandMoments":
        """Sized for the most landmarks the fusion may use, plus its check pixels."""
        return cls(min(MAX_LANDMARKS, params.landmarks * MAX_LANDMARK_FACTOR) + CHECK_PIXELS, params.seed)

    def start(self, n_bands: int) -> None:
        self.gram = np.zeros((n_bands, n_bands), dtype=np.float64)
        self.count = 0
        self._rng = np.random.default_rng(self.seed)
        self._keys = np.zeros(0)
        self._kept = np.zeros((n_bands, 0), dtype=np.float32)
        self.sample = None

    def update(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float32)
        n = values.shape[1]
        if n == 0:
            return
        self.gram += values @ values.T
        self.count += n
        keys = self._rng.random(n)
        if self._keys.size >= self.sample_size:
            take = np.flatnonzero(keys < self._keys.max())
            if take.size == 0:
                return
            keys, values = keys[take], values[:, take]
        keys = np.concatenate([self._keys, keys])
        kept = np.concatenate([self._kept, values], axis=1)
        if keys.size > self.sample_size:
            best = np.argpartition(keys, self.sample_size - 1)[:self.sample_size]
            keys, kept = keys[best], kept[:, best]
        self._keys, self._kept = keys, kept

    @classmethod
    def gather(cls, source, params: DFFNParams, monitor: Monitor) -> "BandMoments":
        """The moments of ``source`` in a pass of their own (when no scan gathered them)."""
        moments = cls.for_params(params)
        moments.start(source.n_bands)
        for Yb in valid_blocks(source, torch.device("cpu"), monitor, "feature fusion: band similarity"):
            moments.update(Yb.numpy())
        return moments.finish()

    def finish(self, divisor: float = 1.0) -> "BandMoments":
        order = np.argsort(self._keys, kind="stable")
        self.sample = np.ascontiguousarray(self._kept[:, order] / np.float32(divisor))
        self.gram /= float(divisor) ** 2
        del self._keys, self._kept
        return self


@dataclass
class ScalableFusion:
    """What it takes to enhance any block of pixels (L x n) as the FFM does on the whole image."""

    w: float
    spectral: Optional[torch.Tensor]        # S_B (L x L) or None when w == 0
    landmarks: Optional[torch.Tensor]       # Z (m x L) or None when w == 1
    projection: Optional[torch.Tensor]      # (Y K_nm) inv(K_mm + eps I), L x m
    spec_range: tuple = (0.0, 1.0)
    spat_range: tuple = (0.0, 1.0)
    fused_range: tuple = (0.0, 1.0)
    fill: Optional[np.ndarray] = None       # mean enhanced spectrum (L,)
    relative_error: float = 0.0             # measured error of the spatial term (check pixels)
    n_landmarks: int = 0
    extreme_centres: list = field(default_factory=list)     # (row, col) of the extreme pixels found
    subspace: Optional[SignalSubspace] = None   # pixels are projected on it before anything else (denoise)

    # -- applying ------------------------------------------------------------------------------
    def raw_terms(self, Yb: torch.Tensor):
        Yb = self.seen(Yb)
        spec = self.spectral @ Yb if self.spectral is not None else None
        spat = None
        if self.landmarks is not None:
            spat = torch.cat([self.projection @ _kernel(self.landmarks, part.T) for part in _chunks(Yb)], dim=1)
            if self.subspace is not None:
                # ``Y S_P`` of projected pixels lies on the subspace; the Nystroem factor's inverse
                # (an ill-conditioned kernel matrix) amplifies float32 rounding into other directions,
                # about 2e-5 of the term, which would give the image full rank (docs/METHOD.md, "The
                # first convolution on the image's span"): projecting again removes only that
                spat = self.subspace.project(spat)
        return spec, spat

    def seen(self, Yb: torch.Tensor) -> torch.Tensor:
        """The pixels as the fusion sees them: on the signal subspace when denoising."""
        return Yb if self.subspace is None else self.subspace.project(Yb)

    def _combined(self, Yb: torch.Tensor) -> torch.Tensor:
        return self._combine(*self.raw_terms(Yb), like=Yb)

    def _combine(self, spec: Optional[torch.Tensor], spat: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
        """The weighted sum of the two min-max scaled terms (either may be None: not used)."""
        out = torch.zeros_like(like)
        if spec is not None:
            out += self.w * _scaled(spec, self.spec_range)
        if spat is not None:
            out += (1.0 - self.w) * _scaled(spat, self.spat_range)
        return out

    def enhance(self, Yb: torch.Tensor) -> torch.Tensor:
        """The enhanced spectra (L x n) of the pixels ``Yb`` (L x n, scaled input)."""
        return _scaled(self._combined(Yb), self.fused_range)

    def enhance_window(self, data: np.ndarray, valid: np.ndarray, device: torch.device) -> np.ndarray:
        """An L x h x w window of the enhanced image; invalid pixels get the mean enhanced spectrum."""
        image = np.empty(data.shape, dtype=np.float32)
        image[:] = self.fill[:, None, None]
        if valid.any():
            Yb = torch.from_numpy(np.ascontiguousarray(data[:, valid])).to(device)
            image[:, valid] = self.enhance(Yb).cpu().numpy()
        return image

    def to(self, device: torch.device) -> "ScalableFusion":
        """Move the fitted tensors to ``device`` (in place)."""
        for name in ("spectral", "landmarks", "projection"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(device))
        return self

    # -- fitting -------------------------------------------------------------------------------
    @classmethod
    def fit(cls, source, params: DFFNParams, device: torch.device, n_valid: int,
            monitor: Optional[Monitor] = None, extremes: int = 0,
            moments: Optional[BandMoments] = None, subspace: Optional[SignalSubspace] = None) -> "ScalableFusion":
        """Fit both terms to ``source``: ``moments`` (the band Gram matrix and a pixel sample, as
        the raster's scan gathered them; computed here in a pass of its own when None), then the
        spatial term's passes. With ``extremes``, the first of them also finds that many extreme
        pixels (``extreme_centres``: (row, col), most distinct first;
        :mod:`~dffn_qgis.core.method.extreme_pixels`). With ``subspace`` every pixel is projected
        on it first (the moments too). The normalisations are fixed afterwards, on the pixels to
        train on (:meth:`normalise`)."""
        monitor = as_monitor(monitor)
        w = params.w
        if moments is None:
            moments = BandMoments.gather(source, params, monitor.sub(0.0, 0.2))
            monitor = monitor.sub(0.2, 1.0)
        gram_np, sample = moments.gram, moments.sample
        if subspace is not None:
            gram_np, sample = subspace.project_gram(gram_np), subspace.project(sample)
        gram = torch.from_numpy(gram_np).to(device)
        spectral = spectral_kernel(gram, n_valid, params.spectral_pixels).float() if w > 0 else None
        fusion = cls(w=w, spectral=spectral, landmarks=None, projection=None, subspace=subspace)
        finder = SkewerExtremes(gram_np, extremes, params.seed) if extremes else None
        if w < 1:
            candidates = torch.from_numpy(sample.T.copy()).to(device)
            first = min(params.landmarks, n_valid)
            most = min(n_valid, MAX_LANDMARKS, first * MAX_LANDMARK_FACTOR)
            fusion._fit_spatial(source, candidates, first, most, params.ffm_tolerance, device, monitor, finder)
        elif finder is not None:
            for Yb, rows, cols in valid_blocks(source, torch.device("cpu"), monitor, "extreme pixels", positions=True):
                finder.update(fusion.seen(Yb).numpy(), rows, cols)
        fusion.extreme_centres = finder.pick(extremes) if finder is not None else []
        return fusion

    def _fit_spatial(self, source, candidates: torch.Tensor, first: int, most: int, tolerance: float,
                     device: torch.device, monitor: Monitor, finder: Optional[SkewerExtremes] = None) -> None:
        n_check = min(CHECK_PIXELS, max(1, len(candidates) // 4))
        check = candidates[-n_check:]
        pool = candidates[:-n_check] if len(candidates) > n_check else candidates
        most = min(most, len(pool))
        m = min(first, most)
        columns = torch.zeros((source.n_bands, 0), dtype=torch.float64, device=device)
        exact_check = None
        rounds = max(1, int(math.ceil(math.log2(max(most, 1) / max(m, 1)))) + 1)
        for r in range(rounds):
            new = pool[columns.shape[1]:m]
            acc = torch.zeros((source.n_bands, len(new)), dtype=torch.float64, device=device)
            acc_check = (torch.zeros((source.n_bands, n_check), dtype=torch.float64, device=device)
                         if exact_check is None else None)
            label = f"feature fusion: spatial similarity, {m} landmarks"
            # the first pass also streams the pixels past the extreme-pixel finder
            seen_by = finder if r == 0 else None
            for block in valid_blocks(source, device, monitor.sub(r / rounds, (r + 1) / rounds), label,
                                      positions=seen_by is not None):
                if seen_by is not None:
                    Yb, rows, cols = block
                    Yb = self.seen(Yb)
                    seen_by.update(Yb.cpu().numpy(), rows, cols)
                else:
                    Yb = self.seen(block)
                for part in _chunks(Yb):
                    acc += (part @ _kernel(part.T, new)).double()
                    if acc_check is not None:
                        acc_check += (part @ _kernel(part.T, check)).double()
            if acc_check is not None:
                exact_check = acc_check
            columns = torch.cat([columns, acc], dim=1)
            Z = pool[:m]
            self.landmarks, self.n_landmarks = Z, m
            self.projection = _solve_psd(columns, _kernel(Z.double(), Z.double())).float()
            approx = self.projection.double() @ _kernel(Z.double(), check.double())
            self.relative_error = float(torch.linalg.norm(approx - exact_check)
                                        / torch.linalg.norm(exact_check).clamp_min(1e-30))
            if self.relative_error <= tolerance or m >= most:
                break
            m = min(2 * m, most)

    def normalise(self, blocks: Sequence[torch.Tensor]) -> None:
        """Fix the three min-max normalisations on the pixels of ``blocks`` (L x n tensors: those
        the network trains on), as the exact path fixes them on the image it trains on, and the
        fill (the spectrum invalid pixels get) at those pixels' mean enhanced spectrum."""
        terms = [self.raw_terms(Yb) for Yb in blocks if Yb.shape[1]]
        if not terms:
            raise ValueError("no valid pixel to fix the fusion's normalisation on")
        spec = torch.cat([t[0] for t in terms], dim=1) if self.spectral is not None else None
        spat = torch.cat([t[1] for t in terms], dim=1) if self.landmarks is not None else None
        if spec is not None:
            self.spec_range = (float(spec.min()), float(spec.max()))
        if spat is not None:
            self.spat_range = (float(spat.min()), float(spat.max()))
        combined = self._combine(spec, spat, like=spec if spec is not None else spat)
        self.fused_range = (float(combined.min()), float(combined.max()))
        mean = combined.double().mean(dim=1, keepdim=True).float()
        self.fill = _scaled(mean, self.fused_range)[:, 0].cpu().numpy()


def _chunks(Yb: torch.Tensor):
    """Column slices of at most :data:`CHUNK` pixels."""
    for start in range(0, Yb.shape[1], CHUNK):
        yield Yb[:, start:start + CHUNK]


def _scaled(x: torch.Tensor, value_range: tuple) -> torch.Tensor:
    """``(x - lo) / (hi - lo)``, 0 where the range is empty (as :func:`dffn_qgis.core.method.ffm.minmax`)."""
    lo, hi = value_range
    if not hi > lo:
        return torch.zeros_like(x)
    return (x - lo) / (hi - lo)


def _solve_psd(C: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """``C @ inv(K + eps I)`` for a kernel matrix ``K`` (float64), by Cholesky with a small ridge.

    (A Cholesky solve takes a fraction of a second where an eigendecomposition of the same
    matrix took tens of seconds on a busy 2-core machine.)
    """
    eye = torch.eye(K.shape[0], dtype=K.dtype, device=K.device)
    ridge = _RIDGE
    while True:
        factor, info = torch.linalg.cholesky_ex(K + ridge * eye)
        if int(info) == 0:
            return torch.cholesky_solve(C.T, factor).T
        ridge *= 100.0
