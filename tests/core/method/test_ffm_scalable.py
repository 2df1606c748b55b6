"""The scalable fusion's global quantities: the band moments (streamed once, in any blocking, or by
the raster's scan), the extreme pixels and the normalisation fixed on the training pixels."""
import numpy as np
import pytest
import torch
from osgeo import gdal

from dffn_qgis.core.io.raster_source import ArraySource, RasterSource
from dffn_qgis.core.method.ffm_scalable import BandMoments, ScalableFusion
from dffn_qgis.core.run.config import params_for

from small_scenes import scalable_scene


def _moments(values: np.ndarray, blocks, size=50, seed=7) -> BandMoments:
    moments = BandMoments(size, seed)
    moments.start(values.shape[0])
    for part in np.array_split(values, blocks, axis=1):
        moments.update(part)
    return moments.finish()


def test_band_moments_are_the_gram_matrix_and_a_uniform_sample_whatever_the_blocking():
    rng = np.random.default_rng(0)
    values = rng.random((6, 1000)).astype(np.float32)
    one, many = _moments(values, 1), _moments(values, 37)
    np.testing.assert_allclose(one.gram, values.astype(np.float64) @ values.T.astype(np.float64), rtol=1e-5)
    np.testing.assert_allclose(many.gram, one.gram, rtol=1e-5)
    assert one.count == many.count == 1000
    # the same pixels in the same order, whatever the blocks
    np.testing.assert_array_equal(one.sample, many.sample)
    assert one.sample.shape == (6, 50)
    columns = {tuple(c) for c in values.T}
    assert all(tuple(c) in columns for c in one.sample.T)
    assert len({tuple(c) for c in one.sample.T}) == 50               # without replacement
    # another seed, another sample; fewer pixels than the size: all of them
    assert not np.array_equal(_moments(values, 1, seed=8).sample, one.sample)
    few = _moments(values[:, :20], 3)
    assert sorted(map(tuple, few.sample.T)) == sorted(map(tuple, values[:, :20].T))


def test_band_moments_sample_is_uniform_over_the_blocks():
    """Every pixel has the same chance, whether it comes in the first block or the last."""
    values = np.arange(2000, dtype=np.float32)[None, :]
    hits = np.zeros(2000)
    for seed in range(200):
        hits[_moments(values, 10, size=100, seed=seed).sample[0].astype(int)] += 1
    first, last = hits[:1000].sum(), hits[1000:].sum()
    assert abs(first - last) / (first + last) < 0.05


def test_the_raster_scan_gathers_the_same_moments_as_a_pass_over_the_scene(tmp_path):
    scene = scalable_scene(height=300, width=40)          # two reading windows
    scene.valid[100:140, 5:25] = False
    path = str(tmp_path / "scene.tif")
    driver = gdal.GetDriverByName("GTiff")
    raw = np.round(scene.data * 10000).astype(np.int16)
    raw[:, ~scene.valid] = -9999
    ds = driver.Create(path, scene.width, scene.height, scene.n_bands, gdal.GDT_Int16)
    for b in range(scene.n_bands):
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(raw[b])
        band.SetNoDataValue(-9999)
        band.SetScale(1e-4)
    ds = None
    params = params_for("fast", n_endmembers=3, landmarks=16)
    scanned = BandMoments.for_params(params)
    source = RasterSource(path, scan_with=scanned)
    read = np.stack([source.read(0, 0, scene.height, scene.width)[0][:, source.scene.valid]])[0]
    passed = _moments(read, 2, size=scanned.sample_size, seed=params.seed)
    assert scanned.count == passed.count == int(scene.valid.sum())
    np.testing.assert_allclose(scanned.gram, passed.gram, rtol=1e-5)
    np.testing.assert_allclose(scanned.sample, passed.sample, rtol=1e-6)
    source.close()


@pytest.mark.parametrize("w", [0.5, 0.0, 1.0])
def test_normalisation_is_fixed_on_the_given_pixels(w):
    """The given pixels' enhanced spectra span [0, 1] exactly and the fill is their mean; other
    pixels are scaled the same way."""
    scene = scalable_scene(height=60, width=40)
    params = params_for("fast", n_endmembers=3, landmarks=32, w=w)
    fusion = ScalableFusion.fit(ArraySource(scene), params, torch.device("cpu"), scene.n_valid)
    Y = torch.from_numpy(np.ascontiguousarray(scene.data.reshape(scene.n_bands, -1)))
    train = [Y[:, :500], Y[:, 1000:1300]]
    fusion.normalise(train)
    enhanced = fusion.enhance(torch.cat(train, dim=1))
    assert float(enhanced.min()) == pytest.approx(0.0, abs=1e-6)
    assert float(enhanced.max()) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(fusion.fill, enhanced.double().mean(dim=1).numpy(), atol=1e-6)
    # a pixel outside the training set gets the same affine map of its fused value
    other = Y[:, 2000:2001]
    lo, hi = fusion.fused_range
    torch.testing.assert_close(fusion.enhance(other), (fusion._combined(other) - lo) / (hi - lo))
    with pytest.raises(ValueError):
        fusion.normalise([Y[:, :0]])


def test_extreme_pixels_do_not_depend_on_the_spatial_term():
    """The finder streams with the spatial term's first pass, or in a pass of its own when there is
    no spatial term (w = 1): it finds the same pixels either way."""
    scene = scalable_scene(height=70, width=50)
    picks = []
    for w in (0.5, 1.0):
        params = params_for("fast", n_endmembers=3, landmarks=32, w=w)
        fusion = ScalableFusion.fit(ArraySource(scene), params, torch.device("cpu"), scene.n_valid, extremes=3)
        picks.append(fusion.extreme_centres)
    assert len(picks[0]) == 3 and picks[0] == picks[1]
