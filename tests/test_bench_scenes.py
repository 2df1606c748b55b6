"""The development scenes of the benchmark (benchmarks/): sensors and generated scenes."""
import numpy as np
import pytest

from benchmarks import scenes, sensors
from dffn_qgis.core.eval.metrics import sad_matrix
from dffn_qgis.core.io.spectral_library import earthlib_folder


@pytest.mark.parametrize("name,count", [("enmap", 224), ("emit", 285), ("aviris-ng", 425), ("broad56", 56)])
def test_sensor_grids(name, count):
    centres, fwhm = sensors.SENSORS[name]()
    assert centres.size == fwhm.size == count
    assert 370 <= centres.min() and centres.max() <= 2510 and (fwhm > 0).all()


def test_at_least_twelve_scenes_of_every_kind():
    assert len(scenes.ALL_NAMES) >= 12
    specs = scenes.GENERATED
    assert {s.sensor for s in specs} == set(sensors.SENSORS)
    assert min(len(s.materials) for s in specs) == 3 and max(len(s.materials) for s in specs) == 8
    assert {s.pure for s in specs} == {True, False} and {s.snr_db for s in specs} >= {20, 30, 40}
    assert any(s.illumination for s in specs) and any(s.nodata for s in specs)
    assert min(min(s.size) for s in specs) >= 50 and max(max(s.size) for s in specs) <= 150


@pytest.mark.skipif(earthlib_folder() is None, reason="the earthlib package is not installed (make setup)")
def test_a_generated_scene_follows_its_spec():
    spec = scenes.SceneSpec("T", "broad56", ("vegetation", "soil", "water", "asphalt"), (40, 30), 30, False,
                            max_fraction=0.7, illumination=0.2, nodata=True, seed=5)
    from dffn_qgis.core.io.spectral_library import read_earthlib
    lib = read_earthlib()
    bench = scenes.generate(spec, lib)
    again = scenes.generate(spec, lib)
    np.testing.assert_array_equal(bench.scene.data, again.scene.data)            # deterministic
    L, H, W = bench.scene.shape
    assert (L, H, W) == (56, 40, 30) and bench.endmembers.shape == (56, 4)
    np.testing.assert_allclose(bench.abundances.sum(axis=0), 1.0, atol=1e-5)
    assert bench.abundances.max() <= 0.7 + 1e-6
    assert 0 < bench.scene.n_valid < H * W and (bench.scene.data[:, ~bench.scene.valid] == 0).all()
    S = sad_matrix(bench.endmembers, bench.endmembers)
    assert S[~np.eye(4, dtype=bool)].min() >= scenes.MIN_ANGLE
    # the data are the truth's mixture, brightened or darkened per pixel, plus noise at about 30 dB
    clean = np.einsum("lp,phw->lhw", bench.endmembers, bench.abundances)
    v = bench.scene.valid
    ratio = (bench.scene.data[:, v] * clean[:, v]).sum(0) / (clean[:, v] ** 2).sum(0)
    assert 0.75 < ratio.min() and ratio.max() < 1.25 and ratio.std() > 0.02
    noise = bench.scene.data[:, v] - clean[:, v] * ratio
    snr = 10 * np.log10(np.mean(clean[:, v] ** 2) / np.mean(noise ** 2))
    assert 27 < snr < 33


def _bench_script(name="bench_scenes"):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_verdict_counts_rounding_as_a_tie_and_a_real_loss_as_a_miss():
    b = _bench_script()
    mine = {"sad": 3e-8, "rmse": 2e-5, "sad_worst": 4e-8, "rmse_worst": 3e-5}
    exact = {"VCA + FCLS": {"sad": 1e-8, "rmse": 1e-4}}
    assert b.verdict(mine, exact) == "meets the bar"
    worse = dict(mine, sad=0.01)
    assert b.verdict(worse, exact) == "misses: median SAD > VCA + FCLS"


def test_the_bar_is_vca_and_the_paper_preset_and_other_methods_are_said_beside_it():
    b = _bench_script()
    mine = {"sad": 0.05, "rmse": 0.10, "sad_worst": 0.06, "rmse_worst": 0.11}
    others = {"VCA + FCLS": {"sad": 0.07, "rmse": 0.12}, "N-FINDR + FCLS": {"sad": 0.04, "rmse": 0.2},
              "DFFN paper": {"sad": 0.06, "rmse": 0.09}}
    assert b.verdict(mine, others) == ("misses: median RMSE > DFFN paper; beside the bar: median SAD > "
                                       "N-FINDR + FCLS")
    assert b.verdict(mine, {k: others[k] for k in ("VCA + FCLS", "N-FINDR + FCLS")}) == (
        "meets the bar; beside the bar: median SAD > N-FINDR + FCLS")


def test_the_pixel_check_line_says_how_often_the_pixels_were_taken():
    b = _bench_script()
    runs = [{"pixel_simplex": {"endmembers_from": f, "network_angle_rad": 0.01, "pixel_angle_rad": p,
                               "threshold_ratio": 0.25}} for f, p in (("image pixels (VCA)", 1e-9), ("network", 0.012))]
    line = b.simplex_line("dc1", {"simplex": [r["pixel_simplex"] for r in runs]})
    assert line == ("- dc1: ratio 1e-07-1.2 (threshold 0.25); the image's pixels taken in 1 of 2 runs "
                    "(image pixels (VCA))")
    assert b.simplex_line("x", {"simplex": []}) == ""
    tails = [dict(r["pixel_simplex"], network_residual_p95=t, pixel_residual_p95=0.1) for r, t in zip(runs, (0.1, 0.3))]
    assert "network's over the pixels': 1-3 (limit 2);" in b.simplex_line("dc1", {"simplex": tails})


def test_the_residual_tails_script_reads_what_the_judge_reads():
    from dffn_qgis.core.eval import synthetic
    from dffn_qgis.core.method.pixel_simplex import TAIL_RATIO, ImagePixels
    tails = _bench_script("residual_tails")
    s = synthetic.make_scene(40, 40, 60, 4, seed=3, snr_db=30, pure_pixels=True)
    reference = ImagePixels.of(s.cube.reshape(60, -1).astype(np.float64), 4, seed=1)
    missed = s.endmembers.copy()
    missed[:, 0] = missed[:, 1]                                          # a material left out
    percentiles = tails.tails(reference, missed)
    assert tails.PERCENTILES[2] == 95 and percentiles[2] == pytest.approx(reference.fit(missed)[1])
    assert percentiles[2] > TAIL_RATIO * tails.tails(reference, reference.pixels)[2]
    text = tails.line("scene", reference, missed, s.endmembers)
    assert text.startswith("scene: pixels by ") and "the truth's" in text


def test_vertex_margins_see_a_duplicate_endmember():
    tails = _bench_script("residual_tails")
    E = np.abs(np.random.default_rng(0).normal(size=(30, 4))) + 0.1
    assert (tails.vertex_margins(E) > 0.05).all()
    E[:, 3] = 0.5 * E[:, 0] + 0.5 * E[:, 1]                 # inside the others' cone
    margins = tails.vertex_margins(E)
    assert margins[3] < 1e-6 and margins[2] > 0.05
