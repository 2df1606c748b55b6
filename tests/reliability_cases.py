"""Bad inputs and faults shared by the reliability tests of the command line and of QGIS.

Each builder writes one small file (16 x 16 pixels unless said otherwise) and returns its path.
``BAD_INPUTS`` maps a case name to (builder, number of endmembers, message fragment): the run
must stop with an error containing the fragment. ``GOOD_INPUTS`` are awkward but usable files:
the run must succeed (with a note in the log where the fragment is not None).
"""
import contextlib
import os
import subprocess

import numpy as np
from osgeo import gdal

H = W = 16
BANDS = 8
GT = (500000.0, 30.0, 0.0, 5800000.0, 0.0, -30.0)


def cube(bands=BANDS, dtype=np.float32, seed=0):
    """A mixed, non-constant reflectance-like cube in (0.05, 0.95)."""
    rng = np.random.default_rng(seed)
    endmembers = rng.uniform(0.05, 0.95, (bands, 3))
    abundances = rng.dirichlet(np.ones(3), H * W).T
    return (endmembers @ abundances).reshape(bands, H, W).astype(dtype)


def write(path, array, gdal_type=None, nodata=None):
    path = str(path)
    array = np.asarray(array)
    if gdal_type is None:
        from osgeo import gdal_array
        gdal_type = gdal_array.NumericTypeCodeToGDALTypeCode(array.dtype)
    ds = gdal.GetDriverByName("GTiff").Create(path, array.shape[2], array.shape[1], array.shape[0],
                                              gdal_type)
    ds.SetGeoTransform(GT)
    for i in range(array.shape[0]):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(array[i])
        if nodata is not None:
            band.SetNoDataValue(float(nodata))
    ds = None
    return path


def _valid_tif(path):
    """A compressed, tiled-by-GDAL-default GeoTIFF, big enough to damage in the middle."""
    path = str(path)
    gdal.Translate(path, write(path + ".src.tif", cube() ), creationOptions=["COMPRESS=DEFLATE"])
    os.unlink(path + ".src.tif")
    return path


# ---------------------------------------------------------------------------------------------
# builders of bad files

def few_bands(path):
    return write(path, cube(bands=3))


def one_band(path):
    return write(path, cube(bands=1))


def ok(path):
    return write(path, cube())


def mostly_empty_bands(path):
    data = cube()
    data[2:] = -9999                              # 6 of 8 bands hold only nodata: dropped
    return write(path, data, nodata=-9999)


def all_nodata(path):
    return write(path, np.full((BANDS, H, W), -9999, np.float32), nodata=-9999)


def few_valid(path):
    data = cube()
    data[:, :, :] = -9999
    data[:, 0, :3] = cube()[:, 0, :3]          # 3 valid pixels, 3 endmembers need 4
    return write(path, data, nodata=-9999)


def constant(path):
    return write(path, np.full((BANDS, H, W), 0.3, np.float32))


def all_nan(path):
    return write(path, np.full((BANDS, H, W), np.nan, np.float32))


def all_inf(path):
    data = np.full((BANDS, H, W), np.inf, np.float32)
    data[::2] = -np.inf
    return write(path, data)


def all_negative(path):
    return write(path, -cube())


def beyond_float32(path):
    data = cube(dtype=np.float64)
    data[0, 0, 0] = 1e300
    return write(path, data)


def single_huge_outlier(path):
    data = cube()
    data[:, 5, 5] = 1e30
    return write(path, data)


def complex_values(path):
    return write(path, cube().astype(np.complex64), gdal_type=gdal.GDT_CFloat32)


def not_a_raster(path):
    with open(path, "w") as f:
        f.write("this is not an image\n")
    return str(path)


def empty_file(path):
    open(path, "wb").close()
    return str(path)


def truncated(path):
    path = _valid_tif(path)
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])
    return path


def truncated_header(path):
    path = _valid_tif(path)
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:200])
    return path


def corrupted(path):
    path = _valid_tif(path)
    data = bytearray(open(path, "rb").read())
    middle = len(data) // 2
    data[middle:middle + 1500] = np.random.default_rng(0).integers(0, 256, 1500, np.uint8).tobytes()
    with open(path, "wb") as f:
        f.write(bytes(data))
    return path


def vector(path):
    path = str(path)[:-4] + ".gpkg"
    ds = gdal.GetDriverByName("GPKG").Create(path, 0, 0, 0, gdal.GDT_Unknown)
    ds.CreateLayer("points")
    ds = None
    return path


def missing(path):
    return str(path)[:-4] + "_does_not_exist.tif"


