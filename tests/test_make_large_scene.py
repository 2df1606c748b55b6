"""Tests of scripts/make_large_scene.py at a tiny size: 64 x 64 x 20 bands, strips of 16 rows."""
import csv
import hashlib
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from dffn_qgis.core.eval import synthetic
from dffn_qgis.cli import main as dffn_main

ROOT = Path(__file__).resolve().parents[1]
SIZE, BANDS, P, SEED, STRIP, COPIES = 64, 20, 3, 3, 16, 3


def _load_script():
    spec = importlib.util.spec_from_file_location("make_large_scene", ROOT / "scripts" / "make_large_scene.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


mls = _load_script()


def _args(out, *extra):
    return [str(out), "--size", str(SIZE), "--bands", str(BANDS), "--endmembers", str(P),
            "--seed", str(SEED), "--strip-rows", str(STRIP), "-q", *map(str, extra)]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("large")
    out = folder / "scene.tif"
    assert mls.main(_args(out, "--tile-vrt", COPIES)) == 0
    return out


def _read(path):
    ds = gdal.Open(str(path))
    assert ds is not None, path
    return ds, ds.ReadAsArray()


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _mask():
    return synthetic.nodata_mask(SIZE, SIZE, SEED)


# ---------------------------------------------------------------------------------------------
# the image


def test_outputs_are_named_like_synthetic_truth(written):
    folder = written.parent
    names = {p.name for p in folder.iterdir()}
    assert {"scene.tif", "scene_truth_abundances.tif", "scene_truth_endmembers.csv",
            f"scene_x{COPIES}.vrt", f"scene_x{COPIES}_truth_abundances.vrt"} <= names


def test_image_shape_layout_and_georeferencing(written):
    ds, cube = _read(written)
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (SIZE, SIZE, BANDS)
    assert cube.dtype == np.float32
    band = ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Float32 and band.GetBlockSize() == [256, 256]
    structure = ds.GetMetadata("IMAGE_STRUCTURE")
    assert structure.get("INTERLEAVE") == "BAND" and "COMPRESSION" not in structure
    assert ds.GetGeoTransform() == (368000.0, 30.0, 0.0, 5810000.0, 0.0, -30.0)
    assert osr.SpatialReference(wkt=ds.GetProjection()).GetAuthorityCode(None) == "32633"


def test_wavelengths_are_in_the_band_metadata(written):
    ds = gdal.Open(str(written))
    expected = np.round(np.linspace(400, 2500, BANDS), 2)
    for b in range(BANDS):
        band = ds.GetRasterBand(b + 1)
        assert float(band.GetMetadataItem("wavelength")) == pytest.approx(expected[b])
        assert band.GetMetadataItem("wavelength_units") == "Nanometers"
        assert band.GetDescription() == f"band {b + 1} ({expected[b]:g} Nanometers)"


def test_nodata_region_is_present_and_small(written):
    ds, cube = _read(written)
    assert ds.GetRasterBand(1).GetNoDataValue() == -9999
    mask = _mask()
    assert 0.02 < mask.mean() < 0.3
    assert (cube[:, mask] == -9999).all()
    assert (cube[:, ~mask] != -9999).all() and np.isfinite(cube).all()


def test_image_is_the_mixture_at_the_requested_snr(written):
    _, cube = _read(written)
    _, truth = _read(written.with_name("scene_truth_abundances.tif"))
    _, E, _ = synthetic.read_truth_endmembers(written.with_name("scene_truth_endmembers.csv"))
    valid = ~_mask()
    clean = np.einsum("lp,pn->ln", E, truth[:, valid])
    noise = cube[:, valid] - clean
    assert abs(10 * math.log10(np.mean(clean ** 2) / np.mean(noise ** 2)) - 30.0) < 0.5


# ---------------------------------------------------------------------------------------------
# the truth


def test_truth_abundances_sum_to_one_with_pure_regions(written):
    ds, truth = _read(written.with_name("scene_truth_abundances.tif"))
    assert truth.shape == (P, SIZE, SIZE) and truth.dtype == np.float32
    assert [ds.GetRasterBand(p + 1).GetDescription() for p in range(P)] == list(synthetic.MATERIALS)[:P]
    mask = _mask()
    assert np.isnan(truth[:, mask]).all()
    valid = truth[:, ~mask]
    assert valid.min() >= 0
    np.testing.assert_allclose(valid.sum(axis=0), 1.0, atol=1e-5)
    for p in range(P):
        assert (valid[p] > 0.95).sum() >= 3, f"material {p} has no near-pure region"


def test_truth_endmembers_are_the_synthetic_spectra(written):
    wl, E, names = synthetic.read_truth_endmembers(written.with_name("scene_truth_endmembers.csv"))
    assert names == list(synthetic.MATERIALS)[:P]
    np.testing.assert_allclose(wl, np.round(np.linspace(400, 2500, BANDS), 2))
    np.testing.assert_allclose(E, synthetic.endmember_spectra(wl, names), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# strips


def test_file_equals_the_one_shot_generation(written):
    scene = mls.LargeScene(SIZE, SIZE, BANDS, P, seed=SEED)
    mask = scene.mask_rows(0, SIZE)
    np.testing.assert_array_equal(mask, _mask())
    cube = scene.cube_rows(0, SIZE)                       # (H, W, L) in one go
    cube[mask] = -9999
    np.testing.assert_array_equal(_read(written)[1], cube.transpose(2, 0, 1))
    truth = scene.abundance_rows(0, SIZE)
    truth[:, mask] = np.nan
    np.testing.assert_array_equal(_read(written.with_name("scene_truth_abundances.tif"))[1], truth)


def test_strips_join_smoothly(written):
    truth = _read(written.with_name("scene_truth_abundances.tif"))[1].astype(np.float64)
    truth[:, _mask()] = np.nan
    steps = np.nanmax(np.abs(np.diff(truth, axis=1)), axis=(0, 2))   # step from row r to r + 1
    boundary = np.zeros(SIZE - 1, dtype=bool)
    boundary[STRIP - 1::STRIP] = True
    assert steps[boundary].max() <= steps[~boundary].max()
    shuffled = np.random.default_rng(0).permutation(truth.reshape(P, -1), axis=1).reshape(truth.shape)
    assert np.nanmean(np.abs(np.diff(truth, axis=1))) < 0.3 * np.nanmean(np.abs(np.diff(shuffled, axis=1)))


@pytest.mark.parametrize("pure", [True, False])
def test_any_strip_split_gives_the_same_rows(pure):
    scene = mls.LargeScene(40, 70, 6, 4, seed=2, pure_pixels=pure)
    whole = scene.abundance_rows(0, 40)
    pieces = np.concatenate([scene.abundance_rows(r, min(40, r + 9)) for r in range(0, 40, 9)], axis=1)
    np.testing.assert_array_equal(pieces, whole)
    np.testing.assert_array_equal(np.concatenate([scene.cube_rows(0, 13), scene.cube_rows(13, 40)]),
                                  scene.cube_rows(0, 40))
    np.testing.assert_allclose(whole.sum(axis=0), 1.0, atol=1e-5)
    if not pure:
        assert whole.max() <= 0.8 + 1e-6


def test_same_seed_same_bytes_whatever_the_strip_size(written, tmp_path):
    again, other_strips = tmp_path / "a" / "scene.tif", tmp_path / "b" / "scene.tif"
    for path in (again, other_strips):
        path.parent.mkdir()
    assert mls.main(_args(again, "--tile-vrt", COPIES)) == 0
    for name in ("scene.tif", "scene_truth_abundances.tif", "scene_truth_endmembers.csv",
                 f"scene_x{COPIES}.vrt", f"scene_x{COPIES}_truth_abundances.vrt"):
        assert _sha(written.with_name(name)) == _sha(again.with_name(name)), name
    assert mls.main(_args(other_strips, "--strip-rows", 7)) == 0
    np.testing.assert_array_equal(_read(other_strips)[1], _read(written)[1])
    different = tmp_path / "c.tif"
    assert mls.main(_args(different, "--seed", SEED + 1)) == 0
    assert not np.array_equal(_read(different)[1], _read(written)[1])


# ---------------------------------------------------------------------------------------------
# the mosaic


def test_mosaic_vrt_repeats_the_image(written):
    vrt = written.with_name(f"scene_x{COPIES}.vrt")
    assert 'relativeToVRT="1"' in vrt.read_text()
    ds, mosaic = _read(vrt)
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (COPIES * SIZE, COPIES * SIZE, BANDS)
    assert ds.GetGeoTransform() == gdal.Open(str(written)).GetGeoTransform()
    assert osr.SpatialReference(wkt=ds.GetProjection()).GetAuthorityCode(None) == "32633"
    band = ds.GetRasterBand(BANDS)
    assert band.GetNoDataValue() == -9999 and float(band.GetMetadataItem("wavelength")) == 2500
    _, cube = _read(written)
    for i in range(COPIES):
        for j in range(COPIES):
            np.testing.assert_array_equal(mosaic[:, i * SIZE:(i + 1) * SIZE, j * SIZE:(j + 1) * SIZE], cube)
    window = ds.ReadAsArray(SIZE - 5, 2 * SIZE - 3, 10, 6)          # across copies
    np.testing.assert_array_equal(window, mosaic[:, 2 * SIZE - 3:2 * SIZE + 3, SIZE - 5:SIZE + 5])


def test_mosaic_truth_vrt_repeats_the_truth(written):
    ds, truth = _read(written.with_name(f"scene_x{COPIES}_truth_abundances.vrt"))
    assert truth.shape == (P, COPIES * SIZE, COPIES * SIZE)
    assert math.isnan(ds.GetRasterBand(1).GetNoDataValue())
    assert ds.GetRasterBand(2).GetDescription() == list(synthetic.MATERIALS)[1]
    single = _read(written.with_name("scene_truth_abundances.tif"))[1]
    np.testing.assert_array_equal(truth, np.tile(single, (1, COPIES, COPIES)))


# ---------------------------------------------------------------------------------------------
# evaluate accepts the truth


def _fake_run(folder: Path, truth: np.ndarray, wavelengths, E, names, order):
    """A folder like one 'unmix' writes, holding the truth itself with the materials reordered."""
    folder.mkdir()
    height, width = truth.shape[1:]
    ds = gdal.GetDriverByName("GTiff").Create(str(folder / "run_abundances.tif"), width, height,
                                              len(order), gdal.GDT_Float32)
    for k, p in enumerate(order):
        band = ds.GetRasterBand(k + 1)
        band.SetNoDataValue(float("nan"))
        band.WriteArray(truth[p])
    ds = None
    with open(folder / "run_endmembers.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["wavelength"] + [f"endmember {k + 1}" for k in range(len(order))])
        for wl, row in zip(wavelengths, E[:, order]):
            writer.writerow([f"{wl:g}"] + [f"{v:.6f}" for v in row])
    return folder


def _evaluate(capsys, *args):
    capsys.readouterr()
    assert dffn_main(["evaluate", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_evaluate_accepts_the_truth(written, tmp_path, capsys):
    wl, E, names = synthetic.read_truth_endmembers(written.with_name("scene_truth_endmembers.csv"))
    order = [2, 0, 1]
    valid = int((~_mask()).sum())

    truth = _read(written.with_name("scene_truth_abundances.tif"))[1]
    run = _fake_run(tmp_path / "run", truth, wl, E, names, order)
    for given in (written.with_name("scene_truth_abundances.tif"), written.parent):
        scores = _evaluate(capsys, run, "--truth", given)
        assert scores["n_pixels"] == valid and scores["n_true"] == P
        assert scores["one_to_one"]["sad_match"] == order
        assert scores["mean_sad_rad"] < 1e-5 and scores["mean_rmse"] < 1e-6

    truth_vrt = written.with_name(f"scene_x{COPIES}_truth_abundances.vrt")
    mosaic_run = _fake_run(tmp_path / "mosaic_run", _read(truth_vrt)[1], wl, E, names, order)
    scores = _evaluate(capsys, mosaic_run, "--truth", truth_vrt, "--truth-endmembers",
                       written.with_name("scene_truth_endmembers.csv"))
    assert scores["n_pixels"] == COPIES * COPIES * valid
    assert scores["one_to_one"]["sad_match"] == order
    assert scores["mean_sad_rad"] < 1e-5 and scores["mean_rmse"] < 1e-6


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("extra", [["--size", "1"], ["--endmembers", "1"], ["--strip-rows", "0"],
                                   ["--tile-vrt", "1"], ["--size", "4", "4", "4"]])
def test_bad_arguments_are_input_errors(tmp_path, capsys, extra):
    assert mls.main([str(tmp_path / "x.tif"), "--bands", "5", "-q", *extra]) == 2
    assert "error:" in capsys.readouterr().err


def test_missing_folder_is_an_input_error(tmp_path, capsys):
    assert mls.main([str(tmp_path / "no" / "x.tif"), "--size", "8", "--bands", "5", "-q"]) == 2
    assert "does not exist" in capsys.readouterr().err
