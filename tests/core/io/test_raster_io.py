"""Tests of reading rasters through GDAL into a Scene (dffn_qgis.core.io.raster_io)."""
import glob
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from osgeo import gdal, gdal_array, ogr, osr

from dffn_qgis.core.io import raster_io
from dffn_qgis.core.errors import Cancelled, InputError
from dffn_qgis.core.run.progress import Monitor
from dffn_qgis.core.io.band_metadata import find_wavelengths, normalise_units
from dffn_qgis.core.io.raster_io import read_scene
from dffn_qgis.core.eval.synthetic import make_scene, nodata_mask, write_geotiff

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"
ENMAP = SHARED / "enmap_potsdam"
GT = (368000.0, 30.0, 0.0, 5810000.0, 0.0, -30.0)


def write_raster(path, array, nodata=None, scale=None, offset=None, descriptions=None,
                 metadata=None, dataset_metadata=None, georef=True, driver="GTiff", gdal_type=None):
    """Write a (bands, rows, cols) array with the given per-band properties; returns the path."""
    path = str(path)
    array = np.asarray(array)
    n, h, w = array.shape
    if gdal_type is None:
        gdal_type = gdal_array.NumericTypeCodeToGDALTypeCode(array.dtype)
    ds = gdal.GetDriverByName(driver).Create(path, w, h, n, gdal_type)
    if georef:
        ds.SetGeoTransform(GT)
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(32633)
        ds.SetProjection(srs.ExportToWkt())
    for domain, items in (dataset_metadata or {}).items():
        for key, value in items.items():
            ds.SetMetadataItem(key, value, domain)
    for i in range(n):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(array[i])
        if nodata is not None:
            band.SetNoDataValue(float(nodata))
        if scale is not None:
            band.SetScale(scale)
        if offset is not None:
            band.SetOffset(offset)
        if descriptions is not None:
            band.SetDescription(descriptions[i])
        if metadata is not None:
            for key, value in metadata[i].items():
                band.SetMetadataItem(key, str(value))
    ds.FlushCache()
    ds = None
    return path


def ramp(n=3, h=4, w=5, dtype=np.float32):
    """A simple non-constant positive cube."""
    return (np.arange(n * h * w).reshape(n, h, w) + 1).astype(dtype)


@pytest.fixture(scope="module")
def synth():
    return make_scene(20, 26, 12, 3, seed=2, snr_db=40)