def folder(path):
    os.makedirs(str(path)[:-4] + "_dir", exist_ok=True)
    return str(path)[:-4] + "_dir"


# name: (builder, endmembers, fragment of the message)
BAD_INPUTS = {
    "fewer_bands_than_endmembers_plus_1": (few_bands, 3, "need at least 4 bands"),
    "one_band": (one_band, 2, "need at least 3 bands"),
    "endmembers_1": (ok, 1, "at least 2"),
    "endmembers_negative": (ok, -4, "at least 0"),
    "endmembers_absurd": (ok, 100000, "at most 100"),
    "endmembers_more_than_bands": (ok, 50, "need at least 51 bands"),
    "too_few_bands_after_dropping_empty_ones": (mostly_empty_bands, 3,
                                                "need at least 4 bands; the image has 2 (after dropping"),
    "all_nodata": (all_nodata, 3, "no valid pixel"),
    "fewer_valid_pixels_than_needed": (few_valid, 3, "valid pixel"),
    "constant_image": (constant, 3, "constant"),
    "nan_everywhere": (all_nan, 3, "no valid pixel"),
    "inf_everywhere": (all_inf, 3, "no valid pixel"),
    "negative_reflectance_everywhere": (all_negative, 3, "largest valid value"),
    "float64_beyond_float32": (beyond_float32, 3, "float32 range"),
    "single_huge_outlier_1e30": (single_huge_outlier, 3, "extreme values"),
    "complex_data": (complex_values, 3, "complex"),
    "path_does_not_exist": (missing, 3, "not found"),
    "folder_instead_of_file": (folder, 3, "folder"),
    "not_a_raster": (not_a_raster, 3, "not a raster"),
    "empty_file": (empty_file, 3, "not a raster"),
    "truncated_geotiff": (truncated, 3, "truncated or damaged"),
    "truncated_header": (truncated_header, 3, "not a raster"),
    "corrupted_geotiff": (corrupted, 3, "damaged"),
    "vector_file": (vector, 3, "vector"),
}


# ---------------------------------------------------------------------------------------------
# awkward but usable files: name -> (builder, fragment of a log note or None)

def nan_in_places(path):
    data = cube()
    data[:, 2:4, 2:6] = np.nan
    data[3, 10, 10] = np.inf
    return write(path, data)


def negative_in_places(path):
    data = cube()
    data[0, 0, :4] = -0.02
    return write(path, data)


def moderate_outlier(path):
    data = cube()
    data[:, 5, 5] = 1e5                          # 1e5 times the rest: warned, still usable
    return write(path, data)


def huge_but_uniform(path):
    return write(path, cube() * np.float32(1e30))


def _typed(dtype, factor=10000):
    def build(path):
        info = np.iinfo(dtype)
        data = np.clip(np.round(cube(dtype=np.float64) * factor), info.min, info.max)
        return write(path, data.astype(dtype))
    build.__name__ = f"typed_{np.dtype(dtype).name}"
    return build


def float64(path):
    return write(path, cube(dtype=np.float64))


def _int64(unsigned):
    def build(path):
        data = np.round(cube(dtype=np.float64) * 10000).astype(np.uint64 if unsigned else np.int64)
        return write(path, data, gdal_type=gdal.GDT_UInt64 if unsigned else gdal.GDT_Int64)
    return build


GOOD_INPUTS = {
    "nan_and_inf_in_places": (nan_in_places, "NaN or infinite"),
    "negative_in_places": (negative_in_places, "negative"),
    "moderate_outlier_1e5": (moderate_outlier, "extreme values"),
    "huge_values_1e30_everywhere": (huge_but_uniform, None),
    "uint8": (_typed(np.uint8, 250), None),
    "int16": (_typed(np.int16), None),
    "uint16": (_typed(np.uint16), None),
    "int32": (_typed(np.int32), None),
    "uint32": (_typed(np.uint32), None),
    "int64": (_int64(False), None),
    "uint64": (_int64(True), None),
    "float64": (float64, None),
}


# ---------------------------------------------------------------------------------------------
# file systems that fail

@contextlib.contextmanager
def tmpfs(folder, size="40k", read_only=False):
    """A tmpfs of ``size`` mounted on ``folder`` (root only); yields False when it cannot mount."""
    os.makedirs(folder, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def files_in(folder):
    """Every file under ``folder`` (relative paths), hidden ones included."""
    found = []
    for root, _dirs, names in os.walk(folder):
        for name in names:
            found.append(os.path.relpath(os.path.join(root, name), folder))
    return sorted(found)
