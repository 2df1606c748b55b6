"""Tests of the synthetic scene generator (spectra, abundances, noise, GeoTIFF and truth files)."""
import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from dffn_qgis.core.eval import synthetic
from dffn_qgis.core.errors import InputError
from dffn_qgis.core.eval.synthetic import (MATERIALS, endmember_spectra, make_abundances, make_scene,
                                      nodata_mask, read_truth_endmembers, write_geotiff)

ROOT = Path(__file__).resolve().parents[3]


def _at(spectrum, wl, where):
    return float(spectrum[np.argmin(np.abs(wl - where))])


# ---------------------------------------------------------------------------------------------
# spectra

def test_spectra_are_reflectances_at_any_wavelength():
    wl = np.sort(np.random.default_rng(0).uniform(400, 2500, 333))
    spectra = endmember_spectra(wl)
    assert spectra.shape == (333, len(MATERIALS)) >= (333, 6)
    assert np.all(np.isfinite(spectra))
    assert spectra.min() > 0 and spectra.max() < 1


def test_spectra_are_distinct_by_angle():
    spectra = endmember_spectra(np.linspace(400, 2500, 211))
    unit = spectra / np.linalg.norm(spectra, axis=0)
    angles = np.degrees(np.arccos(np.clip(unit.T @ unit, -1, 1)))
    off_diagonal = angles[~np.eye(len(MATERIALS), dtype=bool)]
    assert off_diagonal.min() > 8.0


def test_vegetation_has_its_features():
    wl = np.arange(400, 2501, 5.0)
    veg = endmember_spectra(wl, ["vegetation"])[:, 0]
    assert _at(veg, wl, 680) < _at(veg, wl, 550)            # chlorophyll dip below green peak
    assert _at(veg, wl, 800) > 4 * _at(veg, wl, 680)         # red edge
    for band, left, right in ((1450, 1300, 1650), (1940, 1800, 2200), (1200, 1100, 1280)):
        assert _at(veg, wl, band) < min(_at(veg, wl, left), _at(veg, wl, right))
    assert _at(veg, wl, 970) < _at(veg, wl, 900)


def test_soil_water_and_others_have_their_shapes():
    wl = np.arange(400, 2501, 5.0)
    spectra = dict(zip(MATERIALS, endmember_spectra(wl).T))
    soil, water = spectra["soil"], spectra["water"]
    assert _at(soil, wl, 1600) > _at(soil, wl, 500)          # rising
    assert _at(soil, wl, 2205) < min(_at(soil, wl, 2140), _at(soil, wl, 2270))   # clay feature
    assert np.all(np.diff(water[wl >= 450]) <= 1e-12)        # low and decaying
    assert water.max() < 0.1
    dry = spectra["dry vegetation"]
    assert _at(dry, wl, 2100) < min(_at(dry, wl, 2000), _at(dry, wl, 2200))   # cellulose
    assert spectra["asphalt"].max() < 0.12


def test_unknown_material_is_an_input_error():
    with pytest.raises(InputError, match="unknown material"):
        endmember_spectra([500.0], ["unobtainium"])


# ---------------------------------------------------------------------------------------------
# abundances

@pytest.mark.parametrize("pure", [True, False])
def test_abundances_sum_to_one_and_are_non_negative(pure):
    a = make_abundances(40, 50, 4, seed=3, pure_pixels=pure)
    assert a.shape == (4, 40, 50) and a.dtype == np.float32
    assert a.min() >= 0
    np.testing.assert_allclose(a.sum(axis=0), 1.0, atol=1e-5)


def test_pure_pixels_exist_for_every_material():
    a = make_abundances(48, 48, 5, seed=1, pure_pixels=True)
    for p in range(5):
        assert (a[p] > 0.95).sum() >= 3, f"material {p} has no pure region"


def test_no_pure_pixels_caps_every_abundance():
    a = make_abundances(48, 48, 5, seed=1, pure_pixels=False, max_abundance=0.8)
    assert a.max() <= 0.8 + 1e-6
    assert a.max() > 0.7                      # the cap is reached, not far below
    assert (a.max(axis=0) < 0.8 + 1e-6).all()


