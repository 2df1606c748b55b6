"""The image's most extreme pixels, found in one pass over a raster of any size.

The scalable path trains on a few windows of a large image; a material that covers a small part
of it falls in a window spread over a grid only by luck. This finds, window by window, the pixels
at the ends of the data cloud (where pure pixels of every material sit when they exist) so that
training windows can be centred on them.

1. The signal subspace: the leading ``P`` eigenvectors of the band Gram matrix (the uncentred
   second moment, which the feature fusion accumulates anyway).
2. Each pixel's coordinates in it, divided by the first one (the mean direction): this removes the
   pixel's brightness, so that illumination does not make a dark pixel of a material "less
   extreme" than a bright one.
3. Random skewers through that projective space (the pixel purity index): the pixels at the two
   ends of each skewer are the candidates, kept with their spectra while the raster streams by.
4. The candidates grouped by spectral angle (within ``GROUP_ANGLE`` of the group's first member,
   the candidate that holds the most skewer ends), each group standing for one material: noise and
   brightness spread the pure pixels of a bright material over many candidates, which would
   otherwise outrank a dark one (water) in the next step. A group's mean spectrum is its member
   spectra averaged, so a little less noisy than any one of them.
5. Among the groups, ``P`` mutually distinct ones by ATGP on their mean spectra: each next group is
   the one least explained by those already chosen. A window is centred on the member of each chosen
   group that holds the most skewer ends.
"""
from __future__ import annotations

from typing import Iterable, List, Tuple

import numpy as np

SKEWERS = 256          # random directions of the pixel purity index
GROUP_ANGLE = 0.15     # rad: candidates this close to a group's first member join it


class SkewerExtremes:
    """Streams blocks of pixels and keeps the two ends of each random skewer."""

    def __init__(self, gram: np.ndarray, n_endmembers: int, seed: int = 0, skewers: int = SKEWERS):
        gram = np.asarray(gram, dtype=np.float64)
        values, vectors = np.linalg.eigh(gram)
        d = max(2, min(n_endmembers, gram.shape[0]))
        basis = vectors[:, np.argsort(values)[::-1][:d]]
        # the leading eigenvector is the mean direction: make its coordinate positive for real spectra
        if basis[:, 0].sum() < 0:
            basis[:, 0] = -basis[:, 0]
        self.basis = basis
        rng = np.random.default_rng(seed)
        directions = rng.standard_normal((d - 1, skewers))
        self.skewers = directions / np.linalg.norm(directions, axis=0, keepdims=True)
        self.best = np.full((2, skewers), -np.inf)          # max of +s and of -s per skewer
        self.where = np.full((2, skewers, 2), -1, dtype=np.int64)
        self.spectra = np.zeros((2, skewers, gram.shape[0]), dtype=np.float64)

    def update(self, Y: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
        """``Y``: L x n valid pixels; ``rows``, ``cols``: their positions in the image."""
        if Y.shape[1] == 0:
            return
        x = self.basis.T @ Y.astype(np.float64)
        scale = x[0]
        ok = scale > 1e-12 * max(1.0, float(np.abs(scale).max()))
        if not ok.any():
            return
        z = x[1:, ok] / scale[ok]
        idx = np.flatnonzero(ok)
        s = self.skewers.T @ z                              # skewers x n
        for side, values in enumerate((s, -s)):
            k = np.argmax(values, axis=1)
            v = values[np.arange(values.shape[0]), k]
            better = v > self.best[side]
            if better.any():
                self.best[side, better] = v[better]
                pix = idx[k[better]]
                self.where[side, better, 0] = rows[pix]
                self.where[side, better, 1] = cols[pix]
                self.spectra[side, better] = Y[:, pix].T

    def candidates(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The distinct candidate pixels: spectra (L x m), positions (m x 2), skewer ends held (m)."""
        found = self.where.reshape(-1, 2)
        seen = found[:, 0] >= 0
        positions, first, counts = np.unique(found[seen], axis=0, return_index=True, return_counts=True)
        spectra = self.spectra.reshape(-1, self.spectra.shape[-1])[seen][first].T
        return spectra, positions, counts


    def pick(self, count: int) -> List[Tuple[int, int]]:
        """(row, col) of ``count`` mutually distinct candidates, most distinct first (steps 4 and 5
        of the module's docstring)."""
        spectra, positions, ends = self.candidates()
        if positions.shape[0] == 0:
            return []
        groups = group_by_angle(spectra, ends)
        means = np.stack([spectra[:, g].mean(axis=1) for g in groups], axis=1)
        return [tuple(int(v) for v in positions[groups[i][0]]) for i in atgp(means, count)]


def group_by_angle(spectra: np.ndarray, weights: np.ndarray, angle: float = GROUP_ANGLE) -> List[np.ndarray]:
    """Groups of the columns of ``spectra`` (index arrays, heaviest first member first): the
    heaviest column not yet grouped starts a group, which takes every ungrouped column within
    ``angle`` (rad) of it."""
    unit = spectra / np.maximum(np.linalg.norm(spectra, axis=0, keepdims=True), 1e-300)
    free = np.ones(spectra.shape[1], dtype=bool)
    groups = []
    for first in np.argsort(-np.asarray(weights), kind="stable"):
        if not free[first]:
            continue
        close = free & (np.arccos(np.clip(unit[:, first] @ unit, -1.0, 1.0)) <= angle)
        close[first] = False
        members = np.concatenate([[first], np.flatnonzero(close)])
        free[members] = False
        groups.append(members)
    return groups


def atgp(spectra: np.ndarray, count: int) -> List[int]:
    """Indices of ``count`` columns of ``spectra``, each the one least explained by the previous
    ones (automatic target generation): the first has the largest norm."""
    Y = np.asarray(spectra, dtype=np.float64)
    chosen = [int(np.argmax(np.einsum("ij,ij->j", Y, Y)))]
    while len(chosen) < min(count, Y.shape[1]):
        U = Y[:, chosen]
        residual = Y - U @ np.linalg.lstsq(U, Y, rcond=None)[0]
        norms = np.einsum("ij,ij->j", residual, residual)
        norms[chosen] = -1.0
        nxt = int(np.argmax(norms))
        if norms[nxt] <= 0:
            break
        chosen.append(nxt)
    return chosen


def extreme_pixels(blocks: Iterable[Tuple[np.ndarray, np.ndarray, np.ndarray]], gram: np.ndarray,
                   n_endmembers: int, seed: int = 0) -> List[Tuple[int, int]]:
    """(row, col) of ``n_endmembers`` mutually distinct extreme pixels of the image streamed as
    ``blocks`` of (L x n valid pixels, their rows, their columns)."""
    finder = SkewerExtremes(gram, n_endmembers, seed)
    for Y, rows, cols in blocks:
        finder.update(Y, rows, cols)
    return finder.pick(n_endmembers)
