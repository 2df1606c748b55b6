"""Property tests: random shapes, data types, values, nodata layouts and metadata never crash the
raster reader, and random parameters never crash the parameter checks or a tiny run.

"Never crash" means: either a usable scene (finite data, largest valid value 1, at least one
valid pixel) or an :class:`InputError` with a one-line message; no other exception, no hang.
"""
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from osgeo import gdal

from dffn_qgis.core.run.config import DFFNParams, params_for
from dffn_qgis.core.errors import InputError
from dffn_qgis.core.run.pipeline import check_scene, unmix_scene
from dffn_qgis.core.io.raster_io import read_scene
from dffn_qgis.core.io.band_metadata import validate_band_list
from dffn_qgis.core.io.scene import Scene

GDAL_TYPES = {
    "Byte": (gdal.GDT_Byte, np.uint8), "UInt16": (gdal.GDT_UInt16, np.uint16),
    "Int16": (gdal.GDT_Int16, np.int16), "UInt32": (gdal.GDT_UInt32, np.uint32),
    "Int32": (gdal.GDT_Int32, np.int32), "Float32": (gdal.GDT_Float32, np.float32),
    "Float64": (gdal.GDT_Float64, np.float64), "CInt16": (gdal.GDT_CInt16, np.complex64),
    "CFloat32": (gdal.GDT_CFloat32, np.complex64),
}
if hasattr(gdal, "GDT_Int64"):                      # GDAL >= 3.5
    GDAL_TYPES["Int64"] = (gdal.GDT_Int64, np.int64)
    GDAL_TYPES["UInt64"] = (gdal.GDT_UInt64, np.uint64)

_INT64_TYPES = {getattr(gdal, "GDT_Int64", -1), getattr(gdal, "GDT_UInt64", -1)}
LAYOUTS = ["none", "all", "row", "column", "checker", "one_valid", "random", "one_band_empty"]
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)


def _values(draw, dtype, size):
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        re = draw(st.lists(st.floats(-1e4, 1e4, width=32), min_size=size, max_size=size))
        return np.array(re, dtype=np.float64)
    if dtype.kind == "f":
        special = [np.nan, np.inf, -np.inf, 0.0, 1e30, -1e30, 1e-30]
        if dtype == np.float64:
            special += [1e300, -1e300, 5e-324]
        elements = st.floats(-1e6, 1e6, width=32) | st.sampled_from(special)
    else:
        info = np.iinfo(dtype)
        elements = st.integers(int(info.min), int(info.max)) | st.sampled_from([0, 1, int(info.max)])
    return np.array(draw(st.lists(elements, min_size=size, max_size=size)), dtype=np.float64)


def _layout(kind, n, h, w, rng):
    """True where a pixel of a band is set to nodata."""
    mask = np.zeros((n, h, w), bool)
    if kind == "all":
        mask[:] = True
    elif kind == "row":
        mask[:, rng.integers(h)] = True
    elif kind == "column":
        mask[:, :, rng.integers(w)] = True
    elif kind == "checker":
        mask[:, (np.add.outer(np.arange(h), np.arange(w)) % 2) == 0] = True
    elif kind == "one_valid":
        mask[:] = True
        mask[:, rng.integers(h), rng.integers(w)] = False
    elif kind == "random":
        mask = rng.random((n, h, w)) < 0.3
    elif kind == "one_band_empty":
        mask[rng.integers(n)] = True
    return mask


@st.composite
def rasters(draw):
    type_name = draw(st.sampled_from(sorted(GDAL_TYPES)))
    gdal_type, dtype = GDAL_TYPES[type_name]
    n, h, w = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    cube = _values(draw, dtype, n * h * w).reshape(n, h, w)
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    layout = draw(st.sampled_from(LAYOUTS))
    nodata = draw(st.sampled_from([None, -9999.0, 0.0, float("nan"), 1e40, 255.0, 0.5]))
    if nodata is not None and layout != "none":
        cube[_layout(layout, n, h, w, rng)] = nodata
    metadata = {
        "scale": draw(st.sampled_from([None, 1e-4, 0.0, -1.0, 1e30, float("nan")])),
        "offset": draw(st.sampled_from([None, 0.0, 100.0, float("inf")])),
        "wavelength": draw(st.sampled_from([None, "numbers", "garbage"])),
        "units": draw(st.sampled_from(["nm", "Micrometers", "", "furlongs"]) | TEXT),
        "bbl": draw(st.sampled_from([None, "{1}", "{0}", "{0, 1, 1, 1}", "{x}", "{}"]) | TEXT),
        "description": draw(TEXT),
        "alpha": draw(st.booleans()) and n > 1,
    }
    bands = draw(st.sampled_from([None, [1], [n], [1, 1], [0], [n + 1], list(range(1, n + 1))[::-1]]))
    return type_name, gdal_type, cube, nodata, metadata, bands


