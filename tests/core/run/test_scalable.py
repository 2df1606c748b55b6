"""The scalable path on small images: windowed reading, approximate fusion, tiles, fallbacks."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dffn_qgis.core.run import scalable
from dffn_qgis.core.eval import synthetic
from dffn_qgis.core.method import train as train_module
from dffn_qgis.core.run.config import params_for
from dffn_qgis.core.run.device import Hardware
from dffn_qgis.core.method.ffm import fuse, spatial_product
from dffn_qgis.core.method.ffm_scalable import ScalableFusion
from dffn_qgis.core.method.model import DFFN
from dffn_qgis.core.io.outputs import plan_outputs
from dffn_qgis.core.run.pipeline import choose_method, unmix_file, unmix_scene
from dffn_qgis.core.run.progress import Monitor
from dffn_qgis.core.io.raster_io import read_scene
from dffn_qgis.core.io.raster_source import ArraySource, RasterSource
from dffn_qgis.core.run.result import sum_to_one

import reliability_cases as cases
from small_scenes import scalable_scene as _scene

QUICK = dict(n_endmembers=3, epochs=3, device="cpu", threads=1)


# ---------------------------------------------------------------------------------------------
# reading window by window

def test_raster_source_reads_what_read_scene_reads(tif_with_holes):
    whole = read_scene(str(tif_with_holes))
    source = RasterSource(str(tif_with_holes))
    assert source.scene.data is None
    assert source.scene.shape == whole.shape
    np.testing.assert_array_equal(source.scene.valid, whole.valid)
    assert source.scene.scaling == whole.scaling
    assert source.scene.band_indices == whole.band_indices
    np.testing.assert_allclose(source.scene.wavelengths, whole.wavelengths)
    assert source.scene.geotransform == whole.geotransform and source.scene.crs_wkt == whole.crs_wkt
    assert source.scene.notes == whole.notes and any(n.startswith("Dropped") for n in whole.notes)
    for box in ((0, 0, 70, 90), (13, 29, 40, 33), (69, 89, 1, 1)):
        data, valid = source.read(*box)
        r0, c0, rows, cols = box
        np.testing.assert_array_equal(valid, whole.valid[r0:r0 + rows, c0:c0 + cols])
        np.testing.assert_allclose(data, whole.data[:, r0:r0 + rows, c0:c0 + cols], rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# approximate fusion

@pytest.mark.parametrize("seed", [1, 2])
def test_approximate_fusion_stays_within_its_documented_bound(seed):
    scene = _scene(seed=seed)
    Y = torch.from_numpy(scene.data.reshape(scene.n_bands, -1))
    params = params_for("fast", n_endmembers=3, landmarks=64, seed=seed)
    fusion = ScalableFusion.fit(ArraySource(scene), params, torch.device("cpu"), scene.n_valid)
    fusion.normalise([Y])                 # as the exact path: normalised on the whole image
    # the error measured during the run on the check pixels is within the tolerance ...
    assert fusion.relative_error <= params.ffm_tolerance
    # ... and the error over all pixels is within twice it (the bound docs/METHOD.md states)
    exact_spatial = spatial_product(Y.double())
    _, approx_spatial = fusion.raw_terms(Y)
    whole_error = float(torch.linalg.norm(approx_spatial.double() - exact_spatial) / torch.linalg.norm(exact_spatial))
    assert whole_error <= 2 * params.ffm_tolerance
    # the enhanced image itself stays close to the exact FFM's
    exact = fuse(Y, params.w, spectral_pixels=params.spectral_pixels)
    assert float((fusion.enhance(Y) - exact).abs().max()) < 0.02
    np.testing.assert_allclose(fusion.fill, exact.mean(dim=1).numpy(), atol=2e-3)


def test_landmarks_double_until_the_tolerance_is_met():
    scene = _scene()
    loose = ScalableFusion.fit(ArraySource(scene), params_for("fast", n_endmembers=3, landmarks=16,
                                                              ffm_tolerance=0.5), torch.device("cpu"), scene.n_valid)
    tight = ScalableFusion.fit(ArraySource(scene), params_for("fast", n_endmembers=3, landmarks=16,
                                                              ffm_tolerance=1e-12), torch.device("cpu"), scene.n_valid)
    assert loose.n_landmarks == 16
    assert tight.n_landmarks == 16 * 8                  # up to MAX_LANDMARK_FACTOR times the first try
    assert tight.relative_error < loose.relative_error


def test_spectral_term_does_not_vanish_on_large_images():
    """Scaled to the reference pixel count, S_B of an image and of the same image tiled 4 x 4 agree;
    with raw sums the larger image's S_B is (nearly) the identity."""
    scene = _scene(height=30, width=30)
    Y = torch.from_numpy(scene.data.reshape(scene.n_bands, -1)).double()
    Y16 = Y.repeat(1, 16)
    from dffn_qgis.core.method.ffm import spectral_similarity
    small, large = spectral_similarity(Y, 9025), spectral_similarity(Y16, 9025)
    torch.testing.assert_close(small, large, rtol=1e-9, atol=1e-9)
    raw = spectral_similarity(Y16, 0)
    off_diagonal = raw - torch.diag(torch.diagonal(raw))
    assert float(off_diagonal.max()) < float((small - torch.diag(torch.diagonal(small))).max())