@pytest.fixture(scope="module")
def synth_files(synth, tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    return {"int16": write_geotiff(synth, folder / "int16.tif")["image"],
            "float": write_geotiff(synth, folder / "float.tif", scale=None)["image"]}


# ---------------------------------------------------------------------------------------------
# round trips with the synthetic writer

def test_bands_in_water_vapour_windows_are_dropped_unless_kept(synth, synth_files):
    wavelengths = np.asarray(synth.wavelengths)
    in_window = ((wavelengths > 1340) & (wavelengths < 1460)) | ((wavelengths > 1790) & (wavelengths < 1960)) | \
        (wavelengths > 2450)
    assert in_window.any()
    scene = read_scene(synth_files["int16"])
    assert scene.band_indices == [i + 1 for i in range(len(wavelengths)) if not in_window[i]]
    assert any("water-vapour windows" in note for note in scene.notes)
    assert read_scene(synth_files["int16"], use_bbl=False).n_bands == len(wavelengths)


def test_synthetic_geotiff_round_trip(synth, synth_files):
    scene = read_scene(synth_files["int16"], use_bbl=False)      # every band, the absorption windows too
    assert scene.shape == synth.cube.shape and scene.data.dtype == np.float32
    assert scene.geotransform == GT
    srs = osr.SpatialReference(wkt=scene.crs_wkt)
    assert srs.GetAuthorityCode(None) == "32633"
    mask = nodata_mask(20, 26, synth.seed)
    np.testing.assert_array_equal(scene.valid, ~mask)
    assert scene.nodata == -32768
    assert scene.wavelength_units == "nm"
    np.testing.assert_allclose(scene.wavelengths, synth.wavelengths)
    assert scene.band_indices == list(range(1, 13))
    assert scene.band_names[0] == "band 1 (400 Nanometers)"
    assert scene.source == synth_files["int16"]
    assert scene.scaling["gdal_scale"] == pytest.approx(1e-4)
    assert scene.scaling["gdal_offset"] == 0.0
    assert scene.scaling["rule"] == "divided by the maximum valid value"
    expected = synth.cube / synth.cube[:, ~mask].max()
    np.testing.assert_allclose(scene.data[:, ~mask], expected[:, ~mask], atol=2e-4)
    assert (scene.data[:, mask] == 0).all()
    assert scene.data[:, scene.valid].max() == 1.0
    assert any("nodata" in note and "-32768" in note for note in scene.notes)


def test_int16_times_10000_gives_the_same_data_as_float(synth_files):
    scaled = read_scene(synth_files["int16"])
    plain = read_scene(synth_files["float"])
    np.testing.assert_array_equal(scaled.valid, plain.valid)
    # the file values agree to the int16 rounding (0.5e-4 reflectance) ...
    np.testing.assert_allclose(scaled.data * scaled.scaling["divisor"],
                               plain.data * plain.scaling["divisor"], atol=5.1e-5)
    # ... so the scaled data (divided by a maximum of about 0.5) agree to about 1e-4
    np.testing.assert_allclose(scaled.data, plain.data, atol=2.5e-4)
    assert plain.scaling["gdal_scale"] == 1.0
    assert scaled.scaling["divisor"] == pytest.approx(plain.scaling["divisor"], rel=1e-3)


def test_data_already_peaking_at_one_is_unchanged(tmp_path):
    cube = np.random.default_rng(0).uniform(0, 1, (4, 6, 7)).astype(np.float32)
    cube[2, 3, 3] = 1.0
    scene = read_scene(write_raster(tmp_path / "unit.tif", cube))
    assert scene.scaling["divisor"] == 1.0
    np.testing.assert_array_equal(scene.data, cube)


# ---------------------------------------------------------------------------------------------
# wavelengths

def test_wavelengths_from_descriptions_only(tmp_path):
    descriptions = ["band 1 (418.24 Nanometers)", "band 2 (500 Nanometers)", "b3 612.5nm"]
    scene = read_scene(write_raster(tmp_path / "d.tif", ramp(), descriptions=descriptions))
    np.testing.assert_allclose(scene.wavelengths, [418.24, 500, 612.5])
    assert scene.wavelength_units == "nm"
    assert scene.band_names == descriptions


def test_wavelengths_in_micrometres_from_band_metadata(tmp_path):
    md = [{"wavelength": v, "wavelength_units": "Micrometers"} for v in (0.45, 0.55, 0.65)]
    scene = read_scene(write_raster(tmp_path / "m.tif", ramp(), metadata=md))
    np.testing.assert_allclose(scene.wavelengths, [0.45, 0.55, 0.65])
    assert scene.wavelength_units == "um"
    assert scene.band_names == ["band 1", "band 2", "band 3"]


def test_band_metadata_wins_over_descriptions(tmp_path):
    md = [{"wavelength": v, "wavelength_units": "nm"} for v in (1, 2, 3)]
    desc = [f"{v} Micrometers" for v in (7, 8, 9)]
    scene = read_scene(write_raster(tmp_path / "w.tif", ramp(), metadata=md, descriptions=desc))
    np.testing.assert_allclose(scene.wavelengths, [1, 2, 3])
    assert scene.wavelength_units == "nm"


@pytest.mark.parametrize("values,unit", [((450, 550, 650), "nm"), ((0.45, 0.55, 0.65), "um"),
                                         ((8.1, 9.5, 11.2), "um")])
def test_wavelengths_without_units_get_one_from_their_range(tmp_path, values, unit):
    md = [{"wavelength": v} for v in values]
    scene = read_scene(write_raster(tmp_path / "nounit.tif", ramp(), metadata=md))
    np.testing.assert_allclose(scene.wavelengths, values)
    assert scene.wavelength_units == unit
    assert any("without a unit; read as" in note for note in scene.notes)


def test_unitless_numbers_that_cannot_be_wavelengths_are_not_used(tmp_path):
    md = [{"wavelength": v} for v in (1, 2, 3)]
    scene = read_scene(write_raster(tmp_path / "index.tif", ramp(), metadata=md))
    assert scene.wavelengths is None and scene.wavelength_units is None
    assert any("band numbers are used instead" in note for note in scene.notes)


def test_no_wavelengths_at_all(tmp_path):
    scene = read_scene(write_raster(tmp_path / "plain.tif", ramp()))
    assert scene.wavelengths is None and scene.wavelength_units is None
    assert scene.notes == []


def test_envi_written_by_gdal(tmp_path):
    cube = ramp(4, 5, 6, np.int16)
    path = write_raster(tmp_path / "g.img", cube, driver="ENVI", nodata=-1, dataset_metadata={
        "ENVI": {"wavelength": "{0.5, 0.6, 0.7, 0.8}", "wavelength_units": "Micrometers",
                 "bbl": "{1, 1, 0, 1}"}})
    scene = read_scene(path)
    np.testing.assert_allclose(scene.wavelengths, [0.5, 0.6, 0.8])
    assert scene.wavelength_units == "um"
    assert scene.band_indices == [1, 2, 4]
    assert any("bbl" in note for note in scene.notes)
    assert scene.geotransform == GT
    header_scene = read_scene(str(tmp_path / "g.hdr"))          # the header path works too
    np.testing.assert_array_equal(header_scene.data, scene.data)


def test_envi_written_by_spectral(tmp_path):
    envi = pytest.importorskip("spectral.io.envi")
    cube = np.random.default_rng(1).uniform(0, 1, (5, 6, 4)).astype(np.float32)   # rows, cols, bands
    cube[0, 0, :] = -9999
    envi.save_image(str(tmp_path / "s.hdr"), cube, force=True, metadata={
        "wavelength": [450, 550, 650, 750], "wavelength units": "Nanometers",
        "bbl": [1, 0, 1, 1], "data ignore value": -9999})
    scene = read_scene(tmp_path / "s.img")
    assert scene.geotransform is None and scene.crs_wkt is None
    assert scene.band_indices == [1, 3, 4]
    np.testing.assert_allclose(scene.wavelengths, [450, 650, 750])
    assert scene.wavelength_units == "nm" and scene.nodata == -9999
    assert not scene.valid[0, 0] and scene.n_valid == 29
    expected = np.transpose(cube, (2, 0, 1))[[0, 2, 3]]
    expected = expected / expected[:, scene.valid].max()
    np.testing.assert_allclose(scene.data[:, scene.valid], expected[:, scene.valid], rtol=1e-6)
    every = read_scene(tmp_path / "s.img", use_bbl=False)
    assert every.band_indices == [1, 2, 3, 4]


def test_envi_header_read_with_spectral_is_the_last_source():
    ds = gdal.GetDriverByName("MEM").Create("", 2, 2, 3, gdal.GDT_Float32)
    header = {"wavelength": ["1.1", "1.2", "1.3"], "wavelength units": "Micrometers"}
    values, units = find_wavelengths(ds, header)
    np.testing.assert_allclose(values, [1.1, 1.2, 1.3])
    assert units == "um"
    assert find_wavelengths(ds, {"wavelength": ["1", "2"], "wavelength units": "nm"}) == (None, None)


@pytest.mark.parametrize("given, short", [("Nanometers", "nm"), ("nanometer", "nm"), ("NM", "nm"),
                                          ("Micrometers", "um"), ("microns", "um"), ("µm", "um"),
                                          ("Unknown", None), ("", None), (None, None),
                                          ("Wavenumber", "Wavenumber")])
def test_normalise_units(given, short):
    assert normalise_units(given) == short


# ---------------------------------------------------------------------------------------------
# scale, offset, masks, band selection

def test_scale_and_offset_are_applied_before_the_division(tmp_path):
    raw = ramp(2, 3, 4, np.int16)
    scene = read_scene(write_raster(tmp_path / "so.tif", raw, scale=2.0, offset=0.5))
    physical = raw * 2.0 + 0.5
    np.testing.assert_allclose(scene.data, physical / physical.max(), rtol=1e-6)
    assert scene.scaling["gdal_scale"] == 2.0 and scene.scaling["gdal_offset"] == 0.5
    assert scene.scaling["divisor"] == pytest.approx(physical.max())


def test_per_band_scales_are_listed(tmp_path):
    path = write_raster(tmp_path / "pb.tif", ramp(2, 3, 4, np.int16))
    ds = gdal.Open(path, gdal.GA_Update)
    ds.GetRasterBand(2).SetScale(10.0)
    ds = None
    scene = read_scene(path)
    assert scene.scaling["gdal_scale"] == [1.0, 10.0]


def test_nodata_is_compared_on_raw_values(tmp_path):
    raw = ramp(2, 3, 4, np.int16)
    raw[0, 1, 1] = 50      # raw 50 is nodata; the scaled value 25 is not
    raw[1, 2, 3] = 50
    raw[0, 0, 0] = 25      # an ordinary value equal to the scaled nodata
    scene = read_scene(write_raster(tmp_path / "nd.tif", raw, nodata=50, scale=0.5))
    assert not scene.valid[1, 1] and not scene.valid[2, 3] and scene.n_valid == 10
    assert scene.valid[0, 0]
    assert (scene.data[:, ~scene.valid] == 0).all()
    assert scene.nodata == 50


def test_nan_and_inf_are_masked_with_a_note(tmp_path):
    cube = ramp(3, 4, 5)
    cube[0, 0, 0] = np.nan
    cube[2, 3, 4] = np.inf
    cube[1, 2, 2] = -np.inf
    scene = read_scene(write_raster(tmp_path / "nan.tif", cube))
    assert scene.n_valid == 17
    assert np.isfinite(scene.data).all()
    assert any("Masked 3 pixel(s) holding NaN or infinite values" in n for n in scene.notes)


def test_band_subset_in_the_given_order(tmp_path):
    md = [{"wavelength": v, "wavelength_units": "nm"} for v in (400, 500, 600, 700)]
    cube = ramp(4, 3, 3)
    scene = read_scene(write_raster(tmp_path / "sub.tif", cube, metadata=md), bands=[4, 2])
    assert scene.band_indices == [4, 2]
    np.testing.assert_allclose(scene.wavelengths, [700, 500])
    np.testing.assert_allclose(scene.data, cube[[3, 1]] / cube[[3, 1]].max())


def test_bbl_in_band_metadata(tmp_path):
    md = [{"bbl": flag} for flag in ("1", "0", "0", "1.0")]
    path = write_raster(tmp_path / "bbl.tif", ramp(4, 3, 3), metadata=md)
    scene = read_scene(path)
    assert scene.band_indices == [1, 4]
    assert any("Dropped 2 bad band(s)" in n and "2-3" in n for n in scene.notes)
    assert read_scene(path, use_bbl=False).band_indices == [1, 2, 3, 4]
    assert read_scene(path, bands=[2, 3]).band_indices == [2, 3]      # explicit bands win


def test_bbl_flagging_every_band_is_an_error(tmp_path):
    md = [{"bbl": "0"}, {"bbl": "0"}]
    with pytest.raises(InputError, match="bbl"):
        read_scene(write_raster(tmp_path / "allbad.tif", ramp(2, 3, 3), metadata=md))


def test_bands_without_any_valid_value_are_dropped_unless_chosen(tmp_path):
    cube = ramp(3, 4, 4)
    cube[1] = -5
    cube[0, 0, 0] = -5
    path = write_raster(tmp_path / "empty.tif", cube, nodata=-5)
    scene = read_scene(path)
    assert scene.band_indices == [1, 3] and scene.n_valid == 15
    assert any("holding only nodata" in n for n in scene.notes)
    with pytest.raises(InputError, match="band.*2.*no valid value"):
        read_scene(path, bands=[1, 2])


def test_identity_geotransform_and_missing_crs_give_none(tmp_path):
    scene = read_scene(write_raster(tmp_path / "nogeo.tif", ramp(), georef=False))
    assert scene.geotransform is None and scene.crs_wkt is None


def test_per_dataset_mask_band_is_honoured(tmp_path):
    path = write_raster(tmp_path / "msk.tif", ramp(2, 4, 4))
    ds = gdal.Open(path, gdal.GA_Update)
    ds.CreateMaskBand(gdal.GMF_PER_DATASET)
    mask = np.full((4, 4), 255, np.uint8)
    mask[0, :2] = 0
    ds.GetRasterBand(1).GetMaskBand().WriteArray(mask)
    ds = None
    scene = read_scene(path)
    assert scene.n_valid == 14 and not scene.valid[0, 0]
    assert any("mask" in n for n in scene.notes)


def test_alpha_band_is_a_mask_not_a_band(tmp_path):
    cube = np.concatenate([ramp(3, 4, 4, np.uint8), np.full((1, 4, 4), 255, np.uint8)])
    cube[3, 3, 3] = 0
    path = write_raster(tmp_path / "alpha.tif", cube)
    ds = gdal.Open(path, gdal.GA_Update)
    ds.GetRasterBand(4).SetColorInterpretation(gdal.GCI_AlphaBand)
    ds = None
    scene = read_scene(path)
    assert scene.band_indices == [1, 2, 3]
    assert scene.n_valid == 15 and not scene.valid[3, 3]


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                   np.float32, np.float64])
def test_every_real_data_type(tmp_path, dtype):
    cube = ramp(2, 3, 4, dtype)
    scene = read_scene(write_raster(tmp_path / "t.tif", cube, nodata=1))
    assert scene.n_valid == 11 and scene.data.dtype == np.float32
    assert scene.data[:, scene.valid].max() == 1.0


