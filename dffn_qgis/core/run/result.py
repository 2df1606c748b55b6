"""What one unmixing produces, before it is written anywhere."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np


@dataclass
class UnmixResult:
    """Abundances, endmembers and diagnostics of one run.

    ``abundances`` is float32 (P, rows, cols) in [0, 1] with NaN where the scene's pixel is
    invalid; ``endmembers`` is float32 (bands, P) in the scene's scaled units; ``error`` is the
    per-pixel spectral angle (radians) between input and reconstruction, NaN where invalid.
    ``record`` is the JSON-serialisable account of the run (parameters, device, timings, loss).
    """

    abundances: np.ndarray
    endmembers: np.ndarray
    error: np.ndarray
    loss: float
    history: List[float] = field(default_factory=list)
    record: dict = field(default_factory=dict)
    names: Optional[List[str]] = None     # one per endmember (default: "endmember i")

    @property
    def n_endmembers(self) -> int:
        return int(self.endmembers.shape[1])

    @property
    def endmember_names(self) -> List[str]:
        if self.names and len(self.names) == self.n_endmembers:
            return list(self.names)
        return [f"endmember {i + 1}" for i in range(self.n_endmembers)]


def no_abundance_note(n_empty: int, n_endmembers: int) -> str:
    """The log line for pixels :func:`sum_to_one` had to fill with 1/P."""
    return (f"{n_empty} pixel(s) got no abundance at all; they are set to 1/{n_endmembers} "
            f"for every endmember")


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
