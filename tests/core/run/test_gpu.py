"""The GPU gives the CPU's result within the tolerance measured on an NVIDIA H200, and repeats itself
(docs/RELIABILITY.md, "CPU and GPU"). These tests run only where torch sees a CUDA device; everywhere
else they skip.

    python -m pytest tests/core/run/test_gpu.py -s     # prints the measured differences
"""
import numpy as np
import pytest
import torch

from dffn_qgis.core.eval import synthetic
from dffn_qgis.core.eval.metrics import evaluate, normalise_endmembers
from dffn_qgis.core.io.scene import Scene
from dffn_qgis.core.method.model import DFFN
from dffn_qgis.core.run.config import params_for
from dffn_qgis.core.run.pipeline import unmix_scene

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA device (torch sees none; the GPU check is docs/DEVELOPERS.md)")

# One forward pass in float32 (TensorFloat-32 off, as runs use it): only the order of the sums differs.
FORWARD_RTOL = 2e-5            # measured: 1.6e-6 (H200, torch 2.11)
# After one epoch of the default preset, same seed: the two paths have hardly drifted apart yet.
ONE_EPOCH_ATOL = 1e-5          # measured: 2.1e-7 (endmembers), 0 (abundances)
# After 40 epochs the paths have drifted apart (training amplifies the sums' rounding), but the
# result is as accurate: mean SAD against the truth within this many radians.
SHORT_RUN_SAD_RAD = 0.01       # measured: 0.0012 (0.3158 against 0.3170)


def _scene():
    s = synthetic.make_scene(40, 44, 24, 3, seed=3, snr_db=40)
    cube = (s.cube / s.cube.max()).astype(np.float32)
    return Scene(data=cube, valid=np.ones(cube.shape[1:], bool), source="synthetic"), s


def _run(device, epochs):
    scene, truth = _scene()
    result = unmix_scene(scene, params_for(device=device, seed=1, n_endmembers=3, epochs=epochs, patience=0,
                                           restarts=0, method="exact"))
    sad = evaluate(result.endmembers, result.abundances.reshape(3, -1), truth.endmembers,
                   truth.abundances.reshape(3, -1))["mean_sad_rad"]
    return result, sad


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
    for name, g, c in zip(("A", "Y1", "E"), gpu, cpu):
        rel = float((g - c).abs().max() / c.abs().max())
        print(f"forward {name}: largest difference {rel:.2e} of the largest value")
        assert rel <= FORWARD_RTOL, name


def test_one_epoch_matches_the_cpu():
    (cpu, _), (gpu, _) = _run("cpu", 1), _run("cuda", 1)
    assert gpu.record["device"].startswith("cuda") and cpu.record["device"] == "cpu"
    e = float(np.abs(normalise_endmembers(gpu.endmembers) - normalise_endmembers(cpu.endmembers)).max())
    a = float(np.nanmax(np.abs(gpu.abundances - cpu.abundances)))
    print(f"one epoch: endmembers differ by {e:.2e}, abundances by {a:.2e}")
    assert e <= ONE_EPOCH_ATOL and a <= ONE_EPOCH_ATOL


def test_a_short_run_is_as_accurate_as_on_the_cpu():
    (cpu, sad_cpu), (gpu, sad_gpu) = _run("cpu", 40), _run("cuda", 40)
    e = float(np.abs(normalise_endmembers(gpu.endmembers) - normalise_endmembers(cpu.endmembers)).max())
    print(f"40 epochs: mean SAD {sad_gpu:.4f} (GPU) / {sad_cpu:.4f} (CPU) rad; endmembers differ by {e:.2e}")
    assert abs(sad_gpu - sad_cpu) <= SHORT_RUN_SAD_RAD


def test_the_gpu_repeats_a_run_exactly():
    (first, _), (second, _) = _run("cuda", 40), _run("cuda", 40)
    e = float(np.abs(first.endmembers - second.endmembers).max())
    a = float(np.nanmax(np.abs(first.abundances - second.abundances)))
    print(f"same run twice on the GPU: endmembers differ by {e:.2e}, abundances by {a:.2e}")
    assert np.array_equal(first.endmembers, second.endmembers)
    assert np.array_equal(first.abundances, second.abundances, equal_nan=True)