def test_monitor_gets_progress_and_can_cancel(tmp_path):
    path = write_raster(tmp_path / "mon.tif", ramp(4, 3, 3))
    seen = []
    read_scene(path, monitor=Monitor(progress=lambda f, m: seen.append(f)))
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    with pytest.raises(Cancelled):
        read_scene(path, monitor=Monitor(is_cancelled=lambda: True))


def test_reading_in_small_row_blocks_gives_the_same_data(tmp_path, monkeypatch):
    cube = np.random.default_rng(3).uniform(0, 1, (3, 11, 7)).astype(np.float32)
    cube[1, 5, 2] = np.nan
    path = write_raster(tmp_path / "blocks.tif", cube)
    whole = read_scene(path)
    monkeypatch.setattr(raster_io, "block_rows_for", lambda width, height, budget=0: 2)
    blocked = read_scene(path)
    np.testing.assert_array_equal(whole.data, blocked.data)
    np.testing.assert_array_equal(whole.valid, blocked.valid)


def test_mat_files_are_dispatched(tmp_path):
    from scipy.io import savemat
    y = np.arange(1, 3 * 12 + 1, dtype=float).reshape(3, 12)
    savemat(tmp_path / "tiny.mat", {"Y": y, "nRow": 3, "nCol": 4})
    scene = read_scene(tmp_path / "tiny.mat")
    assert scene.shape == (3, 3, 4)


