"""The global state a run changes, put back afterwards."""
from __future__ import annotations

import os

import numpy as np

from .config import DFFNParams
from .device import resolve_hardware


def settle_vector_math() -> None:
    """Call torch's vectorised elementwise functions once on every thread before a run computes with them.

    Measured with torch 2.13 (CPU, 2 threads) on an Intel Xeon with AMX: in about one process in five, the
    first ``torch.exp`` after a matrix product gave results 1.5e-4 off (relative; float64: 3e-9) on the
    part of the tensor one of the threads computed, and every later call was right to the last bit. That
    made the same seed give another band similarity, so another enhanced image and another training, in
    some processes only (the "comes and goes" of issue 10, point 5; docs/RELIABILITY.md). A first call
    here, on a tensor large enough to be split between the threads, takes that hit where nothing uses its
    result. Each function gets its own first call (float32 and float64); the cost is a few milliseconds."""
    import torch
    x = torch.linspace(0.01, 0.99, 1 << 17)
    for values in (x, x.double()):
        for function in (torch.exp, torch.log, torch.acos, torch.sqrt, torch.sigmoid, torch.tanh):
            function(values)


class RunContext:
    """What a run resolves once and the global state it changes, put back afterwards.

    ``hardware``: the device and training precision (:func:`~dffn_qgis.core.run.device.resolve_hardware`).
    Put back on exit: torch's and numpy's random generators (the engine seeds them), torch's CPU
    thread count (set from ``params.threads``) and its TensorFloat-32 switches. The Python of QGIS is
    shared with other plugins and with the next run.

    TensorFloat-32 is off during a run: on NVIDIA GPUs cuDNN's convolutions use it by default, which
    keeps 10 bits of each operand's mantissa; "float32" then means float32 on the GPU as on the CPU.
    On a GPU, torch's deterministic algorithms are on during a run (cuDNN's deterministic convolutions,
    no atomic additions in the backward passes), without their filling of new tensors with NaN; all put
    back afterwards. The same seed then gives the same result there too (docs/RELIABILITY.md, "CPU and
    GPU").
    """

    def __init__(self, params: DFFNParams):
        self.params = params
        self.hardware = resolve_hardware(params.device, params.precision)

    def __enter__(self) -> "RunContext":
        import torch
        self._torch = torch.random.get_rng_state()
        self._numpy = np.random.get_state()
        self._threads = torch.get_num_threads()
        if self.params.threads > 0:
            torch.set_num_threads(self.params.threads)
        settle_vector_math()
        self._tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        self._deterministic = None
        if self.hardware.device.type == "cuda":
            import torch.utils.deterministic
            self._deterministic = (torch.are_deterministic_algorithms_enabled(),
                                   torch.is_deterministic_algorithms_warn_only_enabled(),
                                   torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
                                   torch.utils.deterministic.fill_uninitialized_memory)
            # cuBLAS repeats its sums only with a fixed workspace; read when torch first uses cuBLAS
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
            # deterministic mode also fills every new tensor with NaN (a debugging aid): in a profile of
            # Samson on an H200 that was 200 fill kernels an epoch (docs/BENCHMARKS.md, "The GPU path")
            torch.utils.deterministic.fill_uninitialized_memory = False
        return self

    def __exit__(self, *exc_info) -> bool:
        import torch
        torch.random.set_rng_state(self._torch)
        np.random.set_state(self._numpy)
        if torch.get_num_threads() != self._threads:
            torch.set_num_threads(self._threads)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self._tf32
        if self._deterministic is not None:
            enabled, warn_only, cudnn_deterministic, cudnn_benchmark, fill = self._deterministic
            torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_deterministic, cudnn_benchmark
            torch.utils.deterministic.fill_uninitialized_memory = fill
        return False
