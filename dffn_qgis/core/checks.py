"""Parameter checks that :meth:`DFFNParams.validate` does not make (yet).

Each of these values passes ``validate`` but fails later, deep in torch, with a traceback
(``ValueError: Invalid learning rate: nan``, ``ZeroDivisionError``, a shape mismatch) or runs
into a non-finite loss. The command line and the QGIS algorithm call :func:`check_params` right
after building the parameters, so the user gets one clear line before any work is done.
"""
from __future__ import annotations

import math

from .config import DFFNParams
from .errors import InputError

MAX_ENDMEMBERS = 100      # more is a typo, not a request (the QGIS parameter's maximum too)
_FLOAT_FIELDS = ("lr", "weight_decay", "lr_gamma", "eem_lr", "min_delta", "w", "a", "b", "c")


def check_params(params: DFFNParams) -> DFFNParams:
    """``params.validate()`` plus the checks it lacks; returns ``params`` or raises InputError."""
    params.validate()
    if params.n_endmembers > MAX_ENDMEMBERS:
        raise InputError(f"the number of endmembers must be at most {MAX_ENDMEMBERS} "
                         f"(got {params.n_endmembers})")
    for name in _FLOAT_FIELDS:
        value = getattr(params, name)
        if not math.isfinite(value):
            raise InputError(f"{name} must be a finite number (got {value})")
    for name, high in (("lr", 10.0), ("eem_lr", 10.0), ("weight_decay", 1.0), ("min_delta", 1.0),
                       ("a", 1e6), ("b", 1e6), ("c", 1e6)):
        if getattr(params, name) > high:       # beyond this torch overflows (value cannot be
            raise InputError(f"{name} must be at most {high:g} "   # converted to float)
                             f"(got {getattr(params, name)})")
    if params.weight_decay < 0 or params.min_delta < 0:
        raise InputError(f"weight_decay and min_delta must be >= 0 "
                         f"(got {params.weight_decay}, {params.min_delta})")
    if params.lr_step < 1:
        raise InputError(f"lr_step must be at least 1 epoch (got {params.lr_step})")
    if not 0.0 <= params.lr_gamma <= 1.0:
        raise InputError(f"lr_gamma must lie in [0, 1] (got {params.lr_gamma})")
    if params.padding != params.kernel // 2:
        raise InputError(f"padding must be kernel // 2 = {params.kernel // 2} so that the image "
                         f"keeps its size (got kernel {params.kernel}, padding {params.padding})")
    if not -2 ** 63 <= params.seed < 2 ** 63:
        raise InputError(f"the seed must fit in 64 bits (got {params.seed})")
    for name in ("patience", "start_epochs", "threads"):
        if getattr(params, name) < 0:
            raise InputError(f"{name} must be >= 0 (got {getattr(params, name)})")
    return params
