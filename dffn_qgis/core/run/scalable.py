"""The scalable path: DFFN on images too large for the exact method, in bounded memory.

1. Feature fusion with the exact band similarity and a Nystroem approximation of the pixel
   similarity whose error is measured during the run (:mod:`dffn_qgis.core.method.ffm_scalable`).
2. Training on windows of ``window`` x ``window`` pixels: one centred on each of the image's
   most extreme pixels (:mod:`dffn_qgis.core.method.extreme_pixels`, found during the fusion's
   passes: where pure pixels of rare materials are), the rest spread over the image (one per cell of a grid, placed at random in the
   cell where most pixels are valid), ``train_windows`` in all (a third at least on the grid), as one
   batch: the endmember module's input is the windows' valid pixels, a number that does not grow
   with the image.
3. Abundances of every pixel from the trained abundance module, tile by tile; each tile is read
   with a border of ``3 * padding`` pixels (the module's reach), so tiles join without seams.
   On a GPU that runs out of memory a tile is split in four, down to 32 pixels, and then the
   rest runs on the CPU.
"""
from __future__ import annotations

import math
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..method.abundance_lsq import REFINED_NOTE, nnls
from .config import DFFNParams
from ..errors import InputError
from ..method.ffm_scalable import BandMoments, ScalableFusion
from ..method.model import spectral_angle
from .progress import Monitor
from ..io.raster_source import windows
from .result import UnmixResult, no_abundance_note, sum_to_one
from .driver import AbundanceMaps, Strategy, TrainingBatch, denoiser, drive

_TRIES = 8             # random placements tried per training window
MIN_TILE = 32          # smallest tile before a GPU out of memory sends the work to the CPU


def aem_reach(params: DFFNParams) -> int:
    """Pixels beyond a tile that its abundances depend on (three convolutions of the AEM)."""
    return 3 * params.padding


