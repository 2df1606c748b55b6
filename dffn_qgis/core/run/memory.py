"""Peak memory of a run, estimated before it starts, and the settings that fit the machine.

The estimate is the process's resident memory when the run is planned (Python, torch, GDAL and
whatever the host application holds) plus the largest working set of any stage, plus what the
run holds throughout (validity mask, output maps). The per-stage figures count the arrays each
stage allocates; the factors on the network's activations are rough per-channel byte counts,
checked against measured peaks by ``tests/test_memory_estimate.py`` and the size series in
docs/BENCHMARKS.md.
"""
from __future__ import annotations

import os
import resource
from dataclasses import replace
from typing import Optional, Tuple

import torch

from ..method.abundance_lsq import CHUNK as LSQ_CHUNK
from .config import DFFNParams
from ..errors import InputError
from ..method.ffm_scalable import CHECK_PIXELS, CHUNK, MAX_LANDMARK_FACTOR, MAX_LANDMARKS
from ..io.raster_source import WINDOW

F32 = 4
GIB = 1024 ** 3
_HEADROOM = 0.85        # share of the available memory a run may plan to use
_MIN_TILE = 64
# bytes per pixel and channel of the network's activations, forward and backward (training) or
# forward only (inference), on the CPU build of torch: see the module notes
_TRAIN_ACTIVATION = 3.0 * F32
_INFER_ACTIVATION = 2.0 * F32


def current_rss() -> int:
    """Resident memory of this process now (bytes)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def available_memory() -> Optional[int]:
    """Memory the system can still give (MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def gpu_free_memory(device: torch.device) -> Optional[int]:
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)


def _network_channels(n_bands: int, p: int) -> int:
    """Channels summed over every layer output of the AEM and the decoder (conv, BN, ReLU)."""
    return n_bands + 3 * (128 + 64 + p) + 3 * n_bands


def _training_bytes(pixels: int, n_bands: int, params: DFFNParams) -> int:
    p = params.n_endmembers
    activations = pixels * _network_channels(n_bands, p) * _TRAIN_ACTIVATION
    eem = 100 * pixels * F32 * 5            # weights, gradient, two Adam moments, best state
    if params.epochs_per_start:             # the other starts, until the pick: a whole start keeps its
        held = 2 if params.epochs_per_start == params.epochs else 5     # weights and best state only
        eem += 100 * pixels * F32 * held * (params.starts - 1)
    losses = pixels * n_bands * F32 * 6     # Yhat1, Yhat2 and their gradients in the loss
    return int(activations + eem + losses)


def estimate_exact(n_bands: int, height: int, width: int, params: DFFNParams) -> dict:
    """Bytes each stage of the exact method adds (the scene stays in memory throughout)."""
    n = height * width
    cube = n * n_bands * F32
    ffm = 4 * cube + n * min(params.ffm_block, n) * F32 * 2
    train = cube + _training_bytes(n, n_bands, params)
    outputs = n * (params.n_endmembers * 2 + 2) * F32
    stages = {"read": 64 * 1024 ** 2, "fusion": ffm, "training": train, "writing": outputs}
    if params.abundances == "refined":      # a float64 copy of the pixels and the NNLS systems
        stages["abundances"] = n * n_bands * 8 * 2 + min(n, LSQ_CHUNK) * (params.n_endmembers + 1) ** 2 * 8 * 4
    return {"held": cube, "stages": stages}


