"""Choosing the torch device and the training precision, and saying why."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Tuple

import torch

from ..errors import InputError

_CUDA_RE = re.compile(r"^cuda(:\d+)?$")


def resolve_device(spec: str = "auto") -> Tuple[torch.device, str]:
    """Turn ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` into a device and a sentence for the log."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda"), f"auto: CUDA is available ({torch.cuda.get_device_name(0)})"
        return torch.device("cpu"), "auto: no CUDA device visible to torch, using the CPU"
    if spec == "cpu":
        return torch.device("cpu"), "cpu: asked for"
    if _CUDA_RE.match(spec):
        if not torch.cuda.is_available():
            raise InputError(f"device {spec!r} was asked for but torch sees no CUDA device "
                             f"(torch {torch.__version__}); use device 'auto' or 'cpu'")
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise InputError(f"device {spec!r} does not exist: torch sees {torch.cuda.device_count()} CUDA device(s)")
        return torch.device(spec), f"{spec}: asked for ({torch.cuda.get_device_name(index)})"
    raise InputError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bfloat16 matrix units (AVX512-BF16 or AMX), where bf16 autocast pays off."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


@dataclass(frozen=True)
class Hardware:
    """Where and in which precision a run trains, each with the sentence the log gives for it."""

    device: torch.device
    device_reason: str
    dtype: torch.dtype
    precision_reason: str

    @property
    def precision(self) -> str:
        return str(self.dtype).replace("torch.", "")


def resolve_hardware(device: str, precision: str) -> Hardware:
    """The device and the training precision for the parameters' ``device`` and ``precision``."""
    torch_device, device_reason = resolve_device(device)
    dtype, precision_reason = resolve_precision(precision, torch_device)
    return Hardware(torch_device, device_reason, dtype, precision_reason)


def resolve_precision(precision: str, device: torch.device) -> Tuple[torch.dtype, str]:
    """The autocast dtype for training (float32 means no autocast) and why."""
    if precision == "float32":
        return torch.float32, "float32: asked for"
    if precision == "bfloat16":
        return torch.bfloat16, "bfloat16 autocast: asked for"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "auto: the GPU supports bfloat16"
        return torch.float32, "auto: the GPU lacks bfloat16, using float32"
    if cpu_has_native_bf16():
        return torch.bfloat16, "auto: the CPU has native bfloat16 units (AVX512-BF16/AMX)"
    return torch.float32, "auto: the CPU has no native bfloat16 units, using float32"