def test_abundances_are_smooth_fields():
    a = make_abundances(64, 64, 3, seed=0, pure_pixels=False)
    neighbour_step = np.abs(np.diff(a, axis=2)).mean()
    shuffled = np.random.default_rng(0).permutation(a.reshape(3, -1), axis=1).reshape(a.shape)
    assert neighbour_step < 0.3 * np.abs(np.diff(shuffled, axis=2)).mean()


def test_abundances_are_deterministic_from_the_seed():
    np.testing.assert_array_equal(make_abundances(20, 30, 3, seed=7), make_abundances(20, 30, 3, seed=7))
    assert not np.allclose(make_abundances(20, 30, 3, seed=7), make_abundances(20, 30, 3, seed=8))


@pytest.mark.parametrize("kwargs", [dict(n_endmembers=1), dict(n_endmembers=3, max_abundance=0.2)])
def test_bad_abundance_parameters_raise(kwargs):
    with pytest.raises(InputError):
        make_abundances(10, 10, **kwargs)


# ---------------------------------------------------------------------------------------------
# scenes

def test_make_scene_shapes_and_mixing_model():
    s = make_scene(16, 20, 30, 3, seed=0, snr_db=None)
    assert s.cube.shape == (30, 16, 20) and s.cube.dtype == np.float32
    assert s.abundances.shape == (3, 16, 20)
    assert s.endmembers.shape == (30, 3)
    assert s.wavelengths[0] == 400 and s.wavelengths[-1] == 2500
    assert s.names == list(MATERIALS)[:3]
    mixed = np.einsum("lp,phw->lhw", s.endmembers, s.abundances)
    np.testing.assert_allclose(s.cube, mixed, atol=1e-6)
    assert s.noise_sigma == 0.0


@pytest.mark.parametrize("snr", [20.0, 35.0])
def test_noise_has_the_requested_snr(snr):
    s = make_scene(40, 40, 50, 3, seed=2, snr_db=snr)
    clean = np.einsum("lp,phw->lhw", s.endmembers, s.abundances)
    noise = s.cube - clean
    measured = 10 * math.log10(np.mean(clean ** 2) / np.mean(noise ** 2))
    assert abs(measured - snr) < 0.2
    assert abs(noise.std() - s.noise_sigma) < 0.05 * s.noise_sigma


def test_scene_is_deterministic_and_independent_of_block_size():
    a = make_scene(17, 9, 12, 4, seed=5, block_rows=3)
    b = make_scene(17, 9, 12, 4, seed=5, block_rows=256)
    np.testing.assert_array_equal(a.cube, b.cube)
    c = make_scene(17, 9, 12, 4, seed=6)
    assert not np.allclose(a.cube, c.cube)


def test_custom_wavelength_range():
    s = make_scene(8, 8, 11, 2, wl_range=(450, 950))
    np.testing.assert_allclose(s.wavelengths, np.linspace(450, 950, 11))


@pytest.mark.parametrize("args", [(1, 8, 10, 3), (8, 8, 0, 3), (8, 8, 10, 1), (8, 8, 10, 99)])
def test_bad_scene_parameters_raise(args):
    with pytest.raises(InputError):
        make_scene(*args)


def test_nodata_mask_has_a_rectangle_and_a_blob():
    mask = nodata_mask(60, 80, seed=0)
    assert mask[0, -1] and mask[:10, -20:].all()          # the corner rectangle
    assert mask[int(0.72 * 59), int(0.28 * 79)]           # the blob's centre
    assert 0.03 < mask.mean() < 0.3
    assert not mask[30, 40]


# ---------------------------------------------------------------------------------------------
# writing

@pytest.fixture(scope="module")
def small_scene():
    return make_scene(24, 30, 15, 3, seed=4, snr_db=40)


