"""Fixtures shared by the tests of core/run/."""
from pathlib import Path

import numpy as np
import pytest

from dffn_qgis.core.eval import synthetic


@pytest.fixture(scope="module")
def tif_with_holes(tmp_path_factory):
    """A scaled (x10000) GeoTIFF with a nodata region, NaNs and one band without data."""
    d = tmp_path_factory.mktemp("source")
    s = synthetic.make_scene(70, 90, 16, 3, seed=2, snr_db=40)
    path = synthetic.write_geotiff(s, d / "holes.tif", scale=10000)["image"]
    from osgeo import gdal
    ds = gdal.Open(str(path), gdal.GA_Update)
    band = ds.GetRasterBand(5)
    block = band.ReadAsArray()
    block[3, 4] = band.GetNoDataValue()
    band.WriteArray(block)
    empty = ds.GetRasterBand(16)
    empty.WriteArray(np.full((70, 90), empty.GetNoDataValue(), dtype=np.float32)
                     .astype(empty.ReadAsArray().dtype))
    ds = None
    return Path(path)
