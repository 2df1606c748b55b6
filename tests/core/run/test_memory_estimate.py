"""The memory estimate made before a run against the peak the run actually reaches."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dffn_qgis.core.eval import synthetic
from dffn_qgis.core.run.config import params_for
from dffn_qgis.core.errors import InputError
from dffn_qgis.core.run.memory import estimate_exact, estimate_scalable, peak, plan_memory, refuse

import torch

ROOT = Path(__file__).resolve().parents[3]
# One run in its own process; prints the process's peak RSS. VmHWM, not ru_maxrss: Linux keeps
# ru_maxrss across exec, so a child forked from a big pytest process reports the parent's size.
RUNNER = """
import json, sys
from dffn_qgis import cli
rc = cli.main(sys.argv[1:])
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"rc": rc, "peak": hwm * 1024}))
"""


@pytest.mark.parametrize("size", [200, 420])
def test_estimate_is_within_30_percent_of_the_measured_peak(size, tmp_path):
    s = synthetic.make_scene(size, size, 96, 4, seed=1, snr_db=35)
    image = synthetic.write_geotiff(s, tmp_path / "in.tif", scale=None)["image"]
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-c", RUNNER, "unmix", str(image), "-p", "4", "-o", str(out), "-q",
                          "--method", "scalable", "--epochs", "2", "--threads", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    measured = json.loads(res.stdout.strip().splitlines()[-1])["peak"]
    estimate = json.loads((out / "in_abundances.json").read_text())["memory_estimate"]["peak_bytes"]
    assert abs(estimate - measured) / measured <= 0.30, (estimate, measured)


def test_estimate_grows_linearly_with_the_pixel_count():
    params = params_for("fast")
    sizes = [1000, 2000, 4000]
    held = [estimate_scalable(224, n, n, params)["held"] for n in sizes]
    assert held[1] / held[0] == pytest.approx(4, rel=1e-6) and held[2] / held[1] == pytest.approx(4, rel=1e-6)
    # what does not grow with the image: training, fusion and tile working sets
    a, b = estimate_scalable(224, 1000, 1000, params), estimate_scalable(224, 4000, 4000, params)
    for stage in ("fusion", "training", "tiles"):
        assert a["stages"][stage] == b["stages"][stage]


def test_every_further_start_adds_its_endmember_module_to_the_training_estimate():
    n = 150
    one, two, three = (estimate_exact(100, n, n, params_for("fast", starts=k))["stages"]["training"]
                       for k in (1, 2, 3))
    step = 100 * n * n * 4 * 2            # weights and best state of the 100-unit first layer, float32
    assert two - one == step and three - two == step
    # short starts keep their gradients and Adam moments too, until the pick; no pick, nothing more
    short = estimate_exact(100, n, n, params_for("fast", starts=2, start_epochs=50))["stages"]["training"]
    assert short - one == 100 * n * n * 4 * 5
    no_pick = estimate_exact(100, n, n, params_for("fast", starts=2, start_epochs=700))["stages"]["training"]
    assert no_pick == one


def test_tiles_shrink_until_the_run_fits_then_it_is_refused():
    params = params_for("fast", abundances="network")     # the network's tiles are the largest stage
    base = 300 * 2 ** 20
    need = peak(estimate_scalable(224, 1000, 1000, params), base) - base
    smaller, plan = plan_memory("scalable", 224, 1000, 1000, params, torch.device("cpu"), baseline=base,
                                available=int(need * 0.9))
    assert plan["fits"] and smaller.tile < params.tile
    _, plan = plan_memory("scalable", 224, 1000, 1000, params, torch.device("cpu"), baseline=base,
                          available=10 * 2 ** 20)
    assert not plan["fits"]
    with pytest.raises(InputError, match="not enough memory"):
        refuse(plan)
    _, exact = plan_memory("exact", 224, 4000, 4000, params, torch.device("cpu"), baseline=base,
                           available=8 * 2 ** 30)
    assert not exact["fits"]


def test_refined_abundances_need_far_less_memory_per_tile():
    network = estimate_scalable(224, 1000, 1000, params_for("fast", abundances="network"))["stages"]["tiles"]
    refined = estimate_scalable(224, 1000, 1000, params_for("fast", abundances="refined"))["stages"]["tiles"]
    assert refined < network / 2