def test_write_int16_geotiff(tmp_path, small_scene):
    paths = write_geotiff(small_scene, tmp_path / "s.tif")
    ds = gdal.Open(paths["image"])
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (30, 24, 15)
    srs = osr.SpatialReference(wkt=ds.GetProjection())
    assert srs.GetAuthorityCode(None) == "32633"
    gt = ds.GetGeoTransform()
    assert gt[1] == 30 and gt[5] == -30 and gt[0] > 0
    band = ds.GetRasterBand(2)
    wl = small_scene.wavelengths[1]
    assert band.GetDescription() == f"band 2 ({wl:g} Nanometers)"
    assert float(band.GetMetadataItem("wavelength")) == pytest.approx(wl)
    assert band.GetMetadataItem("wavelength_units") == "Nanometers"
    assert band.DataType == gdal.GDT_Int16
    assert band.GetNoDataValue() == -32768 and band.GetScale() == pytest.approx(1e-4)
    raw = band.ReadAsArray()
    mask = nodata_mask(24, 30, small_scene.seed)
    assert (raw[mask] == -32768).all() and (raw[~mask] != -32768).all()
    np.testing.assert_allclose(raw[~mask] * 1e-4, small_scene.cube[1][~mask], atol=5.1e-5)


def test_write_float_geotiff_without_nodata(tmp_path, small_scene):
    paths = write_geotiff(small_scene, tmp_path / "f.tif", nodata_region=False, scale=None)
    ds = gdal.Open(paths["image"])
    band = ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Float32 and band.GetNoDataValue() == -9999
    assert band.GetScale() in (None, 1.0)
    np.testing.assert_array_equal(ds.ReadAsArray(), small_scene.cube)


def test_truth_files(tmp_path, small_scene):
    paths = write_geotiff(small_scene, tmp_path / "t.tif")
    assert paths["abundances"].endswith("t_truth_abundances.tif")
    truth = gdal.Open(paths["abundances"])
    assert truth.RasterCount == 3 and truth.GetGeoTransform() == gdal.Open(paths["image"]).GetGeoTransform()
    assert truth.GetRasterBand(1).GetDescription() == "vegetation"
    a = truth.ReadAsArray()
    mask = nodata_mask(24, 30, small_scene.seed)
    assert np.isnan(a[:, mask]).all()
    np.testing.assert_allclose(a[:, ~mask], small_scene.abundances[:, ~mask])
    with open(paths["endmembers"], newline="") as handle:
        header = next(csv.reader(handle))
    assert header == ["wavelength", "vegetation", "soil", "water"]
    wl, em, names = read_truth_endmembers(paths["endmembers"])
    np.testing.assert_allclose(wl, small_scene.wavelengths)
    np.testing.assert_allclose(em, small_scene.endmembers, atol=1e-6)
    assert names == small_scene.names and em.min() >= 0 and em.max() <= 1


def test_uint16_storage_clips_negative_noise(tmp_path):
    scene = make_scene(10, 10, 5, 3, seed=0, snr_db=10)
    path = write_geotiff(scene, tmp_path / "u.tif", dtype=np.uint16)["image"]
    ds = gdal.Open(path)                      # keep the dataset alive while its band is used
    band = ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_UInt16 and band.GetNoDataValue() == 65535


# ---------------------------------------------------------------------------------------------
# command line

def test_command_line_writes_the_files(tmp_path, capsys):
    out = tmp_path / "cli.tif"
    code = synthetic.main([str(out), "--size", "12", "14", "--bands", "9", "--endmembers", "3",
                           "--seed", "1", "--no-pure", "--snr", "25"])
    assert code == 0
    ds = gdal.Open(str(out))
    assert (ds.RasterYSize, ds.RasterXSize, ds.RasterCount) == (12, 14, 9)
    assert (tmp_path / "cli_truth_abundances.tif").exists()
    assert (tmp_path / "cli_truth_endmembers.csv").exists()
    assert "cli.tif" in capsys.readouterr().out


def test_command_line_reports_bad_input(tmp_path, capsys):
    assert synthetic.main([str(tmp_path / "x.tif"), "--endmembers", "42"]) == 2
    assert "endmembers" in capsys.readouterr().err


def test_module_help_runs():
    result = subprocess.run([sys.executable, "-m", "dffn_qgis.core.eval.synthetic", "--help"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "--endmembers" in result.stdout and "--no-pure" in result.stdout
