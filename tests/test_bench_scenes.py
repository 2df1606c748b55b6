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
