"""dffn:unmix on the scalable path inside QGIS: chosen from the dialog's Method parameter or by
image size, same outputs, georeferencing and nodata as the exact path."""

import numpy as np
import pytest
from osgeo import gdal

import processing
from qgis.core import QgsProcessingFeedback

from qgis_helpers import FAST, destinations, write_scene


class LogFeedback(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.infos = []

    def pushInfo(self, info):
        self.infos.append(info)
        super().pushInfo(info)


@pytest.mark.parametrize("how", ["method", "size"])
def test_scalable_path_from_processing(how, dffn_provider, tmp_path):
    path = write_scene(tmp_path / "in.tif", seed=2, height=40, width=36)
    extra = {"METHOD": 3} if how == "method" else {"EXACT_LIMIT": 1000}      # 40 x 36 > 1000 pixels
    params = dict(FAST, INPUT=path, TILE=32, TRAIN_WINDOWS=4, **extra)
    params.update(destinations(tmp_path / "out"))
    feedback = LogFeedback()
    results = processing.run("dffn:unmix", params, feedback=feedback)
    log = "\n".join(feedback.infos)
    assert "scalable path" in log and "estimated peak memory" in log and "landmarks" in log, log
    src = gdal.Open(path)
    out = gdal.Open(results["OUTPUT"])
    assert out.RasterCount == FAST["N_ENDMEMBERS"]
    assert out.GetGeoTransform() == pytest.approx(src.GetGeoTransform())
    assert out.GetProjection() == src.GetProjection()
    stack = out.ReadAsArray()
    nodata = src.GetRasterBand(1).ReadAsArray() == src.GetRasterBand(1).GetNoDataValue()
    assert nodata.any()
    valid = ~nodata
    assert np.allclose(stack[:, valid].sum(axis=0), 1.0, atol=1e-5)
    assert not np.isfinite(stack[:, nodata]).any() or np.all(stack[:, nodata] == out.GetRasterBand(1).GetNoDataValue())
