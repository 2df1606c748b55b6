"""A whole run: read the raster, fuse features, train, write the outputs."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from osgeo import gdal

from ..method.abundance_lsq import REFINED_NOTE, nnls
from .config import DFFNParams
from .device import resolve_device
from ..method.ffm import fuse
from ..method.ffm_scalable import BandMoments
from .memory import describe, plan_memory, refuse
from ..method.model import spectral_angle
from ..io.outputs import OutputPlan, write_outputs
from .progress import Monitor, as_monitor
from ..io.gdal_open import open_raster
from ..io.raster_io import read_scene
from ..io.raster_source import ArraySource, RasterSource
from .result import UnmixResult, no_abundance_note, sum_to_one
from .driver import AbundanceMaps, Strategy, TrainingBatch, denoiser, drive, resolve_count
from .run_record import check_scene, raw_sum_stats  # noqa: F401  (check_scene: public)
from .scalable import unmix_source
from ..io.scene import Scene

# Share of the progress bar each stage gets.
_READ, _FFM, _TRAIN = 0.04, 0.10, 0.95


@dataclass(frozen=True)
class WrittenOutputs:
    """The files a run wrote (None: not asked for); what the front ends hand on to the user."""

    stack: str
    abundances: List[str]
    endmembers_csv: Optional[str]
    endmembers_sli: Optional[str]
    plot_png: Optional[str]
    plot_svg: Optional[str]
    report_html: Optional[str]
    error: Optional[str]
    dominant: Optional[str]
    record_json: Optional[str]


@dataclass
class RunSummary:
    scene: Scene
    result: UnmixResult
    paths: dict

    @property
    def outputs(self) -> WrittenOutputs:
        return WrittenOutputs(**self.paths)

    @property
    def record(self) -> dict:
        return self.result.record

    @property
    def endmember_names(self) -> List[str]:
        return self.result.endmember_names


def enhanced_image(scene: Scene, Y: np.ndarray, params: DFFNParams, device: torch.device,
                   monitor: Monitor) -> np.ndarray:
    """The FFM's output as an L x H x W image; invalid pixels get the mean enhanced spectrum."""
    fused = fuse(torch.from_numpy(Y).to(device), params.w, params.ffm_block, monitor,
                 params.spectral_pixels).cpu().numpy()
    image = np.empty(scene.data.shape, dtype=np.float32)
    image[:] = fused.mean(axis=1)[:, None, None]
    image[:, scene.valid] = fused
    return image


class ExactStrategy(Strategy):
    """The published method on the whole image: exact fusion, training on every valid pixel."""

    name = "exact"
    fusion_share, training_share = _FFM, 1.0

    def __init__(self, scene: Scene):
        self.scene = scene
        self.source = ArraySource(scene)

    def describe(self, params: DFFNParams) -> str:
        scene = self.scene
        return (f"{scene.height} x {scene.width} pixels ({scene.n_valid} valid), {scene.n_bands} bands, "
                f"{params.n_endmembers} endmembers")

    def training_batch(self, params: DFFNParams, device: torch.device, monitor: Monitor) -> TrainingBatch:
        scene = self.scene
        valid = scene.valid
        Y = np.ascontiguousarray(scene.data[:, valid], dtype=np.float32)        # L x n (row-major order)
        t0 = time.perf_counter()
        subspace = denoiser(Y, params, monitor)
        seen = Y if subspace is None else subspace.project(Y)
        try:
            image = enhanced_image(scene, seen, params, device, monitor)
        except torch.OutOfMemoryError:
            if device.type == "cpu":
                raise
            torch.cuda.empty_cache()
            monitor.info(f"out of memory on {device} in the feature fusion: computing it on the CPU instead")
            image = enhanced_image(scene, seen, params, torch.device("cpu"), monitor)
        t_ffm = time.perf_counter() - t0
        monitor.info(f"feature fusion (w={params.w:g}) took {t_ffm:.1f} s")
        valid_index = None if valid.all() else np.flatnonzero(valid.ravel())
        return TrainingBatch(image, Y, valid_index, t_ffm, target=None if subspace is None else seen,
                             denoise=None if subspace is None else subspace.to_dict())

    def abundance_maps(self, outcome, endmembers, factors, batch, params, monitor,
                       sum_weight: float = 0.0) -> AbundanceMaps:
        scene, Y, E, P = self.scene, batch.Y, endmembers, params.n_endmembers
        if params.abundances == "refined":
            monitor.info(REFINED_NOTE)
            raw_abundances = nnls(Y, E, sum_weight=sum_weight).astype(np.float32)
        else:                               # the network's, for the rescaled E: the same reconstruction
            raw_abundances = outcome.abundances / factors[:, None].astype(np.float32)
        A, raw_sum, n_empty = sum_to_one(raw_abundances)                       # P x n
        if n_empty:
            monitor.info(no_abundance_note(n_empty, P))
        abundances = np.full((P,) + scene.valid.shape, np.nan, dtype=np.float32)
        abundances[:, scene.valid] = A
        with torch.no_grad():
            angle = spectral_angle(torch.from_numpy(Y), torch.from_numpy(E @ A)).numpy()
        error = np.full(scene.valid.shape, np.nan, dtype=np.float32)
        error[scene.valid] = angle
        return AbundanceMaps(abundances, error, raw_sum_stats(raw_sum), float(np.mean(angle)))


