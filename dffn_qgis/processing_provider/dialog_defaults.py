"""What the DFFN Unmix dialog offers when it opens: the last input and endmember count, and never a
layer the algorithm cannot take while one it can take is loaded.

Without this, QGIS offers the active layer, which after a run is the single-band abundance layer just
added, and the published count (3). A run remembers its input's file and its count in QgsSettings
(this session and the next); :func:`apply` makes them the dialog's defaults with
``setGuiDefaultValueOverride``, which only the dialog reads: a script or ``qgis_process`` that leaves
a parameter out still gets the published default.

Input offered, first that applies: the active layer when it can be unmixed; else the last input when
it is loaded; else the loaded raster with the most bands that can be unmixed; else QGIS's own choice.
"""
from qgis.core import QgsMapLayer, QgsProject, QgsRasterLayer, QgsSettings

from .postprocess import ROLE_KEY

SETTINGS_INPUT = "dffn/dialog/last_input"
SETTINGS_COUNT = "dffn/dialog/last_n_endmembers"


def bands_needed(n_endmembers):
    """Bands an input needs for ``n_endmembers`` (0: estimated, at least 2): one more than endmembers."""
    return max(int(n_endmembers or 0), 2) + 1


def remember(layer, n_endmembers):
    """Keep ``layer``'s file and the count as the next dialog's defaults (any thread)."""
    settings = QgsSettings()
    settings.setValue(SETTINGS_INPUT, layer.source())
    settings.setValue(SETTINGS_COUNT, int(n_endmembers))


def last_count():
    """The count of the last run, or None before any."""
    value = QgsSettings().value(SETTINGS_COUNT, None)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def can_unmix(layer, n_endmembers):
    """Whether ``layer`` is an input DFFN can take with this count: a valid raster with enough bands,
    not one of a run's own result layers."""
    return (isinstance(layer, QgsRasterLayer) and layer.isValid()
            and layer.bandCount() >= bands_needed(n_endmembers) and not layer.customProperty(ROLE_KEY))


def preferred_input(project, active_layer, n_endmembers):
    """The layer the dialog offers (see the module's rule), or None to leave it to QGIS."""
    if can_unmix(active_layer, n_endmembers):
        return active_layer
    layers = [node.layer() for node in project.layerTreeRoot().findLayers()]
    usable = [layer for layer in layers if can_unmix(layer, n_endmembers)]
    last = QgsSettings().value(SETTINGS_INPUT, None)
    for layer in usable:
        if last and layer.source() == last:
            return layer
    return max(usable, key=lambda layer: layer.bandCount(), default=None)


def _active_layer():
    try:
        from qgis.utils import iface
    except ImportError:
        return None
    if iface is None or not hasattr(iface, "activeLayer"):
        return None
    layer = iface.activeLayer()
    return layer if isinstance(layer, QgsMapLayer) else None


def _on_main_thread():
    from qgis.PyQt.QtCore import QCoreApplication, QThread

    app = QCoreApplication.instance()
    return app is not None and QThread.currentThread() == app.thread()


def apply(input_parameter, count_parameter):
    """Set the dialog defaults of the INPUT and N_ENDMEMBERS parameters. Only on the main thread (where
    a dialog opens): an algorithm made for a run in another thread needs none, and the project's layers
    are read on the main thread only."""
    if not _on_main_thread():
        return
    count = last_count()
    if count is not None and count_parameter.checkValueIsAcceptable(count):
        count_parameter.setGuiDefaultValueOverride(count)
    layer = preferred_input(QgsProject.instance(), _active_layer(),
                            count if count is not None else count_parameter.defaultValue())
    if layer is not None:
        input_parameter.setGuiDefaultValueOverride(layer.id())
