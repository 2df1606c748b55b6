"""Tests of reading unmixing-community MATLAB files (dffn_qgis.core.io.mat_io)."""
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from dffn_qgis.core.errors import InputError
from dffn_qgis.core.io.mat_io import read_mat_scene, read_mat_truth
from dffn_qgis.core.io.raster_io import read_scene

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"
SAMSON = SHARED / "samson" / "Samson.mat"


def column_major(cube):
    """(L, H, W) -> (L, H*W) with pixel n = row + col * H, as the MATLAB files store it."""
    return cube.reshape(cube.shape[0], -1, order="F")


@pytest.fixture
def cube():
    rng = np.random.default_rng(0)
    values = rng.uniform(0.05, 0.8, (5, 3, 4))
    values[2, 1, 3] = 0.9
    return values


def test_rectangular_image_with_nrow_ncol(tmp_path, cube):
    path = tmp_path / "r.mat"
    savemat(path, {"Y": column_major(cube), "nRow": 3, "nCol": 4})
    scene = read_mat_scene(path)
    assert scene.shape == (5, 3, 4) and scene.data.dtype == np.float32
    np.testing.assert_allclose(scene.data, cube / 0.9, rtol=1e-6)
    assert scene.valid.all() and scene.geotransform is None and scene.crs_wkt is None
    assert scene.wavelengths is None and scene.nodata is None
    assert scene.band_indices == [1, 2, 3, 4, 5] and scene.band_names[0] == "band 1"
    assert scene.scaling["divisor"] == pytest.approx(0.9)
    assert scene.scaling["rule"] == "divided by the maximum valid value"
    assert scene.source == str(path)


@pytest.mark.parametrize("keys", [{"H": 3, "W": 4}, {"nr": 3, "nc": 4}, {"NR": 3.0, "NC": 4.0},
                                  {"nrow": np.array([[3]]), "ncol": np.array([[4]])}])
def test_size_keys_in_any_case(tmp_path, cube, keys):
    path = tmp_path / "k.mat"
    savemat(path, {"Y": column_major(cube), **keys})
    np.testing.assert_allclose(read_mat_scene(path).data, cube / 0.9, rtol=1e-6)


def test_square_image_without_size(tmp_path):
    cube = np.random.default_rng(1).uniform(0, 1, (4, 5, 5))
    path = tmp_path / "sq.mat"
    savemat(path, {"Y": column_major(cube)})
    scene = read_mat_scene(path)
    np.testing.assert_allclose(scene.data, cube / cube.max(), rtol=1e-6)


def test_non_square_without_size_is_an_error(tmp_path, cube):
    path = tmp_path / "ns.mat"
    savemat(path, {"Y": column_major(cube)})
    with pytest.raises(InputError, match="nRow and nCol"):
        read_mat_scene(path)


def test_size_that_does_not_match(tmp_path, cube):
    path = tmp_path / "bad.mat"
    savemat(path, {"Y": column_major(cube), "nRow": 5, "nCol": 5})
    with pytest.raises(InputError, match="does not match"):
        read_mat_scene(path)


def test_pixels_by_bands_is_transposed(tmp_path, cube):
    path = tmp_path / "t.mat"
    savemat(path, {"Y": column_major(cube).T, "nRow": 3, "nCol": 4})
    np.testing.assert_allclose(read_mat_scene(path).data, cube / 0.9, rtol=1e-6)


def test_three_dimensional_y_is_rows_cols_bands(tmp_path, cube):
    path = tmp_path / "c.mat"
    savemat(path, {"Y": np.transpose(cube, (1, 2, 0))})
    np.testing.assert_allclose(read_mat_scene(path).data, cube / 0.9, rtol=1e-6)


def test_nan_pixels_are_masked(tmp_path, cube):
    cube = cube.copy()
    cube[1, 0, 2] = np.nan
    path = tmp_path / "nan.mat"
    savemat(path, {"Y": column_major(cube), "nRow": 3, "nCol": 4})
    scene = read_mat_scene(path)
    assert not scene.valid[0, 2] and scene.n_valid == 11
    assert np.isfinite(scene.data).all() and (scene.data[:, 0, 2] == 0).all()
    assert any("NaN" in note for note in scene.notes)