# ---------------------------------------------------------------------------------------------
# errors

def _single_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message
    return message


def test_missing_file(tmp_path):
    message = _single_line_error(read_scene, tmp_path / "nope.tif")
    assert "nope.tif" in message and "no such file" in message


def test_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("just some words\n")
    message = _single_line_error(read_scene, path)
    assert "notes.txt" in message and "not a raster" in message


def test_folder(tmp_path):
    assert "folder" in _single_line_error(read_scene, tmp_path)


def test_vector_file(tmp_path):
    path = str(tmp_path / "points.geojson")
    ds = ogr.GetDriverByName("GeoJSON").CreateDataSource(path)
    layer = ds.CreateLayer("points", geom_type=ogr.wkbPoint)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromWkt("POINT (1 2)"))
    layer.CreateFeature(feature)
    feature = layer = ds = None
    message = _single_line_error(read_scene, path)
    assert "points.geojson" in message and "vector" in message


@pytest.mark.parametrize("bands, fragment", [([0], "band 0 does not exist"),
                                             ([1, 9], "band 9 does not exist"),
                                             ([], "empty"), ([2, 2], "listed twice"),
                                             ([1.5], "whole numbers"), (["x"], "whole numbers")])
def test_bad_band_numbers(tmp_path, bands, fragment):
    path = write_raster(tmp_path / "b.tif", ramp())
    assert fragment in _single_line_error(read_scene, path, bands=bands)


