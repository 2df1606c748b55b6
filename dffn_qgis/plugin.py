"""The QGIS plugin object: registers the Processing provider and, in the desktop, the actions."""
import importlib

from qgis.core import QgsApplication, QgsRasterLayer

from .processing_provider.provider import DFFNProvider, icon_path

ACTION_TEXT = "Unmix with DFFN\u2026"
MENU = "&DFFN unmixing"


def _raster_layer_type():
    """QgsMapLayerType.RasterLayer (3.22); Qgis.LayerType.Raster where the old name is gone."""
    try:
        from qgis.core import QgsMapLayerType
        return QgsMapLayerType.RasterLayer
    except ImportError:  # pragma: no cover - QGIS 4
        from qgis.core import Qgis
        return Qgis.LayerType.Raster


class DFFNPlugin:

    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.action = None
        self.toolbox_action = None

    # qgis_process calls only this; it must not touch any GUI.
    def initProcessing(self):  # noqa: N802
        if self.provider is None:
            self.provider = DFFNProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802
        self.initProcessing()
        from .gui import qgis_fixes
        from .gui.plot_dock import show_plot
        from .processing_provider.postprocess import set_plot_viewer
        qgis_fixes.install()
        set_plot_viewer(show_plot)
        from qgis.PyQt.QtGui import QIcon
        try:
            from qgis.PyQt.QtGui import QAction          # Qt 6
        except ImportError:
            from qgis.PyQt.QtWidgets import QAction      # Qt 5

        icon = QIcon(icon_path()) if icon_path() else QIcon()
        main_window = self.iface.mainWindow() if self.iface is not None else None
        self.action = QAction(icon, ACTION_TEXT, main_window)
        self.action.setObjectName("dffnUnmixAction")
        self.action.setToolTip("Unmix the selected hyperspectral raster with DFFN in the background")
        self.action.triggered.connect(self.unmix_active_layer)
        self.toolbox_action = QAction(icon, "DFFN Unmix (Processing dialog)\u2026", main_window)
        self.toolbox_action.setObjectName("dffnUnmixDialogAction")
        self.toolbox_action.triggered.connect(self.open_processing_dialog)
        if self.iface is None:
            return
        # Raster menu, and the context menu of every raster layer in the Layers panel.
        self.iface.addPluginToRasterMenu(MENU, self.action)
        self.iface.addPluginToRasterMenu(MENU, self.toolbox_action)
        if hasattr(self.iface, "addCustomActionForLayerType"):
            self.iface.addCustomActionForLayerType(self.action, "", _raster_layer_type(), True)

    def unload(self):
        # each step is attempted even when an earlier one failed; failures go to the log
        _logged("gui.unmix_task", "cancel_all", "cancelling running tasks")
        if self.iface is not None and self.action is not None:
            self.iface.removePluginRasterMenu(MENU, self.action)
            self.iface.removePluginRasterMenu(MENU, self.toolbox_action)
            if hasattr(self.iface, "removeCustomActionForLayerType"):
                self.iface.removeCustomActionForLayerType(self.action)
        _logged("processing_provider.postprocess", "set_plot_viewer", "detaching the spectra panel", None)
        _logged("gui.plot_dock", "close_dock", "closing the spectra panel", self.iface)
        _logged("gui.qgis_fixes", "uninstall", "removing the QGIS fixes")
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        self.action = self.toolbox_action = None

    # ------------------------------------------------------------------ actions
    def _raster_layer(self):
        layer = self.iface.activeLayer() if self.iface is not None else None
        if isinstance(layer, QgsRasterLayer):
            return layer
        return None

    def unmix_active_layer(self, checked=False, n_endmembers=None):
        """"Unmix with DFFN...": ask for the number of endmembers, then run in a QgsTask."""
        from qgis.core import Qgis
        from qgis.PyQt.QtWidgets import QInputDialog

        layer = self._raster_layer()
        if layer is None:
            self.iface.messageBar().pushMessage(
                "DFFN", "Select a hyperspectral raster layer in the Layers panel first.",
                level=Qgis.MessageLevel.Warning, duration=6)
            return None
        if n_endmembers is None:
            from .processing_provider.dialog_defaults import last_count
            last = last_count()                  # the count of the last run (not 0, "estimate": 2 at least here)
            n_endmembers, ok = QInputDialog.getInt(
                self.iface.mainWindow(), "Unmix with DFFN",
                "Number of endmembers in '{}':".format(layer.name()), last if last and last >= 2 else 3, 2, 100, 1)
            if not ok:
                return None
        from .gui.unmix_task import start_unmix
        task = start_unmix(layer, n_endmembers=n_endmembers)
        if task.prepared:
            self.iface.messageBar().pushMessage(
                "DFFN", "Unmixing {} in the background; results go to {}".format(
                    layer.name(), task.output_dir), level=Qgis.MessageLevel.Info, duration=6)
        return task

    def open_processing_dialog(self, checked=False):
        """The Processing dialog; its input and count follow processing_provider/dialog_defaults.py (the
        active layer when it can be unmixed, else the last input or the loaded layer with most bands)."""
        import processing
        processing.execAlgorithmDialog("dffn:unmix", {})


def _logged(module, function, what, *args):
    """Call ``function`` of this plugin's ``module``; a failure is written to the log (DFFN tab)
    instead of stopping the unload."""
    try:
        getattr(importlib.import_module("." + module, __package__), function)(*args)
    except Exception as exc:
        from qgis.core import Qgis, QgsMessageLog
        QgsMessageLog.logMessage("while {}: {}: {}".format(what, type(exc).__name__, exc), "DFFN", Qgis.MessageLevel.Warning)
