"""A pixel of a run's input against the run's endmembers (what the spectra panel's map tool shows).

.venv/bin/python -m pytest tests/core/report/test_pixel_spectrum.py -q
"""
import json

import numpy as np
import pytest
from osgeo import gdal

from dffn_qgis.core.errors import InputError
from dffn_qgis.core.eval.synthetic import make_scene, nodata_mask, write_geotiff
from dffn_qgis.core.io.outputs import plan_outputs
from dffn_qgis.core.io.raster_io import read_scene
from dffn_qgis.core.report.pixel_spectrum import (fit_pixel, load_run, pixel_spectrum, raster_grid,
                                                  read_pixel)
from dffn_qgis.core.run import service
from dffn_qgis.core.run.config import params_for

H, W = 12, 12


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pixel")
    path = folder / "scene.tif"
    write_geotiff(make_scene(H, W, 16, 3, seed=2), path)
    # a fixed brightness spread: the fit has a soft sum term of non-zero weight, which the panel must use
    params = params_for("fast", n_endmembers=3, epochs=3, starts=1, start_epochs=0, patience=0, threads=1,
                        device="cpu", seed=1, pixel_brightness="fixed")
    summary = service.run(service.RunRequest.make(path, params, plan_outputs(folder / "out", "s")))
    return summary.paths


def test_fractions_are_those_of_the_abundance_raster(run):
    """The default (refined) rule gives, pixel by pixel, the fractions and the reconstruction angle the
    run wrote."""
    spectra = load_run(run["record_json"])
    assert spectra.rule == "nnls" and spectra.n_endmembers == 3 and spectra.wavelengths is not None
    assert spectra.sum_weight > 0
    assert spectra.sum_weight == json.load(open(run["record_json"]))["pixel_brightness"]["sum_weight"]
    stack = gdal.Open(run["stack"]).ReadAsArray()
    error = gdal.Open(run["error"]).ReadAsArray()
    scene = read_scene(spectra.input_path, bands=list(spectra.bands))
    mask = nodata_mask(H, W, seed=2)
    checked = 0
    for row, col in [(r, c) for r in range(0, H, 3) for c in range(0, W, 3)]:
        if mask[row, col]:
            continue
        fit = pixel_spectrum(spectra, row, col)
        np.testing.assert_allclose(fit.fractions, stack[:, row, col], atol=2e-4)
        np.testing.assert_allclose(fit.spectrum, scene.data[:, row, col], rtol=1e-5, atol=1e-6)
        assert abs(fit.fractions.sum() - 1) < 1e-9 and abs(fit.angle_rad - error[row, col]) < 1e-4
        checked += 1
    assert checked >= 8
    text = fit.describe(spectra.names)
    assert text.startswith(f"pixel (row {row}, col {col}): {spectra.names[0]} ") and "angle" in text


def test_nodata_and_outside_pixels_are_input_errors(run):
    spectra = load_run(run["record_json"])
    row, col = np.argwhere(nodata_mask(H, W, seed=2))[0]
    with pytest.raises(InputError, match="nodata"):
        pixel_spectrum(spectra, int(row), int(col))
    with pytest.raises(InputError, match="outside the raster"):
        read_pixel(spectra.input_path, spectra.bands, H, 0)


def test_map_points_to_pixels(run):
    spectra = load_run(run["record_json"])
    grid = raster_grid(spectra.input_path)
    x0, dx, _, y0, _, dy = grid.geotransform
    assert grid.pixel_at(x0 + 0.5 * dx, y0 + 0.5 * dy) == (0, 0)
    assert grid.pixel_at(x0 + 4.9 * dx, y0 + 2.1 * dy) == (2, 4)
    assert grid.pixel_at(x0 + (W - 0.1) * dx, y0 + (H - 0.1) * dy) == (H - 1, W - 1)
    assert grid.pixel_at(x0 - 0.1 * dx, y0) is None and grid.pixel_at(x0, y0 + (H + 1) * dy) is None
    assert "UTM" in grid.crs_wkt


def test_raster_without_georeference_is_placed_as_qgis_does(tmp_path):
    path = str(tmp_path / "plain.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 5, 4, 3, gdal.GDT_Float32)
    ds = None
    grid = raster_grid(path)
    assert grid.pixel_at(1.5, -2.5) == (2, 1) and grid.pixel_at(1.5, 2.5) is None


def test_each_rule_recovers_an_exact_mixture():
    rng = np.random.default_rng(0)
    E = rng.uniform(0.1, 1.0, (20, 3))
    a = np.array([0.2, 0.5, 0.3])
    y = E @ a
    for rule in ("nnls", "fcls", "ls"):
        fractions, reconstruction, angle = fit_pixel(y, E, rule)
        np.testing.assert_allclose(fractions, a, atol=1e-8)
        np.testing.assert_allclose(reconstruction, y, atol=1e-8)
        assert angle < 1e-6
    # twice as bright: the refined fractions are the same, the reconstruction follows the pixel
    fractions, reconstruction, _ = fit_pixel(2 * y, E, "nnls")
    np.testing.assert_allclose(fractions, a, atol=1e-8)
    np.testing.assert_allclose(reconstruction, 2 * y, atol=1e-8)
    fractions, reconstruction, _ = fit_pixel(2 * y, E, "network", fractions=a)
    np.testing.assert_allclose(reconstruction, 2 * y, atol=1e-8)
    with pytest.raises(InputError):
        fit_pixel(y, E, "network")


def test_a_run_without_spectra_files_is_an_input_error(run, tmp_path):
    record = json.load(open(run["record_json"]))
    record["outputs"]["endmembers_csv"] = record["outputs"]["endmembers_sli"] = None
    path = tmp_path / "r.json"
    path.write_text(json.dumps(record))
    with pytest.raises(InputError, match="no endmember spectra"):
        load_run(path)
    with pytest.raises(InputError, match="cannot read the run record"):
        load_run(tmp_path / "missing.json")


def test_values_in_the_input_files_units(run):
    spectra = load_run(run["record_json"])
    values, label = spectra.in_file_values(spectra.endmembers)
    np.testing.assert_allclose(values, spectra.endmembers * spectra.scaling["divisor"])
    assert label == "reflectance"          # int16 x 10000 with GDAL scale 1e-4