def test_numpy_integer_band_numbers_are_fine(tmp_path):
    path = write_raster(tmp_path / "np.tif", ramp())
    assert read_scene(path, bands=np.array([3, 1])).band_indices == [3, 1]


def test_complex_data(tmp_path):
    path = write_raster(tmp_path / "c.tif", ramp(2, 3, 3).astype(np.complex64))
    message = _single_line_error(read_scene, path)
    assert "complex" in message and "CFloat32" in message


def test_all_nodata(tmp_path):
    path = write_raster(tmp_path / "allnd.tif", np.full((2, 3, 3), -1, np.int16), nodata=-1)
    assert "no valid pixel" in _single_line_error(read_scene, path)


def test_nodata_everywhere_in_some_band_for_every_pixel(tmp_path):
    cube = ramp(2, 2, 2)
    cube[0, 0, :] = -1
    cube[1, 1, :] = -1
    path = write_raster(tmp_path / "holes.tif", cube, nodata=-1)
    assert "no valid pixel" in _single_line_error(read_scene, path)


def test_constant_image(tmp_path):
    path = write_raster(tmp_path / "const.tif", np.full((3, 4, 4), 250, np.uint8))
    assert "constant" in _single_line_error(read_scene, path)


def test_negative_image(tmp_path):
    path = write_raster(tmp_path / "neg.tif", -ramp())
    assert "largest valid value" in _single_line_error(read_scene, path)


