"""Fixtures for the tests that run inside QGIS (pytest-qgis, offscreen).

Everything is tiny on purpose (16 x 16 pixels, 24 bands, 3 epochs): these tests check the
plumbing between QGIS and the engine, not the quality of the unmixing.
"""
import os
import sys

import pytest

from qgis.core import QgsApplication, QgsProject

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
for path in (REPO, HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

from qgis_helpers import write_scene  # noqa: E402


@pytest.fixture(scope="session")
def dffn_provider(qgis_app):
    """QGIS's Processing (with its GDAL and QGIS providers) plus the plugin's provider."""
    from processing.core.Processing import Processing

    Processing.initialize()
    registry = QgsApplication.processingRegistry()
    if registry.providerById("gdal") is None:  # QGIS 4.3+ keeps it in a core plugin
        try:
            from gdalprovider.gdal_algorithm_provider import GdalAlgorithmProvider
            registry.addProvider(GdalAlgorithmProvider())
        except ImportError:
            pass
    from dffn_qgis.processing_provider.provider import DFFNProvider

    provider = registry.providerById("dffn")
    if provider is None:
        provider = DFFNProvider()
        assert registry.addProvider(provider)
    yield provider


@pytest.fixture(scope="session")
def scene_tif(tmp_path_factory):
    """A georeferenced 16 x 16 x 24 GeoTIFF with wavelengths and a nodata region."""
    return write_scene(tmp_path_factory.mktemp("scene") / "scene.tif", seed=0)


@pytest.fixture(scope="session")
def scene2_tif(tmp_path_factory):
    return write_scene(tmp_path_factory.mktemp("scene2") / "other.tif", seed=5)


@pytest.fixture
def clean_project():
    """An empty QgsProject.instance() before and after the test."""
    QgsProject.instance().clear()
    yield QgsProject.instance()
    QgsProject.instance().clear()


@pytest.fixture(autouse=True)
def plot_viewer():
    """The spectra panel shows a run's plot, as the plugin's initGui arranges in the desktop (a test
    that unloads the plugin detaches it)."""
    from dffn_qgis.gui.plot_dock import show_plot
    from dffn_qgis.processing_provider.postprocess import set_plot_viewer

    set_plot_viewer(show_plot)
    yield


@pytest.fixture(scope="session", autouse=True)
def layer_tree_view(qgis_iface):
    """A real layer tree view of the project behind ``iface.layerTreeView()``, as the desktop has.

    pytest-qgis's interface answers every method it does not implement with a MagicMock. Up to QGIS
    3.40 Processing only called methods on that mock; from QGIS 3.44 on its Python code hands
    ``iface.layerTreeView()`` to C++ (``QgsProcessingGuiUtils.addResultLayers``), which refuses a mock
    with a TypeError raised inside a Qt callback, which aborts the process.
    """
    from qgis.core import QgsLayerTreeModel
    from qgis.gui import QgsLayerTreeView
    from qgis.PyQt import sip

    view = QgsLayerTreeView()
    view.setModel(QgsLayerTreeModel(QgsProject.instance().layerTreeRoot(), view))
    qgis_iface.layerTreeView = lambda: view
    yield view
    del qgis_iface.layerTreeView
    if not sip.isdeleted(view):
        sip.delete(view)


@pytest.fixture(scope="session", autouse=True)
def collect_before_qgis_exits(qgis_app):
    """Python objects in reference cycles that wrap QGIS or GDAL objects are freed while QGIS still
    runs: freed by a garbage collection after QGIS has exited, they crash the interpreter."""
    yield
    import gc
    gc.collect()
