"""A whole run from a GeoTIFF: outputs, georeferencing, nodata, scaling invariance, record."""
import json
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from dffn_qgis.core.eval import synthetic
from dffn_qgis.core.run.config import params_for
from dffn_qgis.core.errors import Cancelled, InputError
from dffn_qgis.core.io.outputs import plan_outputs
from dffn_qgis.core.run.pipeline import unmix_file, unmix_scene
from dffn_qgis.core.run.progress import Monitor
from dffn_qgis.core.io.raster_io import read_scene

QUICK = dict(n_endmembers=3, epochs=4, device="cpu", threads=1)


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("scene")
    s = synthetic.make_scene(20, 18, 24, 3, seed=5, snr_db=40)
    scaled = synthetic.write_geotiff(s, d / "scaled.tif", scale=10000)["image"]
    unit = synthetic.write_geotiff(s, d / "unit.tif", scale=None)["image"]
    return Path(scaled), Path(unit)


def _run(path, out, monitor=None, **kw):
    params = params_for("paper", **{**QUICK, **kw})
    return unmix_file(str(path), plan_outputs(out, Path(path).stem), params, monitor=monitor)


def test_outputs_are_georeferenced_with_nodata(scene_files, tmp_path):
    scaled, _ = scene_files
    summary = _run(scaled, tmp_path)
    src = gdal.Open(str(scaled))
    mask = src.GetRasterBand(1).ReadAsArray() == src.GetRasterBand(1).GetNoDataValue()
    assert mask.any()
    for key in ("stack", "error"):
        ds = gdal.Open(summary.paths[key])
        assert ds.GetGeoTransform() == src.GetGeoTransform()
        assert ds.GetProjection() == src.GetProjection()
        band = ds.GetRasterBand(1)
        values = band.ReadAsArray()
        assert (values[mask] == band.GetNoDataValue()).all()
        assert (values[~mask] != band.GetNoDataValue()).all()
    stack = gdal.Open(summary.paths["stack"])
    assert stack.RasterCount == 3
    assert [stack.GetRasterBand(i + 1).GetDescription() for i in range(3)] == summary.endmember_names
    A = stack.ReadAsArray()[:, ~mask]
    assert A.min() >= 0 and A.max() <= 1 + 1e-6
    assert len(summary.paths["abundances"]) == 3
    for p in summary.paths["abundances"]:
        assert gdal.Open(p).RasterCount == 1
    record = json.loads(Path(summary.paths["record_json"]).read_text())
    assert record["params"]["seed"] == 1 and record["device"] == "cpu"
    assert record["scaling"]["rule"] and record["epochs_run"] == 4
    assert record["size"]["valid_pixels"] == int((~mask).sum())


def test_reflectance_times_10000_gives_the_same_result(scene_files, tmp_path):
    scaled, unit = scene_files
    a = unmix_scene(read_scene(str(scaled), use_bbl=False), params_for("paper", **QUICK))
    b = unmix_scene(read_scene(str(unit), use_bbl=False), params_for("paper", **QUICK))
    np.testing.assert_array_equal(np.isnan(a.abundances), np.isnan(b.abundances))
    diff = np.abs(a.abundances - b.abundances)[~np.isnan(a.abundances)]
    # the int16 file holds reflectance rounded to 1e-4, so results agree closely, not bit for bit;
    # a few pixels whose raw abundances nearly vanish may flip when normalised to sum to one. The
    # tail depends on the CPU's arithmetic: 99th percentile below 0.02 on an AVX2 AMD EPYC, 0.024 on
    # an AVX-512/AMX Intel Xeon (2026-12-03); a wrong scale moves the median, which stays at 0.
    assert np.median(diff) < 1e-3 and np.percentile(diff, 99) < 5e-2
    np.testing.assert_allclose(a.endmembers, b.endmembers, atol=1e-2)


def test_same_seed_same_files(scene_files, tmp_path):
    scaled, _ = scene_files
    one = _run(scaled, tmp_path / "one")
    two = _run(scaled, tmp_path / "two")
    np.testing.assert_array_equal(gdal.Open(one.paths["stack"]).ReadAsArray(),
                                  gdal.Open(two.paths["stack"]).ReadAsArray())


def test_cancel_leaves_no_outputs_and_input_untouched(scene_files, tmp_path):
    scaled, _ = scene_files
    before = scaled.read_bytes()
    seen = {"n": 0}

    def cancel_late():
        seen["n"] += 1
        return seen["n"] > 40

    with pytest.raises(Cancelled):
        _run(scaled, tmp_path / "out", Monitor(is_cancelled=cancel_late), epochs=200)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert scaled.read_bytes() == before


def test_too_few_bands_for_the_endmembers(tmp_path):
    s = synthetic.make_scene(8, 8, 3, 2, seed=1)
    path = synthetic.write_geotiff(s, tmp_path / "three_bands.tif", scale=None)["image"]
    with pytest.raises(InputError, match="at least 4 bands"):
        _run(path, tmp_path / "out", n_endmembers=3)