def test_negative_values_are_kept_with_a_note(tmp_path):
    cube = ramp()
    cube[0, 0, 0] = -3
    scene = read_scene(write_raster(tmp_path / "someneg.tif", cube))
    assert scene.data.min() < 0
    assert any("negative" in n for n in scene.notes)


def test_values_beyond_float32(tmp_path):
    cube = ramp(dtype=np.float64)
    cube[0, 0, 0] = 1e300
    assert "float32" in _single_line_error(read_scene, write_raster(tmp_path / "huge.tif", cube))


# ---------------------------------------------------------------------------------------------
# property test

DTYPES = [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64]


@st.composite
def rasters(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    n = draw(st.integers(1, 3))
    h = draw(st.integers(1, 5))
    w = draw(st.integers(1, 5))
    if dtype.kind == "f":
        elements = st.floats(-1e6, 1e6, width=32) | st.sampled_from([np.nan, np.inf, -np.inf, 0.0])
    else:
        info = np.iinfo(dtype)
        elements = st.integers(max(info.min, -50000), min(info.max, 50000)) | st.sampled_from(
            [int(info.min), int(info.max), 0])
    values = draw(st.lists(elements, min_size=n * h * w, max_size=n * h * w))
    cube = np.array(values, dtype=np.float64).reshape(n, h, w).astype(dtype)
    nodata_kind = draw(st.sampled_from(["none", "present", "absent", "nan"]))
    nodata = None
    if nodata_kind == "present":
        nodata = float(cube.reshape(-1)[draw(st.integers(0, cube.size - 1))])
        if np.isnan(nodata):
            nodata = None
    elif nodata_kind == "absent":
        nodata = -9999.0 if dtype.kind in "if" else float(np.iinfo(dtype).max)
    elif nodata_kind == "nan" and dtype.kind == "f":
        nodata = float("nan")
    scale = draw(st.sampled_from([None, (1e-4, 0.0), (0.5, 10.0), (-2.0, 0.0)]))
    wavelengths = draw(st.booleans())
    return cube, nodata, scale, wavelengths


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rasters())
def test_reader_property(raster):
    cube, nodata, scale, with_wavelengths = raster
    n, h, w = cube.shape
    path = f"/vsimem/prop_{uuid.uuid4().hex}.tif"
    md = [{"wavelength": 400 + 10 * i, "wavelength_units": "nm"} for i in range(n)] \
        if with_wavelengths else None
    write_raster(path, cube, nodata=nodata, scale=None if scale is None else scale[0],
                 offset=None if scale is None else scale[1], metadata=md)
    try:
        try:
            scene = read_scene(path)
        except InputError as exc:
            assert str(exc) and "\n" not in str(exc)
            return
    finally:
        gdal.Unlink(path)
    k = len(scene.band_indices)
    assert scene.data.shape == (k, h, w) and scene.data.dtype == np.float32
    assert scene.valid.shape == (h, w) and scene.valid.any()
    assert np.isfinite(scene.data).all()
    assert (scene.data[:, ~scene.valid] == 0).all()
    assert scene.data[:, scene.valid].max() == 1.0
    chosen = cube[[b - 1 for b in scene.band_indices]].astype(np.float64)
    physical = chosen if scale is None else chosen * scale[0] + scale[1]
    bad = ~np.isfinite(physical)
    if nodata is not None:
        bad |= np.isnan(chosen) if np.isnan(nodata) else chosen == nodata
    np.testing.assert_array_equal(scene.valid, ~bad.any(axis=0))
    divisor = scene.scaling["divisor"]
    np.testing.assert_allclose(scene.data[:, scene.valid] * divisor, physical[:, scene.valid],
                               rtol=1e-5, atol=1e-6 * np.abs(physical[:, scene.valid]).max())
    if with_wavelengths:
        np.testing.assert_allclose(scene.wavelengths, [400 + 10 * (b - 1) for b in scene.band_indices])


