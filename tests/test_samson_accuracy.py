"""Accuracy of the default preset on the paper's Samson scene (skipped when the data is absent).

Bounds: the reference implementation reaches 0.033-0.042 rad mean SAD and 0.033-0.043 mean RMSE
on its good seeds and 0.160 / 0.156 on its bad seed 1 (docs in ../shared/docs/DFFN_METHOD.md);
VCA + FCLS gets about 0.07-0.08 rad and 0.26. The default preset must stay clearly on the good
side: mean SAD below 0.06 rad (the "no seed worse than" goal) and mean RMSE below 0.07 (its
refined abundances scored 0.033-0.053 over seeds 1-5; the network's own abundances, 0.074-0.115,
would fail). docs/BENCHMARKS.md has the per-seed figures.
"""
from pathlib import Path

import pytest

from dffn_qgis.core.config import params_for
from dffn_qgis.core.mat_io import read_mat_scene, read_mat_truth
from dffn_qgis.core.metrics import evaluate
from dffn_qgis.core.pipeline import unmix_scene

SAMSON = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "samson" / "Samson.mat"

MAX_MEAN_SAD_RAD = 0.06
MAX_MEAN_RMSE = 0.07


@pytest.mark.skipif(not SAMSON.exists(), reason=f"Samson scene not present at {SAMSON}")
def test_default_preset_on_samson():
    scene = read_mat_scene(str(SAMSON))
    A_true, M_true = read_mat_truth(str(SAMSON))
    result = unmix_scene(scene, params_for(n_endmembers=3, device="cpu"))
    scores = evaluate(result.endmembers, result.abundances, M_true, A_true)
    print(f"Samson, default preset, seed 1: mean SAD {scores['mean_sad_rad']:.4f} rad, "
          f"mean RMSE {scores['mean_rmse']:.4f}, {result.record['epochs_run']} epochs")
    assert scores["mean_sad_rad"] < MAX_MEAN_SAD_RAD
    assert scores["mean_rmse"] < MAX_MEAN_RMSE