def unmix_scene(scene: Scene, params: DFFNParams, monitor: Optional[Monitor] = None,
                memory_plan: Optional[dict] = None, count=None) -> UnmixResult:
    """Unmix an in-memory scene; abundances, endmembers, error map and the run record.

    The exact method, unless ``params.method`` is ``scalable`` (or ``auto`` and the image is
    larger than ``params.exact_limit`` pixels).
    """
    params.validate()
    if choose_method(scene.height * scene.width, params) == "scalable":
        return unmix_source(ArraySource(scene), params, monitor, memory_plan=memory_plan, count=count)
    return drive(ExactStrategy(scene), scene, params, monitor, memory_plan, count)


def _windowed(scene: Optional[Scene], path: str, band_list, keep_bad_bands: bool, params: DFFNParams,
              monitor: Monitor) -> Tuple[ArraySource, Optional[BandMoments]]:
    """The image behind the window interface (``scene`` when already read) and, for a raster, the
    fusion's band moments, which its scan gathers so that the scalable path needs no pass for them."""
    if scene is not None:
        return ArraySource(scene), None
    moments = BandMoments.for_params(params)
    return RasterSource(path, bands=band_list, use_bbl=not keep_bad_bands, monitor=monitor.sub(0.0, _READ),
                        scan_with=moments), moments


def choose_method(n_pixels: int, params: DFFNParams) -> str:
    """``exact`` or ``scalable``: the user's choice, or by image size for ``auto``."""
    if params.method != "auto":
        return params.method
    return "exact" if n_pixels <= params.exact_limit else "scalable"


def _planned(method: str, n_bands: int, height: int, width: int, params: DFFNParams, device: torch.device,
             monitor: Monitor, cache_bytes: int = 0) -> Tuple[str, DFFNParams, dict]:
    """Estimate memory; an automatic choice of the exact method that does not fit turns scalable."""
    run_params, plan = plan_memory(method, n_bands, height, width, params, device, cache_bytes=cache_bytes)
    if not plan["fits"] and method == "exact" and params.method == "auto":
        monitor.info(describe(plan) + ": too much for the exact method, using the scalable path")
        method = "scalable"
        run_params, plan = plan_memory(method, n_bands, height, width, params, device, cache_bytes=cache_bytes)
    monitor.info(describe(plan))
    if not plan["fits"]:
        refuse(plan)
    if run_params.tile != params.tile:
        monitor.info(f"tiles of {run_params.tile} pixels so that the run fits in memory")
    return method, run_params, plan


