"""One driver for both ways of unmixing an image; the strategies differ only where they must.

Every run checks the scene, fuses features, trains (falling back to the CPU when a GPU runs out
of memory), rescales the endmembers to the data's brightness, computes the abundances and the
reconstruction error, and records what it did. A :class:`Strategy` supplies the three steps that
differ: what the network trains on (the whole fused image, or windows of an approximate fusion),
how abundances are computed (at once, or tile by tile) and what it adds to the record.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Optional, Tuple

import numpy as np
import torch

from ..method.brightness import BRIGHTNESS_NOTE, brightness_spread, fit_brightness
from ..method.endmember_count import CountEstimate, count_source
from ..method.pixel_simplex import ImagePixels, SimplexCheck, check_pixel_simplex, seen_shortfall
from ..method.signal_subspace import SignalSubspace, signal_subspace
from ..method.train import TrainOutcome, train_with_cpu_fallback
from .config import DFFNParams
from .context import RunContext
from .progress import Monitor, as_monitor
from .result import UnmixResult
from .run_record import check_scene, run_record


@dataclass
class TrainingBatch:
    """What the network trains on: ``image`` (L x H x W, or B x L x h x w windows), the valid pixels
    ``Y`` (L x n) and their flat indices in ``image`` (None when all pixels are valid). ``target``:
    what the loss compares the reconstruction with, when not ``Y`` (the denoised pixels); ``Y``
    stays the data as read, for everything after training."""

    image: np.ndarray
    Y: np.ndarray
    valid_index: Optional[np.ndarray]
    fusion_s: float
    target: Optional[np.ndarray] = None
    denoise: Optional[dict] = None          # the record's ``denoise`` (the signal subspace used)


@dataclass
class AbundanceMaps:
    """A strategy's abundances (P x rows x cols, NaN off the valid pixels), error map, the per-pixel
    sums before normalisation, timings and what it adds to the record."""

    abundances: np.ndarray
    error: np.ndarray
    sum_stats: dict
    mean_angle: float
    timings: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


class Strategy:
    """The steps where the exact and the scalable method differ; ``source`` reads the image's pixels
    window by window (an ArraySource or RasterSource)."""

    name = ""
    source = None
    fusion_share = 0.1          # of the progress bar
    training_share = 0.95       # end of training on the progress bar

    def describe(self, params: DFFNParams) -> str:
        raise NotImplementedError

    def training_batch(self, params: DFFNParams, device: torch.device, monitor: Monitor) -> TrainingBatch:
        raise NotImplementedError

    def abundance_maps(self, outcome: TrainOutcome, endmembers: np.ndarray, factors: np.ndarray,
                       batch: TrainingBatch, params: DFFNParams, monitor: Monitor,
                       sum_weight: float = 0.0) -> AbundanceMaps:
        """``sum_weight``: of the refined fit's soft sum-to-one term (:mod:`~dffn_qgis.core.method.brightness`)."""
        raise NotImplementedError


def denoiser(pixels: np.ndarray, params: DFFNParams, monitor: Monitor) -> Optional[SignalSubspace]:
    """The signal subspace the fusion and the training see (``params.denoise``), estimated on
    ``pixels`` (L x n, the image's or a sample of them), said in the log; None: the data as read."""
    if params.denoise == "off":
        return None
    subspace = signal_subspace(pixels, params.n_endmembers)
    if subspace is None:
        monitor.info("not denoised: the signal subspace holds every band, or the image has too few pixels "
                     "or no noise to estimate it")
    else:
        monitor.info(subspace.note())
    return subspace


def resolve_count(params: DFFNParams, source, monitor: Monitor,
                  count: Optional[CountEstimate] = None) -> Tuple[DFFNParams, Optional[CountEstimate]]:
    """``n_endmembers = 0``: the recommended estimate of :mod:`~dffn_qgis.core.method.endmember_count`
    (``count``, or counted now on ``source``), said in the log; any other value is kept."""
    if params.n_endmembers != 0:
        return params, count
    count = count or count_source(source, monitor=monitor)
    monitor.info(f"{count.describe()}: unmixing with {count.recommended} endmembers")
    return replace(params, n_endmembers=count.recommended), count


