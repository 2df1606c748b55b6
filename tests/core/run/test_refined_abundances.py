"""``abundances="refined"``: each pixel's NNLS fit on the learned endmembers, on both paths."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dffn_qgis.core.method.abundance_lsq import nnls
from dffn_qgis.core.run.config import params_for
from dffn_qgis.core.errors import InputError
from dffn_qgis.core.io.outputs import plan_outputs
from dffn_qgis.core.run.pipeline import unmix_file, unmix_scene
from dffn_qgis.core.io.raster_io import read_scene
from dffn_qgis.core.run.result import sum_to_one

from small_scenes import scalable_scene as _scene

# denoise off: these tests are of the abundance step, and their float32 refits (atol 1e-5) were sized on
# the endmembers the plain training learns here (the denoised run: tests/core/method/test_signal_subspace.py)
QUICK = dict(n_endmembers=3, epochs=15, device="cpu", threads=1, denoise="off")


def _with_hole(scene):
    valid = scene.valid.copy()
    valid[5:9, 10:20] = False
    return replace(scene, valid=valid)


def test_refined_exact_run_trains_the_same_network_and_fits_every_pixel():
    scene = _with_hole(_scene())
    network = unmix_scene(scene, params_for("fast", abundances="network", **QUICK))
    refined = unmix_scene(scene, params_for("fast", abundances="refined", pixel_brightness="free", **QUICK))
    # same training, only the abundances differ
    np.testing.assert_array_equal(network.endmembers, refined.endmembers)
    assert network.loss == refined.loss
    Y = scene.data[:, scene.valid]
    expected, _, _ = sum_to_one(nnls(Y, refined.endmembers).astype(np.float32))
    np.testing.assert_allclose(refined.abundances[:, scene.valid], expected, atol=1e-5)   # E written as float32
    assert np.isnan(refined.abundances[:, ~scene.valid]).all()
    assert np.isnan(refined.error[~scene.valid]).all()
    # the least-squares fit is the smallest reconstruction angle the endmembers allow
    assert np.all(refined.error[scene.valid] <= network.error[scene.valid] + 1e-5)
    assert refined.error[scene.valid].mean() < network.error[scene.valid].mean()
    assert refined.record["params"]["abundances"] == "refined"
    assert refined.record["pixel_brightness"]["sum_weight"] == 0.0


def _soft_fit(Y, E, record):
    return sum_to_one(nnls(Y, E, sum_weight=record["pixel_brightness"]["sum_weight"]).astype(np.float32))[0]


def test_refined_abundances_follow_the_chosen_brightness_spread():
    """The default (``pixel_brightness=auto``): the fit's soft sum term has the weight the record shows,
    chosen on held-out bands; ``fixed`` pulls every pixel's sum closer to one than ``free``."""
    scene = _with_hole(_scene())
    Y = scene.data[:, scene.valid]
    runs = {mode: unmix_scene(scene, params_for("fast", pixel_brightness=mode, **QUICK))
            for mode in ("auto", "free", "fixed")}
    for mode, run in runs.items():
        record = run.record["pixel_brightness"]
        assert record["how"] == ("chosen" if mode == "auto" else mode)
        np.testing.assert_allclose(run.abundances[:, scene.valid], _soft_fit(Y, run.endmembers, run.record),
                                   atol=1e-5)
        np.testing.assert_array_equal(run.endmembers, runs["free"].endmembers)      # same training
    assert runs["fixed"].record["pixel_brightness"]["sum_weight"] > 0
    assert len(runs["auto"].record["pixel_brightness"]["held_out_error"]) == 7

    def sum_gap(run):
        raw = nnls(Y, run.endmembers, sum_weight=run.record["pixel_brightness"]["sum_weight"]).sum(0)
        return float(np.abs(raw - 1).mean())
    assert sum_gap(runs["fixed"]) < sum_gap(runs["free"])


def test_refined_scalable_tiles_equal_one_fit_of_the_whole_image(tif_with_holes, tmp_path):  # noqa: F811
    params = params_for("fast", method="scalable", tile=32, train_windows=4, abundances="refined", **QUICK)
    summary = unmix_file(str(tif_with_holes), plan_outputs(tmp_path, "holes"), params)
    whole = read_scene(str(tif_with_holes))
    A = summary.result.abundances
    expected = _soft_fit(whole.data[:, whole.valid], summary.result.endmembers, summary.result.record)
    np.testing.assert_allclose(A[:, whole.valid], expected, atol=1e-5)
    assert np.isnan(A[:, ~whole.valid]).all()
    assert Path(summary.paths["stack"]).exists()


def test_unknown_abundance_source_is_refused():
    with pytest.raises(InputError, match="abundances must be one of network, refined"):
        params_for("fast", abundances="fcls")


def test_refined_abundances_do_not_need_the_tile_fusion(monkeypatch):
    """On the scalable path the refined abundances come from the pixels alone: no tile is enhanced."""
    from dffn_qgis.core.method.ffm_scalable import ScalableFusion
    calls = []
    original = ScalableFusion.enhance_window
    monkeypatch.setattr(ScalableFusion, "enhance_window",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    scene = _scene(height=70, width=70)
    params = params_for("fast", method="scalable", train_windows=4, window=20, tile=32,
                        abundances="refined", **QUICK)
    unmix_scene(scene, params)
    assert len(calls) == 4     # the four training windows only
    calls.clear()
    # (pixel check and restarts off: on this noise-free scene, or after a few epochs, it takes the
    # pixels, whose abundances are refined)
    unmix_scene(scene, replace(params, abundances="network", pixel_simplex=0.0, restarts=0))
    assert len(calls) == 4 + 9  # the training windows and every 32-pixel tile
