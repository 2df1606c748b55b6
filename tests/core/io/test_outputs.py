"""Writing a run's outputs: contents, georeferencing, atomicity, cancellation and errors."""
import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from dffn_qgis.core.io import outputs
from dffn_qgis.core.errors import Cancelled, InputError
from dffn_qgis.core.io.outputs import (NODATA, OutputPlan, plan_from_destinations, plan_outputs, write_geotiff,
                                    write_outputs)
from dffn_qgis.core.run.progress import Monitor
from dffn_qgis.core.run.result import UnmixResult
from dffn_qgis.core.io.scene import Scene

H, W, L, P = 10, 12, 6, 3
GEOTRANSFORM = (500000.0, 30.0, 0.0, 5800000.0, 0.0, -30.0)


def _wkt():
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    return srs.ExportToWkt()


def make_scene(wavelengths=True, source=""):
    rng = np.random.default_rng(0)
    valid = np.ones((H, W), dtype=bool)
    valid[0, :3] = False
    valid[5, 7] = False
    data = rng.uniform(0, 1, (L, H, W)).astype(np.float32) * valid
    return Scene(data=data, valid=valid,
                 wavelengths=np.linspace(450.0, 950.0, L) if wavelengths else None,
                 wavelength_units="nm" if wavelengths else None,
                 band_indices=[1, 2, 4, 5, 6, 8], band_names=[f"b{i}" for i in range(L)],
                 geotransform=GEOTRANSFORM, crs_wkt=_wkt(), nodata=-32768.0,
                 scaling={"rule": "divided by the maximum valid value", "divisor": 10000.0},
                 source=source)


def make_result(scene):
    rng = np.random.default_rng(1)
    A = rng.dirichlet(np.ones(P), H * W).T.reshape(P, H, W).astype(np.float32)
    A[:, ~scene.valid] = np.nan
    E = rng.uniform(0.1, 0.9, (L, P)).astype(np.float32)
    err = rng.uniform(0, 0.1, (H, W)).astype(np.float32)
    err[~scene.valid] = np.nan
    record = {"input": "scene <&> \"quoted\".tif", "preset": "fast", "device": "cpu",
              "params": {"seed": 7}, "epochs_run": 123, "final_loss": 0.0421,
              "timings": {"ffm": 1.5, "training": 20.25}}
    return UnmixResult(abundances=A, endmembers=E, error=err, loss=0.0421, history=[0.1, 0.0421],
                       record=record)


class CountingMonitor(Monitor):
    """Cancels once ``check()`` has been called ``after`` times (never when ``after`` is None)."""

    def __init__(self, after=None):
        self.calls = 0
        self.after = after
        super().__init__(is_cancelled=self._flip)

    def _flip(self):
        self.calls += 1
        return self.after is not None and self.calls > self.after


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    scene = make_scene()
    result = make_result(scene)
    paths = write_outputs(plan_outputs(tmp_path_factory.mktemp("out"), "run1"), scene, result)
    return scene, result, paths


def test_plan_names(tmp_path):
    plan = plan_outputs(tmp_path, "x")
    assert Path(plan.stack).name == "x_abundances.tif"
    assert [p.name for p in plan.abundance_paths(2)] == ["x_abundance_em1.tif", "x_abundance_em2.tif"]
    assert Path(plan.endmembers_sli).name == "x_endmembers.sli"
    assert Path(plan.record_json).name == "x_abundances.json"
    assert Path(plan.error).name == "x_error.tif"


def test_one_naming_scheme_from_the_chosen_destinations(tmp_path):
    plan = plan_from_destinations(tmp_path / "a.tif", None, tmp_path / "spectra.csv", tmp_path / "r.html",
                                  None, "p")
    assert Path(plan.record_json).name == "a.json" and Path(plan.endmembers_sli).name == "spectra.sli"
    assert (Path(plan.plot_png).name, Path(plan.plot_svg).name) == ("r.png", "r.svg")
    assert plan.abundance_dir is None and plan.error is None and plan.abundance_paths(3) == []
    assert plan_outputs(tmp_path, "x") == plan_from_destinations(
        tmp_path / "x_abundances.tif", tmp_path, tmp_path / "x_endmembers.csv", tmp_path / "x_report.html",
        tmp_path / "x_error.tif", "x", tmp_path / "x_dominant.tif")