def test_band_subset(tmp_path, cube):
    path = tmp_path / "b.mat"
    savemat(path, {"Y": column_major(cube), "nRow": 3, "nCol": 4})
    scene = read_mat_scene(path, bands=[5, 1])
    assert scene.band_indices == [5, 1]
    expected = cube[[4, 0]]
    np.testing.assert_allclose(scene.data, expected / expected.max(), rtol=1e-6)
    with pytest.raises(InputError, match="band 6 does not exist"):
        read_mat_scene(path, bands=[6])


def test_reflectance_times_10000_gives_the_same_data(tmp_path, cube):
    savemat(tmp_path / "a.mat", {"Y": column_major(cube), "nRow": 3, "nCol": 4})
    savemat(tmp_path / "b.mat", {"Y": np.round(column_major(cube) * 10000).astype(np.int16),
                                 "nRow": 3, "nCol": 4})
    a, b = read_mat_scene(tmp_path / "a.mat"), read_mat_scene(tmp_path / "b.mat")
    np.testing.assert_allclose(a.data, b.data, atol=1e-4)


def test_constant_matrix_is_an_error(tmp_path):
    path = tmp_path / "const.mat"
    savemat(path, {"Y": np.full((3, 16), 0.4)})
    with pytest.raises(InputError, match="constant"):
        read_mat_scene(path)


def test_missing_y(tmp_path):
    path = tmp_path / "noy.mat"
    savemat(path, {"X": np.ones((2, 4))})
    with pytest.raises(InputError, match="no image matrix Y.*found: X"):
        read_mat_scene(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_mat_scene(tmp_path / "gone.mat")


def test_not_a_mat_file(tmp_path):
    path = tmp_path / "junk.mat"
    path.write_text("hello")
    with pytest.raises(InputError, match="junk.mat is not a MATLAB file"):
        read_mat_scene(path)


def test_v73_file_needs_h5py(tmp_path):
    # a MATLAB v7.3 header: 116 bytes of text, 8 bytes subsystem offset, version 0x0200, 'IM'
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116) + b" " * 8
    path = tmp_path / "v73.mat"
    path.write_bytes(header + b"\x00\x02IM" + b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(InputError, match="v7.3"):
        read_mat_scene(path)


def test_truth_of_a_file(tmp_path, cube):
    a = np.random.default_rng(2).dirichlet([1, 1], size=12).T           # 2 x 12
    m = np.random.default_rng(3).uniform(0, 1, (5, 2))
    path = tmp_path / "truth.mat"
    savemat(path, {"Y": column_major(cube), "A": a, "M": m, "nRow": 3, "nCol": 4})
    abundances, endmembers = read_mat_truth(path)
    assert abundances.shape == (2, 3, 4) and abundances.dtype == np.float64
    np.testing.assert_allclose(column_major(abundances), a)
    np.testing.assert_allclose(endmembers, m)
    savemat(path, {"Y": column_major(cube), "M": m.T, "nRow": 3, "nCol": 4})
    abundances, endmembers = read_mat_truth(path)
    assert abundances is None
    np.testing.assert_allclose(endmembers, m)                        # stored P x L, turned


def test_no_truth(tmp_path, cube):
    path = tmp_path / "plain.mat"
    savemat(path, {"Y": column_major(cube), "nRow": 3, "nCol": 4})
    assert read_mat_truth(path) == (None, None)


def _samson():
    if not SAMSON.exists():
        pytest.skip(f"Samson data not present ({SAMSON})")
    return SAMSON


def test_samson_scene():
    path = _samson()
    scene = read_scene(path)                               # dispatched on the .mat suffix
    assert scene.shape == (156, 95, 95) and scene.n_valid == 95 * 95
    assert scene.scaling["divisor"] == 1.0                 # already peaks at 1: unchanged
    y = loadmat(path)["Y"]
    np.testing.assert_allclose(scene.data[:, 10, 3], y[:, 10 + 3 * 95], rtol=1e-6)
    np.testing.assert_allclose(column_major(scene.data), y, atol=1e-7)


def test_samson_truth():
    abundances, endmembers = read_mat_truth(_samson())
    assert abundances.shape == (3, 95, 95) and endmembers.shape == (156, 3)
    np.testing.assert_allclose(abundances.sum(axis=0), 1.0, atol=1e-6)
