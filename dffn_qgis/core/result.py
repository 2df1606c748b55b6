"""What one unmixing produces, before it is written anywhere."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

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

    @property
    def n_endmembers(self) -> int:
        return int(self.endmembers.shape[1])

    @property
    def endmember_names(self) -> List[str]:
        return [f"endmember {i + 1}" for i in range(self.n_endmembers)]