def test_only_the_stack_and_its_record_when_nothing_else_is_asked(tmp_path):
    scene = make_scene()
    paths = write_outputs(plan_from_destinations(tmp_path / "only.tif"), scene, make_result(scene))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["only.json", "only.tif"]
    assert paths["error"] is None and paths["abundances"] == [] and paths["report_html"] is None


def test_dominant_endmember_raster_has_named_coloured_classes_and_keeps_nodata(written):
    scene, result, paths = written
    ds = gdal.Open(paths["dominant"])
    band = ds.GetRasterBand(1)
    classes = band.ReadAsArray()
    metadata, colours, nodata = band.GetMetadata(), band.GetRasterColorTable().GetCount(), band.GetNoDataValue()
    names = [metadata["CLASS_{}".format(k + 1)] for k in range(len(metadata))]
    ds = None
    A = result.abundances
    valid = np.isfinite(A).all(axis=0)
    assert nodata == 0 and (classes[~valid] == 0).all()
    assert (classes[valid] == np.argmax(A[:, valid], axis=0) + 1).all()
    assert names == result.endmember_names and colours >= P + 1


def test_record_and_report_summarise_each_endmember(written):
    scene, result, paths = written
    record = json.loads(Path(paths["record_json"]).read_text())
    summary = record["endmember_summary"]
    valid = np.isfinite(result.abundances).all(axis=0)
    assert [row["name"] for row in summary] == result.endmember_names
    assert sum(row["dominant_pixels"] for row in summary) == int(valid.sum())
    assert all(row["dominant_area_m2"] is not None for row in summary)        # the test CRS is projected
    assert "dominant area" in Path(paths["report_html"]).read_text()


def test_stack_round_trip(written):
    scene, result, paths = written
    ds = gdal.Open(paths["stack"])
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (W, H, P)
    assert ds.GetGeoTransform() == pytest.approx(GEOTRANSFORM)
    assert osr.SpatialReference(wkt=ds.GetProjection()).GetAuthorityCode(None) == "32633"
    assert ds.GetMetadata("IMAGE_STRUCTURE").get("COMPRESSION") == "DEFLATE"
    for b in range(P):
        band = ds.GetRasterBand(b + 1)
        assert band.DataType == gdal.GDT_Float32
        assert band.GetNoDataValue() == NODATA
        assert band.GetDescription() == result.endmember_names[b]
        values = band.ReadAsArray()
        assert np.all(values[~scene.valid] == NODATA)
        np.testing.assert_array_equal(values[scene.valid], result.abundances[b][scene.valid])


def test_per_endmember_and_error_rasters(written):
    scene, result, paths = written
    assert len(paths["abundances"]) == P
    for i, path in enumerate(paths["abundances"]):
        ds = gdal.Open(path)
        assert ds.RasterCount == 1
        assert ds.GetRasterBand(1).GetDescription() == result.endmember_names[i]
        np.testing.assert_array_equal(ds.ReadAsArray()[scene.valid], result.abundances[i][scene.valid])
    err = gdal.Open(paths["error"]).ReadAsArray()
    assert np.all(err[~scene.valid] == NODATA)
    np.testing.assert_array_equal(err[scene.valid], result.error[scene.valid])


