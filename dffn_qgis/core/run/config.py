"""Run parameters and the presets that fill them.

``paper`` is the published setting (Tao et al. 2024, Samson). ``fast`` keeps the same network
and loss with a schedule that converges in fewer epochs, stops once the loss no longer
improves and refines the abundances on the learned endmembers; its numbers are chosen by
measurement (docs/BENCHMARKS.md).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Optional

from ..errors import InputError
from .parameters import SCHEMA

SAMSON_PIXELS = 95 * 95   # the paper's image size: the spectral kernel's reference pixel count


@dataclass(frozen=True)
class DFFNParams:
    n_endmembers: int = 3
    # training
    epochs: int = 1500            # epochs of the final (kept) start
    lr: float = 1e-3
    weight_decay: float = 1e-6
    lr_step: int = 245            # StepLR step size (epochs)
    lr_gamma: float = 0.9
    schedule: str = "step"        # "step" (StepLR, as published) or "cosine" (to zero at ``epochs``)
    eem_lr: float = 0.0           # learning rate of the endmember module (0: same as ``lr``)
    grad_clip: float = 0.0        # a module's gradient at most this times the median of its last 20 norms (0: off)
    starts: int = 1               # starts from different initialisations; the lowest-loss one is kept
    start_epochs: int = 0         # epochs each start gets before the pick, then trained on (0: the whole schedule)
    patience: int = 0             # stop when the best loss has not improved for this many epochs (0: never)
    restarts: int = 0             # fresh starts when stuck: a stall begun in the first half, a poorer fit than the image's pixels
    min_delta: float = 0.0        # relative improvement that counts for ``patience``
    precision: str = "float32"    # "float32", "bfloat16" or "auto" (bfloat16 where the CPU has native bf16)
    # network
    kernel: int = 5               # the padding is kernel // 2, so that the image keeps its size
    input_components: int = 0     # the first convolution's input: this many leading components (0: the rank)
    # fusion
    denoise: str = "off"          # "subspace": fusion and training see the image on its signal subspace
    w: float = 0.5
    ffm_block: int = 2048         # pixels per block of the spatial similarity product
    spectral_pixels: int = SAMSON_PIXELS   # band distances are scaled to this many pixels (0: raw sums)
    # size: exact method on the whole image, or the scalable path (docs/METHOD.md, "Large images")
    method: str = "auto"          # "auto" (exact up to ``exact_limit`` valid pixels), "exact" or "scalable"
    exact_limit: int = 40_000     # valid pixels up to which "auto" runs the exact method
    landmarks: int = 512          # Nystroem landmarks of the approximate spatial similarity (first try)
    ffm_tolerance: float = 1e-3   # relative error of the approximate spatial term that is accepted
    train_windows: int = 9        # windows the scalable path trains on (docs/BENCHMARKS.md: 9 x 32^2 beat 16 x 24^2)
    window: int = 32              # their side (pixels)
    tile: int = 256               # side of the tiles abundances are computed on (scalable path)
    # output abundances: the abundance module's ("network", as published) or those that minimise the
    # loss's reconstruction angle for the learned endmembers ("refined": non-negative least squares)
    abundances: str = "network"
    # refined abundances: how far a pixel's brightness may differ from the mixture's ("free": any, the
    # fit scaled to sum to one; "fixed": hardly, close to FCLS; "auto": chosen on held-out bands)
    pixel_brightness: str = "free"
    # the image's extreme pixels (VCA's or N-FINDR's) replace the network's endmembers when they reconstruct
    # the image with a mean angle below this share of the network's (an exact simplex: docs/METHOD.md; 0: only
    # when, with restarts on, they still reconstruct it better after a fresh start)
    pixel_simplex: float = 0.0
    # loss weights
    a: float = 1.0
    b: float = 0.01
    c: float = 0.001
    # reproducibility and hardware
    seed: int = 1
    device: str = "auto"
    threads: int = 0              # torch CPU threads (0: leave torch's default)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def epochs_per_start(self) -> int:
        """Epochs each of several starts trains before the lowest-loss one is picked (``start_epochs``, or
        the whole schedule when that is 0); 0 when there is no pick (one start, or ``start_epochs`` above
        ``epochs``)."""
        if self.starts <= 1 or self.start_epochs > self.epochs:
            return 0
        return self.start_epochs or self.epochs

    @property
    def padding(self) -> int:
        """Convolution padding: derived, so that every layer keeps the image's size."""
        return self.kernel // 2

    def validate(self) -> "DFFNParams":
        """Raise :class:`InputError` (one clear line) for any value the method cannot run with;
        the rules are the schema's (:mod:`dffn_qgis.core.run.parameters`)."""
        for parameter in SCHEMA:
            problem = parameter.problem(getattr(self, parameter.name))
            if problem:
                raise InputError(problem)
        return self


PRESETS = {
    # The reference implementation's Samson setting.
    "paper": DFFNParams(),
    # Same network and loss; a cosine learning-rate schedule that converges in a third of the
    # paper's epochs, a stop once the loss no longer improves, and the abundances that minimise
    # the loss's reconstruction angle for the learned endmembers (docs/METHOD.md, "Abundance
    # refinement"); a fresh start when training gets stuck early. Chosen by measurement on Samson and
    # synthetic scenes (docs/BENCHMARKS.md); several short starts and shorter schedules did not
    # hold up there.
    # Trained in float32 on every CPU: bfloat16 (3.5-4.5 times faster on CPUs with AMX) cost accuracy on
    # most development scenes (docs/BENCHMARKS.md, "Precision"); ``precision=auto`` still asks for it.
    # Where the image's own pixels reconstruct it four times better than the network's endmembers (a
    # noise-free scene with pure pixels), those pixels are the endmembers; where they reconstruct it better
    # at all, the run starts again once, and if it still falls short the pixels are taken (docs/METHOD.md).
    # The fusion and the training see the image on its signal subspace (``denoise``): with the noise
    # outside it gone, the angle loss tells close materials apart (docs/METHOD.md, "Denoising").
    "fast": DFFNParams(epochs=600, lr=3e-3, schedule="cosine", patience=60, min_delta=1e-3, precision="float32",
                       restarts=2, abundances="refined", pixel_simplex=0.25,
                       pixel_brightness="auto", denoise="subspace"),
}

DEFAULT_PRESET = "fast"


def params_for(preset: str = DEFAULT_PRESET, **overrides) -> DFFNParams:
    """The preset's parameters with ``overrides`` (``None`` values are ignored) applied and checked."""
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose one of: {', '.join(sorted(PRESETS))}")
    known = {f.name for f in fields(DFFNParams)}
    unknown = set(overrides) - known
    if unknown:
        raise InputError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    clean = {k: v for k, v in overrides.items() if v is not None}
    return replace(PRESETS[preset], **clean).validate()


def preset_of(params: DFFNParams) -> Optional[str]:
    for name, preset in PRESETS.items():
        if replace(preset, n_endmembers=params.n_endmembers, seed=params.seed, device=params.device) == params:
            return name
    return None
