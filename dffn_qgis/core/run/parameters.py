"""Every run parameter, declared once.

Each :class:`Parameter` names one field of :class:`~dffn_qgis.core.run.config.DFFNParams` and holds
its type, bounds or choices, label, help and how the front ends show it. From this table come
``DFFNParams.validate()``, the command line's options (:mod:`dffn_qgis.cli`), the Processing
algorithm's parameters and its dialog help (:mod:`dffn_qgis.processing_provider.unmix_algorithm`).
Defaults live in the presets (:data:`dffn_qgis.core.run.config.PRESETS`), one value per preset.

Adding a parameter: a field in ``DFFNParams`` with its published default, a row here, and the
code that uses it; both front ends pick it up (tests/test_parameters.py and
tests/qgis/test_qgis_plugin.py check that every field is reachable with the same bounds).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

INT_MAX = 2 ** 31 - 1          # the largest integer QGIS's number parameters hand over intact
MAX_ENDMEMBERS = 100           # more is a typo, not a request


@dataclass(frozen=True)
class Parameter:
    name: str                               # the DFFNParams field
    kind: type                              # int, float or str
    label: str                              # short label (dialog)
    help: str                               # one sentence, plain words (dialog help, --help)
    low: Optional[float] = None             # inclusive bounds of numbers
    high: Optional[float] = None
    choices: Tuple[str, ...] = ()           # allowed values of a str parameter
    advanced: bool = True                   # shown among the dialog's advanced parameters
    flags: Tuple[str, ...] = ()             # command-line flags (default: --name-with-dashes)
    check: Optional[Callable[[object], Optional[str]]] = None   # further rule: a problem, or None

    @property
    def qgis_name(self) -> str:
        return self.name.upper()

    @property
    def cli_flags(self) -> Tuple[str, ...]:
        return self.flags or ("--" + self.name.replace("_", "-"),)

    @property
    def range_text(self) -> str:
        """``"1 to 100"`` for numbers, ``"step, cosine"`` for choices."""
        if self.kind is str:
            return ", ".join(self.choices)
        return f"{self._number(self.low)} to {self._number(self.high)}"

    def _number(self, value) -> str:
        return str(int(value)) if self.kind is int else f"{value:g}"

    def problem(self, value) -> Optional[str]:
        """Why ``value`` cannot be used, in one line, or None."""
        if self.kind is str:
            if self.check is not None:
                return self.check(value)
            if value not in self.choices:
                return f"{self.name} must be one of {', '.join(self.choices)} (got {value!r})"
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{self.name} must be a number (got {value!r})"
        if self.kind is int and not float(value).is_integer():
            return f"{self.name} must be a whole number (got {value})"
        if not math.isfinite(value):
            return f"{self.name} must be a finite number (got {value})"
        if value < self.low:
            return f"{self.name} must be at least {self._number(self.low)} (got {value})"
        if value > self.high:
            return f"{self.name} must be at most {self._number(self.high)} (got {value})"
        return self.check(value) if self.check is not None else None


def _endmember_count(value) -> Optional[str]:
    if value == 1:
        return "n_endmembers must be at least 2, or 0 to estimate it from the image (got 1)"
    return None


def _odd(value) -> Optional[str]:
    if value % 2 == 0:
        return f"the kernel size must be an odd number (got {value})"
    return None


DEVICES = ("auto", "cpu", "cuda")
SOLVERS = ("fcls", "nnls", "ls")        # of ``apply`` (given spectra): the command line's and QGIS's choices


def _device(value) -> Optional[str]:
    if isinstance(value, str) and (value in DEVICES or re.fullmatch(r"cuda:\d+", value)):
        return None
    return f"unknown device {value!r}: use auto, cpu, cuda or cuda:N"


SCHEMA: Tuple[Parameter, ...] = (
    # --- basic: in the dialog's main part
    Parameter("n_endmembers", int, "Number of endmembers",
              "how many materials (endmembers) to separate; 0 (command line: auto) estimates it from the "
              "image (see the count tool)", 0, MAX_ENDMEMBERS, advanced=False,
              flags=("-p", "--endmembers"), check=_endmember_count),
    Parameter("device", str, "Device",
              "auto: a CUDA GPU when torch sees one, otherwise the CPU; cpu; cuda (fails without a GPU); "
              "the command line also takes cuda:N", choices=DEVICES, advanced=False, check=_device),
    Parameter("seed", int, "Random seed",
              "the same seed on the same machine gives the same result", 0, INT_MAX, advanced=False),
    # --- training
    Parameter("epochs", int, "Epochs", "training epochs of the kept start (at most)", 1, 10 ** 7),
    Parameter("lr", float, "Learning rate", "learning rate of the Adam optimiser", 1e-8, 10.0),
    Parameter("weight_decay", float, "Weight decay", "L2 weight decay of the optimiser", 0.0, 1.0),
    Parameter("schedule", str, "Learning rate schedule",
              "step: multiplied by the step factor every step (as published); cosine: down to zero at the "
              "last epoch", choices=("step", "cosine")),
    Parameter("lr_step", int, "Learning rate step (epochs)",
              "with the step schedule, the learning rate is multiplied by the step factor every this many "
              "epochs", 1, 10 ** 7),
    Parameter("lr_gamma", float, "Learning rate step factor",
              "with the step schedule, the factor applied to the learning rate at each step", 0.0, 1.0),
    Parameter("eem_lr", float, "Endmember module learning rate",
              "learning rate of the endmember module (0: the same as the learning rate)", 0.0, 10.0),
    Parameter("grad_clip", float, "Gradient spike limit",
              "each module's gradient is scaled down to at most this many times the median of its last 20 "
              "gradient norms, so that one overshooting step cannot throw the training far (0: no limit)",
              0.0, 1000.0),
    Parameter("starts", int, "Starts",
              "number of training starts from different initialisations; the one with the lowest loss is "
              "kept (or, with epochs per start, trained on to the end)", 1, 1000),
    Parameter("start_epochs", int, "Epochs per start",
              "epochs each start gets before the lowest-loss one is picked and trained on (0: every start "
              "trains the whole schedule)", 0, 10 ** 7),
    Parameter("patience", int, "Patience (epochs)",
              "stop once the loss has not improved for this many epochs (0: never stop early)", 0, 10 ** 7),
    Parameter("restarts", int, "Restarts when stuck",
              "fresh starts allowed when training gets stuck (the loss stops improving in the first half of "
              "the epochs, or the endmembers explain the image worse than its own extreme pixels do, on "
              "average or for a part of it a material left out would leave, as read or as denoised for the "
              "training: at most one such restart, and if they still do as read, the pixels are the endmembers, "
              "or fill in what was left out); the lowest-loss run the check accepts is kept", 0, 100),
    Parameter("min_delta", float, "Minimum relative improvement",
              "relative loss improvement that counts as one for the patience rule", 0.0, 1.0),
    Parameter("precision", str, "Training precision",
              "float32, bfloat16 or auto (bfloat16 where the CPU has native support)",
              choices=("float32", "bfloat16", "auto")),
    # --- network and loss
    Parameter("kernel", int, "Kernel size k",
              "convolution kernel size of the spatial branch (odd; the padding is k // 2)", 1, 99, check=_odd),
    Parameter("input_components", int, "Input components",
              "the network's first convolution works on this many leading spectral components of the "
              "enhanced image instead of its bands (fewer multiplications in its largest layer); 0: as many "
              "as the image's rank, which loses nothing (a denoised image has few); at least the number "
              "of bands: the bands, as published", 0, 10 ** 5),
    Parameter("a", float, "Loss weight a",
              "weight of the reconstruction term of the loss (spectral angle between the input and its "
              "reconstruction)", 0.0, 1e6),
    Parameter("b", float, "Loss weight b",
              "weight of the abundance constraint term of the loss (abundances non-negative and summing "
              "to one)", 0.0, 1e6),
    Parameter("c", float, "Loss weight c",
              "weight of the term that keeps the network's two reconstructions consistent", 0.0, 1e6),
    Parameter("abundances", str, "Abundances",
              "network: the abundance module's output (as published); refined: each pixel's non-negative "
              "least-squares fit on the learned endmembers (sharper after a short training; on large "
              "images it also skips the fusion of every tile)", choices=("network", "refined")),
    Parameter("pixel_brightness", str, "Pixel brightness",
              "with refined abundances: free: each pixel's brightness is its own (illumination, slope, shade) "
              "and its fit is scaled to sum to one; fixed: pixels are about as bright as the mixture of the "
              "endmembers (fractions close to FCLS, less noise); auto: chosen from the image by how well fits "
              "on half of the bands predict the other half", choices=("auto", "free", "fixed")),
    Parameter("pixel_simplex", float, "Pixel endmember threshold",
              "when the image's own extreme pixels (VCA's or N-FINDR's, whichever fit better) reconstruct it with "
              "a mean angle below this share of the network's endmembers' angle, those pixels are the endmembers "
              "(a noise-free scene with pure pixels); 0: only when, with restarts on, the network's endmembers "
              "explain the image worse than those pixels", 0.0, 1.0),
    # --- feature fusion
    Parameter("denoise", str, "Denoise",
              "subspace: the feature fusion and the training see each pixel projected on the image's signal "
              "subspace (noise-whitened components above the noise edge, at least one per endmember), which "
              "removes the noise outside it; the abundances and the error map still use the data as read. "
              "off: the data as read, as published", choices=("off", "subspace")),
    Parameter("w", float, "Fusion weight w",
              "weight between spectral (1) and spatial (0) similarity in the feature fusion module", 0.0, 1.0),
    Parameter("ffm_block", int, "Fusion block size (pixels)",
              "pixels per block of the spatial similarity product (memory against speed)", 1, 10 ** 9),
    Parameter("spectral_pixels", int, "Spectral kernel reference pixels",
              "band distances of the spectral similarity are scaled to this many pixels (9025, Samson's "
              "size, keeps the published behaviour at any image size; 0: raw sums)", 0, INT_MAX),
    # --- large images
    Parameter("method", str, "Method",
              "exact: the published method on the whole image; scalable: approximate fusion, training on "
              "windows, abundances tile by tile, in bounded memory; auto: exact up to the pixel limit",
              choices=("auto", "exact", "scalable")),
    Parameter("exact_limit", int, "Exact method up to (pixels)",
              "with the automatic method, images up to this many valid pixels are unmixed exactly; larger "
              "ones take the scalable path", 0, INT_MAX),
    Parameter("landmarks", int, "Fusion landmarks (scalable)",
              "landmark pixels of the approximate spatial similarity (first try; doubled until the measured "
              "error is within the tolerance)", 16, 65536),
    Parameter("ffm_tolerance", float, "Fusion error tolerance (scalable)",
              "relative error of the approximate spatial similarity term that is accepted", 0.0, 1.0),
    Parameter("train_windows", int, "Training windows (scalable)",
              "number of windows, spread over the image, the scalable path trains on", 1, 4096),
    Parameter("window", int, "Training window size (scalable)", "side of the training windows in pixels",
              8, 4096),
    Parameter("tile", int, "Tile size (scalable)",
              "side of the tiles abundances are computed on (made smaller automatically when memory is "
              "short)", 32, 16384),
    # --- hardware
    Parameter("threads", int, "CPU threads", "CPU threads torch may use (0: torch's default)", 0, 4096),
)

BY_NAME = {p.name: p for p in SCHEMA}


def choices_of(name: str) -> Tuple[str, ...]:
    return BY_NAME[name].choices


def advanced() -> Tuple[Parameter, ...]:
    return tuple(p for p in SCHEMA if p.advanced)