def training_windows(valid: np.ndarray, params: DFFNParams,
                     centres: Sequence[Tuple[int, int]] = ()) -> List[Tuple[int, int, int, int]]:
    """(row0, col0, rows, cols) of the ``params.train_windows`` training windows: one centred on
    each of ``centres`` (the image's extreme pixels, most distinct first) that is not inside an
    earlier one, then one per cell of a grid, where most pixels are valid; a third of the windows
    at least stay on the grid."""
    height, width = valid.shape
    side_r, side_c = min(params.window, height), min(params.window, width)
    most = params.train_windows - max(1, params.train_windows // 3)
    around = []
    for r, c in centres:
        if len(around) >= most:
            break
        if any(r0 <= r < r0 + rows and c0 <= c < c0 + cols for r0, c0, rows, cols in around):
            continue
        r0 = int(np.clip(r - side_r // 2, 0, height - side_r))
        c0 = int(np.clip(c - side_c // 2, 0, width - side_c))
        around.append((r0, c0, side_r, side_c))
    return around + _grid_windows(valid, params, params.train_windows - len(around))


def _grid_windows(valid: np.ndarray, params: DFFNParams, count: int) -> List[Tuple[int, int, int, int]]:
    height, width = valid.shape
    rng = np.random.default_rng(params.seed)
    side_r, side_c = min(params.window, height), min(params.window, width)
    grid_r = max(1, min(count, round(math.sqrt(count * height / width))))
    grid_c = max(1, math.ceil(count / grid_r))
    cells = [(i, j) for i in range(grid_r) for j in range(grid_c)]
    if len(cells) > count:
        cells = [cells[k] for k in sorted(rng.choice(len(cells), count, replace=False))]
    chosen = []
    for i, j in cells:
        r_lo, r_hi = (i * height) // grid_r, ((i + 1) * height) // grid_r
        c_lo, c_hi = (j * width) // grid_c, ((j + 1) * width) // grid_c
        best, best_count = None, 0
        for _ in range(_TRIES):
            r0 = int(np.clip(rng.integers(r_lo, max(r_lo, r_hi - side_r) + 1), 0, height - side_r))
            c0 = int(np.clip(rng.integers(c_lo, max(c_lo, c_hi - side_c) + 1), 0, width - side_c))
            n = int(valid[r0:r0 + side_r, c0:c0 + side_c].sum())
            if n > best_count:
                best, best_count = (r0, c0, side_r, side_c), n
            if n == side_r * side_c:
                break
        if best is not None:
            chosen.append(best)
    return chosen


def training_batch(source, fusion: ScalableFusion, boxes, device: torch.device):
    """The windows' enhanced images (B x L x h x w), their valid pixels' input (L x n) and indices;
    the fusion's normalisation is fixed on these pixels first (:meth:`ScalableFusion.normalise`)."""
    read = [source.read(*box) for box in boxes]
    spectra = [np.ascontiguousarray(data[:, valid]) for data, valid in read]
    fusion.normalise([torch.from_numpy(Y).to(device) for Y in spectra])
    images, index = [], []
    for k, ((data, valid), (_, _, rows, cols)) in enumerate(zip(read, boxes)):
        images.append(fusion.enhance_window(data, valid, device))
        index.append(k * rows * cols + np.flatnonzero(valid.ravel()))
    return np.stack(images), np.concatenate(spectra, axis=1), np.concatenate(index)


class TilePredictor:
    """Abundances and reconstruction error of every pixel, tile by tile, from a trained model."""

    def __init__(self, model, source, fusion: ScalableFusion, endmembers: np.ndarray, params: DFFNParams,
                 device: torch.device, monitor: Monitor, brightness: Optional[np.ndarray] = None,
                 sum_weight: float = 0.0):
        self.model, self.source, self.fusion = model, source, fusion
        self.E = torch.from_numpy(np.ascontiguousarray(endmembers, dtype=np.float32))
        # the factors the network's endmembers were rescaled by: its abundances are divided by them
        self.brightness = (np.ones(endmembers.shape[1], np.float32) if brightness is None
                           else np.asarray(brightness, np.float32))
        self.reach, self.device, self.monitor = aem_reach(params), device, monitor
        P = endmembers.shape[1]
        self.abundances = np.full((P, source.height, source.width), np.nan, dtype=np.float32)
        self.error = np.full((source.height, source.width), np.nan, dtype=np.float32)
        self.sums: List[Tuple[float, float, float, int]] = []     # (sum, min, max, count) per tile
        self.n_empty = 0
        self.tile = params.tile
        self.refine = params.abundances == "refined"
        self.sum_weight = sum_weight      # of the refined fit's soft sum term (method.brightness)
        self.cpu_fallback = False

    def run(self) -> None:
        boxes = list(windows(self.source.height, self.source.width, self.tile))
        for k, box in enumerate(boxes):
            self.monitor.check()
            self._tile(*box)
            self.monitor.progress((k + 1) / len(boxes), f"abundances: tile {k + 1} of {len(boxes)}")

    def _tile(self, r0: int, c0: int, rows: int, cols: int) -> None:
        try:
            self._predict(r0, c0, rows, cols)
        except torch.OutOfMemoryError:
            if self.device.type == "cpu":
                raise
            torch.cuda.empty_cache()
            if min(rows, cols) > MIN_TILE:
                self.monitor.info(f"GPU out of memory on a {rows} x {cols} tile: splitting it in four")
                half_r, half_c = (rows + 1) // 2, (cols + 1) // 2
                for dr, dc in ((0, 0), (0, half_c), (half_r, 0), (half_r, half_c)):
                    if dr < rows and dc < cols:
                        self._tile(r0 + dr, c0 + dc, min(half_r, rows - dr), min(half_c, cols - dc))
                return
            self.monitor.info(f"GPU out of memory even on {rows} x {cols} tiles: going on on the CPU")
            self.to_cpu()
            self._predict(r0, c0, rows, cols)

    def to_cpu(self) -> None:
        self.device = torch.device("cpu")
        self.model.to(self.device)
        self.fusion.to(self.device)
        self.cpu_fallback = True

    def _predict(self, r0: int, c0: int, rows: int, cols: int) -> None:
        found = (self._refined if self.refine else self._from_network)(r0, c0, rows, cols)
        if found is None:     # no valid pixel in the tile
            return
        Y, raw_abundances, keep = found
        A, raw, n_empty = sum_to_one(raw_abundances)
        angle = spectral_angle(torch.from_numpy(np.ascontiguousarray(Y)), self.E @ torch.from_numpy(A)).numpy()
        box = (slice(r0, r0 + rows), slice(c0, c0 + cols))
        target = self.abundances[(slice(None),) + box]
        target[:, keep] = A
        self.error[box][keep] = angle
        self.sums.append((float(raw.sum()), float(raw.min()), float(raw.max()), raw.size))
        self.n_empty += n_empty

    def _from_network(self, r0: int, c0: int, rows: int, cols: int):
        """A tile's valid pixels (L x n), their AEM abundances (P x n) and its valid mask, or None;
        the tile and its border are enhanced."""
        H, W, reach = self.source.height, self.source.width, self.reach
        R0, C0 = max(0, r0 - reach), max(0, c0 - reach)
        R1, C1 = min(H, r0 + rows + reach), min(W, c0 + cols + reach)
        data, valid = self.source.read(R0, C0, R1 - R0, C1 - C0)
        inner = (slice(r0 - R0, r0 - R0 + rows), slice(c0 - C0, c0 - C0 + cols))
        keep = valid[inner]
        if not keep.any():
            return None
        image = self.fusion.enhance_window(data, valid, self.device)
        with torch.no_grad():
            maps = self.model.abundance_maps(torch.from_numpy(image)[None].to(self.device))[0].float().cpu().numpy()
        network = maps[(slice(None),) + inner][:, keep] / self.brightness[:, None]
        return data[(slice(None),) + inner][:, keep], network, keep

    def _refined(self, r0: int, c0: int, rows: int, cols: int):
        """As :meth:`_from_network`, with least-squares abundances: no fusion or network needed."""
        data, keep = self.source.read(r0, c0, rows, cols)
        if not keep.any():
            return None
        Y = data[:, keep]
        return Y, nnls(Y, self.E.numpy(), sum_weight=self.sum_weight).astype(np.float32), keep

    def sum_stats(self) -> dict:
        total = sum(s[0] for s in self.sums)
        count = sum(s[3] for s in self.sums)
        return {"mean": total / max(count, 1), "min": min(s[1] for s in self.sums),
                "max": max(s[2] for s in self.sums)}


class ScalableStrategy(Strategy):
    """Approximate fusion, training on windows, abundances tile by tile: bounded memory."""

    name = "scalable"
    fusion_share, training_share = 0.2, 0.85

    def __init__(self, source, moments: Optional[BandMoments] = None):
        self.source, self.moments = source, moments
        self.fusion = None
        self.boxes: List[Tuple[int, int, int, int]] = []

    def describe(self, params: DFFNParams) -> str:
        scene = self.source.scene
        return (f"{scene.height} x {scene.width} pixels ({scene.n_valid} valid), {scene.n_bands} bands, "
                f"{params.n_endmembers} endmembers: scalable path (approximate fusion, training on "
                f"{params.train_windows} windows of {params.window} pixels, tiles of {params.tile})")

    def training_batch(self, params: DFFNParams, device: torch.device, monitor: Monitor) -> TrainingBatch:
        scene = self.source.scene
        t0 = time.perf_counter()
        subspace = None
        if params.denoise != "off":
            if self.moments is None:
                self.moments = BandMoments.gather(self.source, params, monitor.sub(0.0, 0.2))
                monitor = monitor.sub(0.2, 1.0)
            subspace = denoiser(self.moments.sample, params, monitor)
        self.fusion = ScalableFusion.fit(self.source, params, device, scene.n_valid, monitor,
                                         extremes=params.n_endmembers, moments=self.moments, subspace=subspace)
        t_ffm = time.perf_counter() - t0
        if params.w < 1:
            monitor.info(f"feature fusion with {self.fusion.n_landmarks} landmarks: measured relative error of "
                         f"the spatial term {self.fusion.relative_error:.2e} (tolerance {params.ffm_tolerance:g}); "
                         f"took {t_ffm:.1f} s")
        self.boxes = training_windows(scene.valid, params, self.fusion.extreme_centres)
        image, Y, index = training_batch(self.source, self.fusion, self.boxes, device)
        if Y.shape[1] < params.n_endmembers + 1:
            raise InputError(f"the training windows hold only {Y.shape[1]} valid pixel(s); use more or "
                             f"larger windows, or the exact method")
        monitor.info(f"training on {len(self.boxes)} windows ({Y.shape[1]} valid pixels)")
        all_valid = index.size == image.shape[0] * image.shape[2] * image.shape[3]
        return TrainingBatch(image, Y, None if all_valid else index, t_ffm,
                             target=None if subspace is None else subspace.project(Y),
                             denoise=None if subspace is None else subspace.to_dict())

    def abundance_maps(self, outcome, endmembers, factors, batch, params, monitor,
                       sum_weight: float = 0.0) -> AbundanceMaps:
        t0 = time.perf_counter()
        predictor = TilePredictor(outcome.model, self.source, self.fusion, endmembers, params,
                                  torch.device(outcome.device), monitor, brightness=factors, sum_weight=sum_weight)
        if predictor.refine:
            monitor.info(REFINED_NOTE)
        predictor.run()
        if predictor.n_empty:
            monitor.info(no_abundance_note(predictor.n_empty, params.n_endmembers))
        fusion = self.fusion
        extra = {"scalable": {"landmarks": fusion.n_landmarks, "ffm_relative_error": fusion.relative_error,
                              "ffm_tolerance": params.ffm_tolerance,
                              "training_windows": [list(b) for b in self.boxes],
                              "training_pixels": int(batch.Y.shape[1]), "tile": params.tile,
                              "reach": aem_reach(params), "gpu_fell_back_to_cpu": predictor.cpu_fallback}}
        return AbundanceMaps(predictor.abundances, predictor.error, predictor.sum_stats(),
                             float(np.nanmean(predictor.error)),
                             {"tiles_s": round(time.perf_counter() - t0, 3)}, extra)


def unmix_source(source, params: DFFNParams, monitor: Optional[Monitor] = None,
                 memory_plan: Optional[dict] = None, count=None,
                 moments: Optional[BandMoments] = None) -> UnmixResult:
    """Unmix ``source`` (an :class:`ArraySource` or :class:`RasterSource`) on the scalable path;
    ``moments``: the band moments the raster's scan gathered (``RasterSource(scan_with=...)``)."""
    return drive(ScalableStrategy(source, moments), source.scene, params, monitor, memory_plan, count)
