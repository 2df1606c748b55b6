"""The GPU gives the CPU's result within the tolerance measured on an NVIDIA H200 (docs/RELIABILITY.md,
"CPU and GPU"). These tests run only where torch sees a CUDA device; everywhere else they skip.

    python -m pytest tests/core/run/test_gpu.py -s     # prints the measured differences
"""
import numpy as np
import pytest
import torch

from dffn_qgis.core.eval.metrics import normalise_endmembers
from dffn_qgis.core.method.model import DFFN
from dffn_qgis.core.run.config import params_for
from dffn_qgis.core.run.pipeline import unmix_scene
from small_scenes import scalable_scene

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA device (torch sees none; the GPU check is docs/DEVELOPERS.md)")

# One forward pass in float32 (TensorFloat-32 off, as runs use it): only the order of the sums differs.
FORWARD_RTOL = 1e-5
# A short default run, same seed (float32 both): the paths start equal and drift apart with the sums'
# order; the tolerances bound that drift on the run below (docs/RELIABILITY.md, "CPU and GPU").
RUN_ENDMEMBER_ATOL = 1e-2
RUN_ABUNDANCE_ATOL = 1e-2
SHORT = dict(seed=1, n_endmembers=3, epochs=40, patience=0, restarts=0, method="exact")


def _run(device):
    return unmix_scene(scalable_scene(), params_for(device=device, **SHORT))


def test_forward_pass_matches_the_cpu():
    torch.manual_seed(0)
    x = torch.rand(1, 24, 40, 44)
    net = DFFN(24, 3, 40 * 44).eval()
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            cpu = [t.double() for t in net(x)]
            gpu = [t.double().cpu() for t in net.to("cuda")(x.to("cuda"))]
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
    for name, g, c in zip(("A", "Y1", "E", "Y2"), gpu, cpu):
        rel = float((g - c).abs().max() / c.abs().max())
        print(f"forward {name}: largest difference {rel:.2e} of the largest value")
        assert rel <= FORWARD_RTOL, name


def test_a_short_run_matches_the_cpu():
    cpu, gpu = _run("cpu"), _run("cuda")
    assert gpu.record["device"].startswith("cuda") and cpu.record["device"] == "cpu"
    e = float(np.abs(normalise_endmembers(gpu.endmembers) - normalise_endmembers(cpu.endmembers)).max())
    a = float(np.nanmax(np.abs(gpu.abundances - cpu.abundances)))
    print(f"short run: endmembers differ by {e:.2e}, abundances by {a:.2e}; loss {gpu.loss:.6f} / {cpu.loss:.6f}")
    assert e <= RUN_ENDMEMBER_ATOL and a <= RUN_ABUNDANCE_ATOL


def test_the_gpu_repeats_a_run():
    first, second = _run("cuda"), _run("cuda")
    e = float(np.abs(first.endmembers - second.endmembers).max())
    a = float(np.nanmax(np.abs(first.abundances - second.abundances)))
    print(f"same run twice on the GPU: endmembers differ by {e:.2e}, abundances by {a:.2e}")
    assert e <= RUN_ENDMEMBER_ATOL and a <= RUN_ABUNDANCE_ATOL