def test_csv_columns(written):
    scene, result, paths = written
    with open(paths["endmembers_csv"], newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["wavelength"] + result.endmember_names
    values = np.array(rows[1:], dtype=float)
    np.testing.assert_allclose(values[:, 0], scene.wavelengths)
    np.testing.assert_allclose(values[:, 1:], result.endmembers, rtol=1e-7)


def test_csv_without_wavelengths_uses_source_band_numbers(tmp_path):
    scene = make_scene(wavelengths=False)
    paths = write_outputs(plan_outputs(tmp_path, "b"), scene, make_result(scene))
    with open(paths["endmembers_csv"], newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "band"
    assert [int(float(r[0])) for r in rows[1:]] == scene.band_indices


def test_sli_readable_by_spectral(written):
    from spectral.io import envi
    scene, result, paths = written
    hdr = Path(paths["endmembers_sli"]).with_suffix(".hdr")
    assert hdr.is_file()
    lib = envi.open(str(hdr))
    assert lib.spectra.shape == (P, L)
    np.testing.assert_allclose(lib.spectra, result.endmembers.T)
    assert list(lib.names) == result.endmember_names
    np.testing.assert_allclose(lib.bands.centers, scene.wavelengths)
    assert lib.bands.band_unit == "nm"


def test_plots_and_html(written):
    scene, result, paths = written
    assert Path(paths["plot_png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in Path(paths["plot_svg"]).read_text()
    page = Path(paths["report_html"]).read_text()
    assert "data:image/png;base64," in page
    for text in ("fast", "cpu", "123", "0.0421", "divided by the maximum valid value",
                 "10 x 12 pixels", "endmember 3", "feature fusion 1.5 s, training 20.25 s"):
        assert text in page, text
    assert "scene &lt;&amp;&gt; &quot;quoted&quot;.tif" in page
    assert "<&>" not in page


def test_record_json(written):
    scene, result, paths = written
    record = json.loads(Path(paths["record_json"]).read_text())
    assert record["preset"] == "fast"
    assert record["outputs"]["stack"] == paths["stack"]
    assert record["outputs"]["abundances"] == paths["abundances"]


def test_only_stack(tmp_path):
    scene = make_scene()
    paths = write_outputs(OutputPlan(stack=str(tmp_path / "only.tif")), scene, make_result(scene))
    assert os.listdir(tmp_path) == ["only.tif"]
    assert paths["abundances"] == [] and paths["report_html"] is None


def test_multi_block_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "BLOCK_ROWS", 3)
    scene = make_scene()
    maps = np.arange(2 * H * W, dtype=np.float32).reshape(2, H, W)
    maps[1, 4, 4] = np.nan
    path = tmp_path / "t.tif"
    monitor = CountingMonitor()
    write_geotiff(path, maps, scene, ["a", "b"], monitor)
    assert monitor.calls == 4            # one check per block of rows: 10 rows / 3
    back = gdal.Open(str(path)).ReadAsArray()
    expected = maps.copy()
    expected[1, 4, 4] = NODATA
    np.testing.assert_array_equal(back, expected)


def test_large_raster_is_tiled(tmp_path):
    scene = make_scene()
    path = tmp_path / "big.tif"
    write_geotiff(path, np.zeros((1, 300, 260), dtype=np.float32), scene, ["z"])
    assert gdal.Open(str(path)).GetRasterBand(1).GetBlockSize() == [256, 256]


def _count_checks():
    scene = make_scene()
    monitor = CountingMonitor()
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        write_outputs(plan_outputs(d, "c"), scene, make_result(scene), monitor)
    return monitor.calls


@pytest.mark.parametrize("after", [0, 1, 2, 4, 6, "last"])
def test_cancellation_leaves_nothing(tmp_path, after):
    if after == "last":
        after = _count_checks() - 1
    scene = make_scene()
    plan = plan_outputs(tmp_path, "c")
    Path(plan.stack).write_bytes(b"previous run")
    with pytest.raises(Cancelled):
        write_outputs(plan, scene, make_result(scene), CountingMonitor(after))
    assert sorted(os.listdir(tmp_path)) == ["c_abundances.tif"]
    assert Path(plan.stack).read_bytes() == b"previous run"


def test_failure_midway_removes_temporaries(tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "report_html", disk_full)
    scene = make_scene()
    with pytest.raises(OSError, match="No space"):
        write_outputs(plan_outputs(tmp_path, "f"), scene, make_result(scene))
    assert os.listdir(tmp_path) == []


def test_gdal_failure_raises_oserror(tmp_path):
    # a directory where the file should go: GDAL cannot create it
    with pytest.raises(OSError):
        write_geotiff(tmp_path, np.zeros((1, 2, 2)), make_scene(), ["x"])


def test_gdal_failure_with_gdal_exceptions_enabled(tmp_path):
    was = gdal.GetUseExceptions()
    gdal.UseExceptions()
    try:
        with pytest.raises((OSError, RuntimeError)):
            write_geotiff(tmp_path, np.zeros((1, 2, 2)), make_scene(), ["x"])
    finally:
        if not was:
            gdal.DontUseExceptions()


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    scene = make_scene()
    with pytest.raises(InputError, match="cannot write to the output folder"):
        write_outputs(plan_outputs(blocker / "sub", "u"), scene, make_result(scene))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_output_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    scene = make_scene()
    try:
        with pytest.raises(InputError):
            write_outputs(plan_outputs(ro, "u"), scene, make_result(scene))
    finally:
        ro.chmod(0o755)


def test_creates_output_dir(tmp_path):
    scene = make_scene()
    paths = write_outputs(plan_outputs(tmp_path / "a" / "b", "n"), scene, make_result(scene))
    assert Path(paths["stack"]).is_file()


def test_refuses_to_overwrite_input(tmp_path):
    source = tmp_path / "image.tif"
    source.write_bytes(b"input")
    scene = make_scene(source=str(source))
    with pytest.raises(InputError, match="overwrite the input"):
        write_outputs(OutputPlan(stack=str(source)), scene, make_result(scene))
    assert source.read_bytes() == b"input"


def test_the_plot_shows_the_files_own_values_and_says_reflectance_when_the_scale_says_so():
    from dffn_qgis.core.io.outputs import _as_in_the_file

    scene = make_scene()
    E = np.full((scene.n_bands, 2), 0.5)
    scene.scaling = {"gdal_scale": 0.0001, "gdal_offset": 0.0, "divisor": 0.6}     # int16 x 10000
    values, label = _as_in_the_file(E, scene)
    assert np.allclose(values, 0.3) and label == "reflectance"
    scene.scaling = {"gdal_scale": 1.0, "gdal_offset": 0.0, "divisor": 3000.0}      # raw counts
    values, label = _as_in_the_file(E, scene)
    assert np.allclose(values, 1500.0) and label == "value as in the input file"


def test_dominant_endmember_takes_the_first_of_equal_fractions_and_any_nan_as_nodata():
    A = np.array([[[0.2, 0.5, np.nan]], [[0.5, 0.5, 0.4]], [[0.3, 0.0, 0.6]]], dtype=np.float32)
    assert outputs.dominant_endmember(A).tolist() == [[2, 1, outputs.DOMINANT_NODATA]]


def test_the_report_summaries_hold_no_copy_of_the_abundance_stack():
    """The writing stage of a large scene: the summaries work one map at a time (the run's memory
    estimate counts 16 bytes a pixel for it; a float64 copy of 4 maps alone is 32)."""
    import tracemalloc

    from dffn_qgis.core.report.summary import endmember_summary, error_statistics

    rng = np.random.default_rng(0)
    A = rng.random((4, 500, 400), dtype=np.float32)
    A[:, :20, :30] = np.nan
    error = rng.random((500, 400), dtype=np.float32)
    error[:20, :30] = np.nan
    scene = Scene(data=None, valid=np.isfinite(error))
    result = UnmixResult(abundances=A, endmembers=np.ones((5, 4), np.float32), error=error, loss=0.0,
                         history=[], record={})
    tracemalloc.start()
    try:
        rows = endmember_summary(scene, result)
        stats = error_statistics(error)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak / error.size < 16
    assert sum(r["dominant_pixels"] for r in rows) == int(np.isfinite(error).sum())
    assert stats["median_rad"] == pytest.approx(float(np.median(error[np.isfinite(error)])))
