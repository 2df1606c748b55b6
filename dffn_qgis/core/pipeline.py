"""A whole run: read the raster, fuse features, train, write the outputs."""
from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch

from .config import DFFNParams, preset_of
from .device import resolve_device
from .errors import InputError
from .ffm import fuse
from .model import spectral_angle
from .outputs import OutputPlan, write_outputs
from .progress import Monitor, as_monitor
from .raster_io import read_scene
from .result import UnmixResult
from .scene import Scene
from .train import train

# Share of the progress bar each stage gets.
_READ, _FFM, _TRAIN = 0.04, 0.10, 0.95


@dataclass
class RunSummary:
    scene: Scene
    result: UnmixResult
    paths: dict

    @property
    def record(self) -> dict:
        return self.result.record

    @property
    def endmember_names(self) -> List[str]:
        return self.result.endmember_names


def check_scene(scene: Scene, params: DFFNParams) -> None:
    """Refuse, with a clear message, an image the method cannot unmix with these parameters."""
    p = params.n_endmembers
    if scene.n_bands < p + 1:
        raise InputError(f"{p} endmembers need at least {p + 1} bands; the image has {scene.n_bands} "
                         f"(after dropping bad bands)")
    needed = max(p + 1, 2)
    if scene.n_valid < needed:
        raise InputError(f"only {scene.n_valid} valid pixel(s) in the image: {p} endmembers need at least {needed}")


def enhanced_image(scene: Scene, Y: np.ndarray, params: DFFNParams, device: torch.device,
                   monitor: Monitor) -> np.ndarray:
    """The FFM's output as an L x H x W image; invalid pixels get the mean enhanced spectrum."""
    fused = fuse(torch.from_numpy(Y).to(device), params.w, params.ffm_block, monitor).cpu().numpy()
    image = np.empty(scene.data.shape, dtype=np.float32)
    image[:] = fused.mean(axis=1)[:, None, None]
    image[:, scene.valid] = fused
    return image


def sum_to_one(A: np.ndarray):
    """Abundances scaled to sum to one per pixel (the paper's evaluation protocol).

    The network only encourages the sum-to-one constraint (ASC term of the loss); the outputs
    honour it, so that every abundance lies in [0, 1]. Returns the scaled abundances, the raw
    sums and the number of pixels whose raw sum was zero (they get 1/P each).
    """
    raw = A.sum(axis=0)
    empty = raw <= 0
    out = np.divide(A, raw, out=np.full_like(A, 1.0 / A.shape[0]), where=~empty)
    return out.astype(np.float32), raw, int(empty.sum())


def unmix_scene(scene: Scene, params: DFFNParams, monitor: Optional[Monitor] = None) -> UnmixResult:
    """Unmix an in-memory scene; abundances, endmembers, error map and the run record."""
    monitor = as_monitor(monitor)
    params.validate()
    check_scene(scene, params)
    for note in scene.notes:
        monitor.info(note)
    valid = scene.valid
    Y = np.ascontiguousarray(scene.data[:, valid], dtype=np.float32)            # L x n (row-major order)
    all_valid = bool(valid.all())
    monitor.info(f"{scene.height} x {scene.width} pixels ({scene.n_valid} valid), {scene.n_bands} bands, "
                 f"{params.n_endmembers} endmembers")

    t0 = time.perf_counter()
    device, _ = resolve_device(params.device)
    image = enhanced_image(scene, Y, params, device, monitor.sub(0.0, _FFM))
    t_ffm = time.perf_counter() - t0
    monitor.info(f"feature fusion (w={params.w:g}) took {t_ffm:.1f} s")

    valid_index = None if all_valid else np.flatnonzero(valid.ravel())
    outcome = train(image, Y, valid_index, params, monitor.sub(_FFM, 1.0))
    t_train = time.perf_counter() - t0 - t_ffm

    P = params.n_endmembers
    A, raw_sum, n_empty = sum_to_one(outcome.abundances)                       # P x n
    if n_empty:
        monitor.info(f"{n_empty} pixel(s) got no abundance at all; they are set to 1/{P} for every endmember")
    E = outcome.endmembers                                                     # L x P
    abundances = np.full((P,) + scene.valid.shape, np.nan, dtype=np.float32)
    abundances[:, valid] = A
    with torch.no_grad():
        angle = spectral_angle(torch.from_numpy(Y), torch.from_numpy(E @ A)).numpy()
    error = np.full(scene.valid.shape, np.nan, dtype=np.float32)
    error[valid] = angle

    record = {
        "input": scene.source,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "preset": preset_of(params) or "custom",
        "params": params.to_dict(),
        "seed": params.seed,
        "device": outcome.device,
        "device_reason": outcome.device_reason,
        "precision": outcome.precision,
        "precision_reason": outcome.precision_reason,
        "size": {"rows": scene.height, "cols": scene.width, "bands": scene.n_bands, "valid_pixels": scene.n_valid},
        "bands_used": list(scene.band_indices),
        "wavelength_units": scene.wavelength_units,
        "scaling": scene.scaling,
        "scaling_rule": scene.scaling.get("rule"),
        "epochs_run": outcome.epochs_run,
        "stopped_early": outcome.stopped_early,
        "start_losses": outcome.start_losses,
        "chosen_start": outcome.chosen_start + 1,
        "final_loss": outcome.loss,
        "abundance_normalisation": "divided by their per-pixel sum (raw sums: mean "
                                   f"{float(raw_sum.mean()):.3f}, min {float(raw_sum.min()):.3f}, "
                                   f"max {float(raw_sum.max()):.3f})",
        "mean_reconstruction_angle_rad": float(np.mean(angle)),
        "timings": {"ffm_s": round(t_ffm, 3), "training_s": round(t_train, 3)},
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
                     "platform": platform.platform()},
        "notes": list(scene.notes),
    }
    return UnmixResult(abundances=abundances, endmembers=E.astype(np.float32), error=error,
                       loss=outcome.loss, history=outcome.history, record=record)


def unmix_file(input_path: str, plan: OutputPlan, params: DFFNParams, bands: Optional[Sequence[int]] = None,
               monitor: Optional[Monitor] = None) -> RunSummary:
    """Read ``input_path``, unmix it and write every output of ``plan`` (all or nothing)."""
    monitor = as_monitor(monitor)
    params.validate()
    resolve_device(params.device)          # a wrong device fails before any work is done
    t0 = time.perf_counter()
    scene = read_scene(str(input_path), bands=list(bands) if bands else None, monitor=monitor.sub(0.0, _READ))
    t_read = time.perf_counter() - t0
    result = unmix_scene(scene, params, monitor.sub(_READ, _TRAIN))
    t1 = time.perf_counter()
    result.record["timings"]["read_s"] = round(t_read, 3)
    paths = write_outputs(plan, scene, result, monitor.sub(_TRAIN, 1.0))
    result.record["timings"]["write_s"] = round(time.perf_counter() - t1, 3)
    result.record["timings"]["total_s"] = round(time.perf_counter() - t0, 3)
    monitor.progress(1.0, "done")
    monitor.info(f"outputs written: {Path(plan.stack).parent}")
    return RunSummary(scene=scene, result=result, paths=paths)
