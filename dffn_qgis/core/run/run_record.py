"""What every run checks first and records last, whichever path (exact or scalable) it took."""
from __future__ import annotations

import platform
import sys
from datetime import datetime, timezone
from typing import Optional

import numpy as np
import torch

from .config import DFFNParams, preset_of
from ..errors import InputError
from ..io.scene import Scene


def check_scene(scene: Scene, params: DFFNParams) -> None:
    """Refuse, with a clear message, an image the method cannot unmix with these parameters."""
    p = params.n_endmembers
    if scene.n_bands < p + 1:
        raise InputError(f"{p} endmembers need at least {p + 1} bands; the image has {scene.n_bands} "
                         f"(after dropping bad bands)")
    needed = max(p + 1, 2)
    if scene.n_valid < needed:
        raise InputError(f"only {scene.n_valid} valid pixel(s) in the image: {p} endmembers need at least {needed}")


def raw_sum_stats(raw_sum: np.ndarray) -> dict:
    """Mean, min and max of the abundances' per-pixel sums before normalisation."""
    return {"mean": float(raw_sum.mean()), "min": float(raw_sum.min()), "max": float(raw_sum.max())}


def run_record(scene: Scene, params: DFFNParams, outcome, sums: dict, mean_angle: float, timings: dict,
               method: str, extra: Optional[dict] = None) -> dict:
    """The JSON record of a run: everything needed to repeat it and judge it."""
    record = {
        "input": scene.source,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "preset": preset_of(params) or "custom",
        "params": params.to_dict(),
        "method": method,
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
        "restarts": outcome.restarts,
        "restart_reasons": outcome.restart_reasons,
        "restart_notes": outcome.restart_notes,
        "spikes_limited": outcome.spikes_limited,
        "input_components": outcome.input_components,
        "start_losses": outcome.start_losses,
        "chosen_start": outcome.chosen_start + 1,
        "final_loss": outcome.loss,
        "abundance_normalisation": "divided by their per-pixel sum (raw sums: mean "
                                   f"{sums['mean']:.3f}, min {sums['min']:.3f}, max {sums['max']:.3f})",
        "mean_reconstruction_angle_rad": mean_angle,
        "timings": dict(timings),
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
                     "platform": platform.platform()},
        "notes": list(scene.notes),
    }
    record.update(extra or {})
    return record