def _write(path, gdal_type, cube, nodata, md):
    n, h, w = cube.shape
    ds = gdal.GetDriverByName("GTiff").Create(path, w, h, n, gdal_type)
    if md["bbl"] is not None:
        ds.SetMetadataItem("bbl", md["bbl"], "ENVI")
    for i in range(n):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(cube[i].astype(np.complex64) if gdal.DataTypeIsComplex(gdal_type) else cube[i])
        if nodata is not None and gdal_type in _INT64_TYPES:
            low = 0 if gdal_type == getattr(gdal, "GDT_UInt64", -1) else -2 ** 63
            if float(nodata).is_integer() and low <= nodata < 2 ** 63:
                band.SetNoDataValue(int(nodata))
        elif nodata is not None:
            band.SetNoDataValue(nodata)
        if md["scale"] is not None:
            band.SetScale(md["scale"])
        if md["offset"] is not None:
            band.SetOffset(md["offset"])
        if md["wavelength"] == "numbers":
            band.SetMetadataItem("wavelength", str(400 + 10 * i))
            band.SetMetadataItem("wavelength_units", md["units"])
        elif md["wavelength"] == "garbage":
            band.SetMetadataItem("wavelength", md["description"] or "?")
        band.SetDescription(md["description"])
        if md["alpha"] and i == n - 1:
            band.SetColorInterpretation(gdal.GCI_AlphaBand)
    ds = None


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")    # writing the test files
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rasters())
def test_reader_never_crashes(raster):
    type_name, gdal_type, cube, nodata, md, bands = raster
    path = f"/vsimem/reliability_{uuid.uuid4().hex}.tif"
    try:
        _write(path, gdal_type, cube, nodata, md)
        try:
            scene = read_scene(path, bands=bands)
        except InputError as exc:
            message = str(exc)
            assert message.strip() and "\n" not in message
            return
    finally:
        gdal.Unlink(path)
    assert not type_name.startswith("C")                  # complex data is always refused
    assert scene.data.dtype == np.float32 and scene.data.shape[1:] == cube.shape[1:]
    assert scene.valid.any() and np.isfinite(scene.data).all()
    assert scene.data[:, scene.valid].max() == 1.0
    assert all(isinstance(note, str) and "\n" not in note for note in scene.notes)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.integers(-5, 40), st.floats(allow_nan=True), st.text(max_size=3),
                          st.none(), st.booleans()), max_size=6),
       st.integers(1, 30))
def test_band_list_check_never_crashes(bands, n_bands):
    try:
        chosen = validate_band_list(bands, n_bands, "x.tif")
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert len(set(chosen)) == len(chosen) and all(1 <= b <= n_bands for b in chosen)


FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, 1e-3, 0.5, 1.0, -1.0])
INTS = st.integers(-3, 12) | st.sampled_from([2 ** 70, -2 ** 70, 10 ** 9])
FIELD_STRATEGIES = {
    "n_endmembers": st.integers(-2, 12) | st.just(10 ** 6), "epochs": st.integers(-1, 3),
    "lr": FLOATS, "weight_decay": FLOATS, "lr_step": INTS, "lr_gamma": FLOATS,
    "schedule": st.sampled_from(["step", "cosine", "linear", ""]), "eem_lr": FLOATS,
    "starts": st.integers(-1, 3), "start_epochs": st.integers(-2, 3), "patience": INTS,
    "min_delta": FLOATS, "precision": st.sampled_from(["float32", "bfloat16", "auto", "fp8"]),
    "kernel": st.integers(-1, 9), "w": FLOATS, "ffm_block": INTS,
    "a": FLOATS, "b": FLOATS, "c": FLOATS, "seed": INTS,
    "device": st.sampled_from(["cpu", "auto", "tpu", "cuda:x", ""]), "threads": st.integers(-2, 2),
}


@st.composite
def overrides(draw):
    names = draw(st.sets(st.sampled_from(sorted(FIELD_STRATEGIES)), max_size=5))
    return {name: draw(FIELD_STRATEGIES[name]) for name in names}


def _tiny_scene(bands=6, size=6):
    rng = np.random.default_rng(0)
    data = rng.uniform(0.05, 1.0, (bands, size, size)).astype(np.float32)
    data /= data.max()
    return Scene(data=data, valid=np.ones((size, size), bool), wavelengths=None,
                 wavelength_units=None, band_indices=list(range(1, bands + 1)),
                 band_names=[f"band {i}" for i in range(1, bands + 1)], geotransform=None,
                 crs_wkt=None, nodata=None, scaling={}, source="tiny", notes=[])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides())
def test_checked_parameters_never_crash_a_run(values):
    """Parameters that pass the checks run (2 epochs at most, one thread) or stop with InputError."""
    values = dict(values)
    values.setdefault("device", "cpu")
    values.setdefault("threads", 1)
    values["epochs"] = min(values.get("epochs", 2), 2)
    values["start_epochs"] = min(values.get("start_epochs", 0), 1)
    try:
        params = params_for("paper", **values)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(params, DFFNParams)
    assume(params.device in ("cpu", "auto") and params.n_endmembers <= 5)
    scene = _tiny_scene()
    try:
        check_scene(scene, params)
        result = unmix_scene(scene, params)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    except FloatingPointError:
        # lr 10 with loss weights 1e6 may still diverge: the command line and QGIS turn this into
        # one line (tests/test_reliability_cli.py::test_non_finite_loss_is_a_clear_error)
        return
    A = result.abundances
    count = params.n_endmembers or result.record["endmember_count"]["recommended"]     # 0: estimated
    assert np.isfinite(A).all() and A.shape == (count,) + scene.valid.shape