# ---------------------------------------------------------------------------------------------
# tiles

def _fitted(scene, params):
    fusion = ScalableFusion.fit(ArraySource(scene), params, torch.device("cpu"), scene.n_valid)
    fusion.normalise([torch.from_numpy(np.ascontiguousarray(scene.data[:, scene.valid]))])
    return fusion


def _whole_image_abundances(model, fusion, scene):
    image = fusion.enhance_window(scene.data, scene.valid, torch.device("cpu"))
    with torch.no_grad():
        maps = model.abundance_maps(torch.from_numpy(image)[None])[0].numpy()
    A, _, _ = sum_to_one(maps.reshape(maps.shape[0], -1))
    return A.reshape(maps.shape)


def test_tiled_abundances_equal_the_whole_image_ones():
    scene = _scene(height=61, width=75)
    params = params_for("fast", n_endmembers=3, tile=32, seed=4, abundances="network")
    fusion = _fitted(scene, params)
    torch.manual_seed(0)
    model = DFFN(scene.n_bands, 3, 100).eval()
    whole = _whole_image_abundances(model, fusion, scene)
    E = np.random.default_rng(0).uniform(0.1, 0.9, (scene.n_bands, 3)).astype(np.float32)
    predictor = scalable.TilePredictor(model, ArraySource(scene), fusion, E, params, torch.device("cpu"), Monitor())
    predictor.run()
    tiled = predictor.abundances
    seams = np.zeros(scene.valid.shape, bool)
    for edge in range(32, 75, 32):
        seams[:, max(0, edge - 6):edge + 6] = True
        seams[max(0, edge - 6):edge + 6, :] = True
    assert np.abs(tiled - whole)[:, ~seams].max() < 1e-5
    assert np.abs(tiled - whole)[:, seams].max() < 2e-4     # float32 summation order only
    assert np.isfinite(predictor.error).all()


def test_gpu_out_of_memory_splits_tiles_then_falls_back_to_the_cpu(monkeypatch):
    scene = _scene(height=70, width=70)
    params = params_for("fast", n_endmembers=3, tile=64, abundances="network")
    fusion = _fitted(scene, params)
    torch.manual_seed(0)
    model = DFFN(scene.n_bands, 3, 100).eval()
    E = np.full((scene.n_bands, 3), 0.5, np.float32)
    reference = scalable.TilePredictor(model, ArraySource(scene), fusion, E, params, torch.device("cpu"), Monitor())
    reference.run()

    real_predict = scalable.TilePredictor._predict
    tried = []

    def predict(self, r0, c0, rows, cols):
        tried.append((self.device.type, rows, cols))
        if self.device.type == "cuda":
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_predict(self, r0, c0, rows, cols)

    monkeypatch.setattr(scalable.TilePredictor, "_predict", predict)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(scalable.TilePredictor, "to_cpu",
                        lambda self: (setattr(self, "device", torch.device("cpu")), setattr(self, "cpu_fallback", True)))
    log = []
    gpu = scalable.TilePredictor(model, ArraySource(scene), fusion, E, params, torch.device("cuda"),
                                 Monitor(info=log.append))
    gpu.run()
    assert ("cuda", 64, 64) in tried and ("cuda", 32, 32) in tried      # split before giving up
    assert gpu.cpu_fallback
    assert any("splitting it in four" in m for m in log) and any("on the CPU" in m for m in log)
    np.testing.assert_allclose(gpu.abundances, reference.abundances, atol=1e-6)


def test_training_out_of_memory_on_the_gpu_retrains_on_the_cpu(monkeypatch):
    calls = []

    def fake_train(image, Y, index, params, monitor, hardware=None, judge=None):
        calls.append(params.device)
        if params.device.startswith("cuda"):
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return "outcome"

    monkeypatch.setattr(train_module, "train", fake_train)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    log = []
    gpu = Hardware(torch.device("cuda"), "test", torch.float32, "test")
    outcome, params = train_module.train_with_cpu_fallback(None, None, None, params_for("fast", device="cuda"),
                                                           Monitor(info=log.append), gpu)
    assert outcome == "outcome" and params.device == "cpu" and calls == ["cuda", "cpu"]
    assert any("training on the CPU instead" in m for m in log)


# ---------------------------------------------------------------------------------------------
# whole runs

def test_training_windows_cover_the_image_and_avoid_nodata():
    valid = np.ones((200, 300), bool)
    valid[:, :100] = False                       # a third of the image is nodata
    params = params_for("fast", train_windows=16, window=24)
    boxes = scalable.training_windows(valid, params)
    assert 1 <= len(boxes) <= 16
    for r0, c0, rows, cols in boxes:
        assert (rows, cols) == (24, 24) and 0 <= r0 <= 176 and 0 <= c0 <= 276
    assert sum(valid[r:r + h, c:c + w].mean() for r, c, h, w in boxes) / len(boxes) > 0.95
    assert scalable.training_windows(valid, params) == boxes          # same seed, same windows