# ---------------------------------------------------------------------------------------------
# shared EnMAP tiles

def _enmap_tiles():
    tiles = sorted(glob.glob(str(ENMAP / "images_enmap_potsdam_tile_*.tif")))
    if not tiles:
        pytest.skip(f"EnMAP test tiles not present ({ENMAP})")
    return tiles


def test_enmap_tile():
    path = str(ENMAP / "images_enmap_potsdam_tile_128_0.tif")
    _enmap_tiles()
    scene = read_scene(path)
    assert scene.shape == (215, 32, 32)        # 224 bands less 6 flagged by bbl, 3 in a water-vapour window
    assert [b for b in range(1, 225) if b not in scene.band_indices] == list(range(130, 136)) + [164, 165, 166]
    assert any("water-vapour windows" in n and "164-166" in n for n in scene.notes)
    assert scene.wavelengths[0] == pytest.approx(418.24) and scene.wavelength_units == "nm"
    assert scene.nodata == -32768 and scene.n_valid == 32 * 32
    assert scene.scaling["gdal_scale"] == pytest.approx(1e-4)
    assert scene.geotransform == (366015.0, 30.0, 0.0, 5809965.0, 0.0, -30.0)
    assert osr.SpatialReference(wkt=scene.crs_wkt).GetAuthorityCode(None) == "32633"
    assert scene.band_names[0] == "band 1 (418.24 Nanometers)"
    # without the bad-band list the same bands go, because they hold only nodata
    everything = read_scene(path, use_bbl=False)
    assert everything.band_indices == sorted(scene.band_indices + [164, 165, 166])
    assert any("holding only nodata" in n for n in everything.notes)


def test_enmap_vrt_mosaic_has_nodata_holes(tmp_path):
    tiles = _enmap_tiles()
    vrt_path = str(tmp_path / "mosaic.vrt")
    gdal.BuildVRT(vrt_path, tiles).FlushCache()
    scene = read_scene(vrt_path)
    assert (scene.height, scene.width) == (192, 160)
    assert scene.n_bands == 218
    assert scene.n_valid == len(tiles) * 32 * 32                # the holes are nodata
    assert scene.wavelengths is None                           # BuildVRT keeps no band metadata
    tile = read_scene(ENMAP / "images_enmap_potsdam_tile_128_0.tif", use_bbl=False)   # no windows dropped
    column = int((tile.geotransform[0] - scene.geotransform[0]) / 30)
    row = int((scene.geotransform[3] - tile.geotransform[3]) / 30)
    window = scene.data[:, row:row + 32, column:column + 32] * scene.scaling["divisor"]
    np.testing.assert_allclose(window, tile.data * tile.scaling["divisor"], rtol=1e-5, atol=1e-7)