def name_endmembers(result: UnmixResult, scene: Scene, library: Optional[str], monitor: Monitor) -> None:
    """Names from a spectral library (``library``: a file, None for the bundled one, ``"none"`` for
    no names) in ``result.names`` and the record; skipped, with a log line, without wavelengths."""
    from ..method.naming import default_library, match_endmembers, names_from, read_library

    if library == "none":
        return
    wl = scene.wavelengths_nm
    if wl is None:
        monitor.info("endmembers not named: the image's wavelengths are unknown")
        return
    chosen = read_library(library) if library else default_library()
    if chosen is None:
        monitor.info("endmembers not named: the default spectral library was not built (make setup) and "
                     "none was given")
        return
    matches = match_endmembers(result.endmembers, wl, chosen)
    result.names = names_from(matches)
    result.record["endmember_names"] = [{"name": n, **m.to_dict()} for n, m in zip(result.names, matches)]
    monitor.info("endmember names (" + (library or "default library") + "): " + "; ".join(result.names))


def unmix_file(input_path: str, plan: OutputPlan, params: DFFNParams, bands: Optional[Sequence[int]] = None,
               monitor: Optional[Monitor] = None, library: Optional[str] = None,
               keep_bad_bands: bool = False) -> RunSummary:
    """Read ``input_path``, unmix it and write every output of ``plan`` (all or nothing).

    Without ``bands``, bands flagged bad (``bbl``) and bands in the atmospheric water-vapour windows
    are left out unless ``keep_bad_bands``.

    Images up to ``params.exact_limit`` pixels (or with ``method="exact"``) are read whole and
    unmixed exactly; larger ones (or ``method="scalable"``) are read window by window on the
    scalable path (:mod:`dffn_qgis.core.run.scalable`).
    """
    monitor = as_monitor(monitor)
    params.validate()
    device, _ = resolve_device(params.device)          # a wrong device fails before any work is done
    t0 = time.perf_counter()
    path = str(input_path)
    band_list = list(bands) if bands else None
    in_memory = path.lower().endswith(".mat")
    cache_bytes = 0
    if in_memory:
        scene = read_scene(path, bands=band_list, use_bbl=not keep_bad_bands, monitor=monitor.sub(0.0, _READ))
        n_bands, height, width = scene.shape
    else:
        ds = open_raster(path)
        n_bands = len(band_list) if band_list else ds.RasterCount
        height, width = ds.RasterYSize, ds.RasterXSize
        item = gdal.GetDataTypeSize(ds.GetRasterBand(1).DataType) // 8
        cache_bytes = min(int(gdal.GetCacheMax()), height * width * ds.RasterCount * item)
        ds = None  # noqa: F841  (closes it)
    count = None
    source = moments = None     # a raster scanned once serves the count and the scalable path
    if params.n_endmembers == 0:            # estimated before the memory plan, which depends on it
        source, moments = _windowed(scene if in_memory else None, path, band_list, keep_bad_bands, params, monitor)
        try:
            params, count = resolve_count(params, source, monitor.sub(0.0, _READ))
        except BaseException:
            source.close()
            raise
    method, run_params, memory_plan = _planned(choose_method(height * width, params), n_bands, height, width,
                                               params, device, monitor, cache_bytes)
    if method == "exact":
        if source is not None:
            source.close()
        if not in_memory:
            scene = read_scene(path, bands=band_list, use_bbl=not keep_bad_bands, monitor=monitor.sub(0.0, _READ))
        t_read = time.perf_counter() - t0
        result = unmix_scene(scene, run_params, monitor.sub(_READ, _TRAIN), memory_plan=memory_plan, count=count)
    else:
        if source is None:
            source, moments = _windowed(scene if in_memory else None, path, band_list, keep_bad_bands, params,
                                        monitor)
        scene = source.scene
        t_read = time.perf_counter() - t0
        try:
            result = unmix_source(source, run_params, monitor.sub(_READ, _TRAIN), memory_plan=memory_plan,
                                  count=count, moments=moments)
        finally:
            source.close()
    name_endmembers(result, scene, library, monitor)
    t1 = time.perf_counter()
    result.record["timings"]["read_s"] = round(t_read, 3)
    paths = write_outputs(plan, scene, result, monitor.sub(_TRAIN, 1.0))
    result.record["timings"]["write_s"] = round(time.perf_counter() - t1, 3)
    result.record["timings"]["total_s"] = round(time.perf_counter() - t0, 3)
    monitor.progress(1.0, "done")
    monitor.info(f"outputs written: {Path(plan.stack).parent}")
    return RunSummary(scene=scene, result=result, paths=paths)