def estimate_scalable(n_bands: int, height: int, width: int, params: DFFNParams) -> dict:
    """Bytes each stage of the scalable path adds (mask and output maps are held throughout)."""
    n = height * width
    p = params.n_endmembers
    window = min(WINDOW, height) * min(WINDOW, width)
    landmarks = min(MAX_LANDMARKS, params.landmarks * MAX_LANDMARK_FACTOR)
    read = window * n_bands * (F32 + 8)
    kernel = min(CHUNK, window) * (landmarks + CHECK_PIXELS) * F32 * 3
    fusion = read + kernel + window * n_bands * F32 * 4
    train_pixels = params.train_windows * min(params.window, height) * min(params.window, width)
    train = _training_bytes(train_pixels, n_bands, params)
    reach = 3 * params.padding
    tile_pixels = (min(params.tile, height) + 2 * reach) * (min(params.tile, width) + 2 * reach)
    if params.abundances == "refined":     # no border, fusion or network: the pixels and their NNLS systems
        inner = min(params.tile, height) * min(params.tile, width)
        tiles = inner * n_bands * (F32 + 8 + 8) + min(inner, LSQ_CHUNK) * (p + 1) ** 2 * 8 * 4
    else:
        tiles = (tile_pixels * n_bands * (F32 + 8) + kernel + tile_pixels * n_bands * F32 * 4
                 + tile_pixels * (n_bands + 2 * (128 + 64 + p)) * _INFER_ACTIVATION)
    held = n * (1 + (p + 1) * F32)
    # the report's per-endmember summary, class raster and error statistics work one map at a time
    # (measured: about 16 bytes a pixel, plus the plotting libraries)
    writing = 64 * 1024 ** 2 + n * F32 * 4
    return {"held": held, "stages": {"scan": read, "fusion": fusion, "training": train, "tiles": tiles,
                                     "writing": writing}}


def peak(estimate: dict, baseline: int) -> int:
    return int(baseline + estimate["held"] + max(estimate["stages"].values()))


def plan_memory(method: str, n_bands: int, height: int, width: int, params: DFFNParams,
                device: torch.device, baseline: Optional[int] = None,
                available: Optional[int] = None, cache_bytes: int = 0) -> Tuple[DFFNParams, dict]:
    """Estimate the run's peak memory and shrink the scalable path's tiles until it fits.

    ``cache_bytes`` is what GDAL's block cache will hold while the raster is read (the smaller
    of its limit and the file's data): every pass reads the whole file, so it fills up.

    Returns the parameters to run with and the plan (estimate, what is available, ``fits``);
    :func:`refuse` turns a plan that does not fit into the user's error.
    """
    baseline = current_rss() if baseline is None else baseline
    available = available_memory() if available is None else available
    estimate_of = estimate_exact if method == "exact" else estimate_scalable
    while True:
        estimate = estimate_of(n_bands, height, width, params)
        estimate["held"] += cache_bytes
        total = peak(estimate, baseline)
        fits = available is None or total - baseline <= _HEADROOM * available
        if fits or method == "exact" or params.tile <= _MIN_TILE:
            break
        params = replace(params, tile=max(_MIN_TILE, params.tile // 2))
    gpu_free = gpu_free_memory(device)
    plan = {"method": method, "peak_bytes": total, "baseline_bytes": baseline,
            "stages_bytes": {k: int(v) for k, v in estimate["stages"].items()},
            "held_bytes": int(estimate["held"]), "available_bytes": available, "tile": params.tile,
            "gdal_cache_bytes": int(cache_bytes), "gpu_free_bytes": gpu_free, "fits": fits}
    return params, plan


def describe(plan: dict) -> str:
    text = (f"estimated peak memory {plan['peak_bytes'] / GIB:.2f} GiB "
            f"({plan['method']} method; this process already holds {plan['baseline_bytes'] / GIB:.2f} GiB)")
    if plan.get("available_bytes") is not None:
        text += f"; {plan['available_bytes'] / GIB:.2f} GiB available"
    return text


def refuse(plan: dict) -> None:
    """Raise the one-line error for a run that cannot fit."""
    need = (plan["peak_bytes"] - plan["baseline_bytes"]) / GIB
    have = (plan["available_bytes"] or 0) / GIB
    hint = ("; try the scalable method" if plan["method"] == "exact"
            else "; close other programs, use fewer bands or a smaller image")
    raise InputError(f"not enough memory: the run needs about {need:.2f} GiB more and "
                     f"{have:.2f} GiB is available{hint}")