def drive(strategy: Strategy, scene, params: DFFNParams, monitor: Optional[Monitor] = None,
          memory_plan: Optional[dict] = None, count: Optional[CountEstimate] = None) -> UnmixResult:
    """Unmix ``scene`` with ``strategy``: abundances, endmembers, error map and the run record.

    ``count``: the endmember count estimate the number of endmembers came from, for the record
    (made here when ``params.n_endmembers`` is 0)."""
    monitor = as_monitor(monitor)
    params.validate()
    params, count = resolve_count(params, strategy.source, monitor, count)
    check_scene(scene, params)
    for note in scene.notes:
        monitor.info(note)
    monitor.info(strategy.describe(params))
    with RunContext(params) as context:
        t0 = time.perf_counter()
        batch = strategy.training_batch(params, context.hardware.device, monitor.sub(0.0, strategy.fusion_share))
        target = batch.Y if batch.target is None else batch.target
        # the image's extreme pixels: what the endmembers must explain the image at least as well as
        # (a poorer fit is a reason to restart, then to take the pixels), and what replaces them on an
        # exact simplex
        reference = None
        if params.pixel_simplex > 0 or params.restarts > 0:
            reference = ImagePixels.of(batch.Y, params.n_endmembers, params.seed, clean=batch.target)
        checks = {}

        def simplex_check(endmembers: np.ndarray) -> SimplexCheck:
            """The comparison with the pixels, made once per endmember set (the judge's verdict on the run
            kept and the final choice read the same one)."""
            key = np.asarray(endmembers, dtype=np.float64).tobytes()
            if key not in checks:
                checks[key] = check_pixel_simplex(reference, endmembers, params.pixel_simplex,
                                                  at_least_pixels=params.restarts > 0)
            return checks[key]

        judge = None
        if reference is not None and params.restarts > 0:
            # the same comparison on the denoised pixels the training sees, where noise hides less
            seen = None if batch.target is None else ImagePixels.of(batch.target, params.n_endmembers, params.seed)

            def judge(endmembers: np.ndarray) -> Optional[str]:
                check = simplex_check(endmembers)
                why = check.poorer_fit()
                if why or seen is None or check.reason == "exact simplex":
                    return why
                return seen_shortfall(seen, endmembers)
        outcome, params = train_with_cpu_fallback(batch.image, target, batch.valid_index, params,
                                                  monitor.sub(strategy.fusion_share, strategy.training_share),
                                                  context.hardware, judge)
        t_train = time.perf_counter() - t0 - batch.fusion_s

        learned, simplex = outcome.endmembers, None
        if reference is not None:
            # with restarts on, the endmembers kept explain the image at least as well as its pixels
            simplex = simplex_check(learned)
            monitor.info(simplex.note())
            if simplex.use_pixels:
                learned = simplex.endmembers
                if params.abundances == "network":       # the network's abundances belong to its endmembers
                    monitor.info("abundances: each pixel's least-squares fit on those endmembers")
                    params = replace(params, abundances="refined")
        endmembers, factors = fit_brightness(batch.Y, learned)                # at the data's brightness
        monitor.info(BRIGHTNESS_NOTE)
        spread = None
        if params.abundances == "refined":
            spread = brightness_spread(batch.Y, endmembers, params.pixel_brightness)
            monitor.info(spread.note())
        maps = strategy.abundance_maps(outcome, endmembers, factors, batch, params,
                                       monitor.sub(strategy.training_share, 1.0),
                                       sum_weight=spread.sum_weight if spread else 0.0)
    extra = dict(maps.extra)
    extra["endmember_brightness_factors"] = [float(f) for f in factors]
    if batch.denoise is not None:
        extra["denoise"] = batch.denoise
    if simplex is not None:
        extra["pixel_simplex"] = simplex.to_dict()
    if spread is not None:
        extra["pixel_brightness"] = spread.to_dict()
    if memory_plan:
        extra["memory_estimate"] = memory_plan
    if count is not None:
        extra["endmember_count"] = count.to_dict()
    record = run_record(scene, params, outcome, maps.sum_stats, maps.mean_angle,
                        {"ffm_s": round(batch.fusion_s, 3), "training_s": round(t_train, 3), **maps.timings},
                        method=strategy.name, extra=extra)
    return UnmixResult(abundances=maps.abundances, endmembers=endmembers.astype(np.float32), error=maps.error,
                       loss=outcome.loss, history=outcome.history, record=record)