def test_auto_method_follows_the_pixel_limit():
    params = params_for("fast")
    assert choose_method(200 * 200, params) == "exact"
    assert choose_method(200 * 201, params) == "scalable"
    assert choose_method(10, replace(params, method="scalable")) == "scalable"
    assert choose_method(10 ** 8, replace(params, method="exact")) == "exact"


def test_scalable_run_from_a_file_writes_every_output_and_records_it(tif_with_holes, tmp_path):
    params = params_for("fast", method="scalable", tile=32, train_windows=4, **QUICK)
    summary = unmix_file(str(tif_with_holes), plan_outputs(tmp_path, "holes"), params)
    record = summary.record
    assert record["method"] == "scalable"
    assert record["scalable"]["ffm_relative_error"] <= params.ffm_tolerance
    assert record["memory_estimate"]["peak_bytes"] > 0
    whole = read_scene(str(tif_with_holes))
    A = summary.result.abundances
    assert np.isnan(A[:, ~whole.valid]).all()
    assert np.allclose(A[:, whole.valid].sum(axis=0), 1.0, atol=1e-5)
    for key in ("stack", "error", "record_json", "endmembers_csv"):
        assert Path(summary.paths[key]).exists()


def test_scalable_path_is_deterministic_and_close_to_exact_on_a_small_scene():
    scene = _scene(height=40, width=40)
    params = params_for("fast", n_endmembers=3, epochs=20, device="cpu", threads=1, method="scalable",
                        train_windows=4, window=20)
    a = unmix_scene(scene, params)
    b = unmix_scene(scene, params)
    np.testing.assert_array_equal(a.abundances, b.abundances)
    np.testing.assert_array_equal(a.endmembers, b.endmembers)
    assert a.record["scalable"]["training_pixels"] == 4 * 20 * 20


def test_bad_inputs_get_the_same_messages_on_both_paths(tmp_path):
    from dffn_qgis.core.errors import InputError
    for builder, fragment in ((cases.all_nodata, "no valid pixel"), (cases.constant, "constant")):
        path = builder(tmp_path / f"{builder.__name__}.tif")
        for method in ("exact", "scalable"):
            with pytest.raises(InputError, match=fragment):
                unmix_file(path, plan_outputs(tmp_path / method, "x"),
                           params_for("fast", method=method, **QUICK))


def test_auto_method_turns_scalable_when_the_exact_method_does_not_fit(tmp_path, monkeypatch):
    from dffn_qgis.core.run import memory
    s = synthetic.make_scene(210, 190, 24, 3, seed=1, snr_db=40)
    image = synthetic.write_geotiff(s, tmp_path / "in.tif", scale=None)["image"]
    params = params_for("fast", n_endmembers=3, epochs=1, device="cpu", threads=1, exact_limit=10 ** 6)
    exact = memory.peak(memory.estimate_exact(24, 210, 190, params), 0)
    scaled = memory.peak(memory.estimate_scalable(24, 210, 190, params), 0)
    assert scaled < exact
    monkeypatch.setattr(memory, "available_memory", lambda: int((exact + scaled) / 2 / 0.85))
    log = []
    summary = unmix_file(image, plan_outputs(tmp_path / "out", "in"), params, monitor=Monitor(info=log.append))
    assert summary.record["method"] == "scalable"
    assert any("too much for the exact method" in m for m in log)
    monkeypatch.setattr(memory, "available_memory", lambda: int(scaled / 10))
    with pytest.raises(Exception, match="not enough memory"):
        unmix_file(image, plan_outputs(tmp_path / "out2", "in"), params)
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())


def test_a_raster_is_scanned_once_for_the_count_and_the_scalable_path(tif_with_holes, tmp_path, monkeypatch):
    """With the count estimated (0 endmembers) the raster is scanned once, and the fusion takes its
    band moments from that scan: its passes are the spatial term's only."""
    from dffn_qgis.core.io import raster_source
    from dffn_qgis.core.method import ffm_scalable
    scans, labels = [], []
    real_stats = raster_source.RasterSource._stats
    monkeypatch.setattr(raster_source.RasterSource, "_stats",
                        lambda self, *a, **k: scans.append(1) or real_stats(self, *a, **k))
    real_blocks = ffm_scalable.valid_blocks
    monkeypatch.setattr(ffm_scalable, "valid_blocks",
                        lambda source, device, monitor, label, **k: labels.append(label) or real_blocks(
                            source, device, monitor, label, **k))
    params = params_for("fast", method="scalable", tile=32, train_windows=4, **{**QUICK, "n_endmembers": 0})
    summary = unmix_file(str(tif_with_holes), plan_outputs(tmp_path, "holes"), params)
    assert summary.record["method"] == "scalable" and summary.result.endmembers.shape[1] >= 1
    assert len(scans) == 1
    assert labels and all(label.startswith("feature fusion: spatial similarity") for label in labels)
