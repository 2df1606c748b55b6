"""What the DFFN Unmix dialog offers after a run: the last hyperspectral input and count, never the
single-band abundance layer just added while an input it can take is loaded; a 1-band input is refused
before the run with a clear message."""
import numpy as np
import pytest
from osgeo import gdal

import processing
from qgis.core import QgsApplication, QgsProcessingContext, QgsProject, QgsRasterLayer, QgsSettings

from qgis_helpers import FAST, destinations

pytestmark = pytest.mark.qgis


@pytest.fixture(autouse=True)
def no_memory():
    """Each test starts with no remembered run and leaves none."""
    from dffn_qgis.processing_provider.dialog_defaults import SETTINGS_COUNT, SETTINGS_INPUT

    settings = QgsSettings()
    for key in (SETTINGS_INPUT, SETTINGS_COUNT):
        settings.remove(key)
    yield
    for key in (SETTINGS_INPUT, SETTINGS_COUNT):
        settings.remove(key)


@pytest.fixture
def one_band_tif(tmp_path):
    """What a run adds to the project: a single-band abundance raster."""
    path = str(tmp_path / "vegetation.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 16, 16, 1, gdal.GDT_Float32)
    ds.SetGeoTransform((0, 1, 0, 16, 0, -1))
    ds.GetRasterBand(1).WriteArray(np.full((16, 16), 0.5, dtype=np.float32))
    ds = None
    return path


def _dialog_values(qgis_iface, monkeypatch, active):
    """INPUT and N_ENDMEMBERS as the Processing dialog (opened from the Toolbox) shows them."""
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from qgis.gui import QgsBrowserGuiModel

    browser = QgsBrowserGuiModel()
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: browser, raising=False)
    monkeypatch.setattr(qgis_iface, "activeLayer", lambda: active, raising=False)
    alg = QgsApplication.processingRegistry().createAlgorithmById("dffn:unmix")
    dialog = AlgorithmDialog(alg, False, None)
    try:
        wrappers = dialog.mainWidget().wrappers
        value = wrappers["INPUT"].parameterValue()          # a layer id
        layer = QgsProject.instance().mapLayer(value) if isinstance(value, str) else value
        return layer, wrappers["N_ENDMEMBERS"].parameterValue()
    finally:
        dialog.close()


def _add(project, path, name):
    layer = QgsRasterLayer(path, name)
    assert layer.isValid()
    project.addMapLayer(layer)
    return layer


def test_after_a_run_the_dialog_offers_its_input_and_count_not_the_layer_just_added(
        dffn_provider, scene_tif, scene2_tif, one_band_tif, tmp_path, clean_project, qgis_iface, monkeypatch):
    _add(clean_project, scene_tif, "scene")
    other = _add(clean_project, scene2_tif, "other")
    values = dict(FAST, INPUT=other.id(), N_ENDMEMBERS=2)
    values.update(destinations(tmp_path))
    context = QgsProcessingContext()
    context.setProject(clean_project)
    processing.run("dffn:unmix", values, context=context)
    added = _add(clean_project, one_band_tif, "vegetation")     # the abundance layer, now the active one
    layer, count = _dialog_values(qgis_iface, monkeypatch, active=added)
    assert layer is not None and layer.id() == other.id()
    assert count == 2


def test_without_a_run_the_loaded_raster_with_most_bands_beats_a_one_band_active_layer(
        dffn_provider, scene_tif, one_band_tif, tmp_path, clean_project, qgis_iface, monkeypatch):
    from qgis_helpers import write_scene

    few = _add(clean_project, write_scene(tmp_path / "few.tif", bands=6), "few bands")
    scene = _add(clean_project, scene_tif, "scene")                 # 24 bands
    added = _add(clean_project, one_band_tif, "vegetation")
    layer, count = _dialog_values(qgis_iface, monkeypatch, active=added)
    assert layer.id() == scene.id() and layer.id() != few.id()
    assert count == 3                                               # the published default


def test_an_active_layer_the_algorithm_can_take_is_offered_as_qgis_does(
        dffn_provider, scene_tif, scene2_tif, clean_project, qgis_iface, monkeypatch):
    from dffn_qgis.processing_provider.dialog_defaults import remember

    scene = _add(clean_project, scene_tif, "scene")
    other = _add(clean_project, scene2_tif, "other")
    remember(scene, 4)
    layer, count = _dialog_values(qgis_iface, monkeypatch, active=other)
    assert layer.id() == other.id() and count == 4


def test_the_memory_changes_the_dialog_only_not_a_script(dffn_provider, scene_tif, clean_project):
    from dffn_qgis.processing_provider.dialog_defaults import remember

    remember(_add(clean_project, scene_tif, "scene"), 5)
    alg = QgsApplication.processingRegistry().createAlgorithmById("dffn:unmix")
    count = alg.parameterDefinition("N_ENDMEMBERS")
    assert count.defaultValueForGui() == 5
    assert count.defaultValue() == 3                   # what processing.run and qgis_process use
    assert alg.parameterDefinition("INPUT").defaultValue() is None


def test_a_one_band_input_is_refused_before_the_run(dffn_provider, one_band_tif, tmp_path, clean_project):
    layer = _add(clean_project, one_band_tif, "vegetation")
    alg = QgsApplication.processingRegistry().createAlgorithmById("dffn:unmix")
    context = QgsProcessingContext()
    context.setProject(clean_project)
    values = dict(FAST, INPUT=layer.id())
    values.update(destinations(tmp_path))
    ok, message = alg.checkParameterValues(values, context)
    assert not ok
    assert "'vegetation'" in message and "need at least 4 bands; the image has 1" in message and "hyperspectral" in message
