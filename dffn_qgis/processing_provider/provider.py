"""Processing provider ``dffn``."""
import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .apply_algorithm import DFFNApplyAlgorithm
from .count_algorithm import DFFNCountAlgorithm
from .unmix_algorithm import DFFNUnmixAlgorithm

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def icon_path() -> str:
    """The plugin icon: inside the installed plugin, or in the source tree's ``resources/``."""
    for candidate in (os.path.join(PLUGIN_DIR, "resources", "icon.svg"),
                      os.path.join(os.path.dirname(PLUGIN_DIR), "resources", "icon.svg")):
        if os.path.exists(candidate):
            return candidate
    return ""


class DFFNProvider(QgsProcessingProvider):

    def id(self):
        return "dffn"

    def name(self):
        return "DFFN unmixing"

    def longName(self):
        return "DFFN hyperspectral unmixing"

    def icon(self):
        path = icon_path()
        return QIcon(path) if path else QgsProcessingProvider.icon(self)

    def svgIconPath(self):
        return icon_path() or QgsProcessingProvider.svgIconPath(self)

    def loadAlgorithms(self):
        self.addAlgorithm(DFFNUnmixAlgorithm())
        self.addAlgorithm(DFFNCountAlgorithm())
        self.addAlgorithm(DFFNApplyAlgorithm())

    # The engine writes GeoTIFF only, so the dialogs offer only that.
    def supportedOutputRasterLayerExtensions(self):
        return ["tif"]

    def defaultRasterFileExtension(self):
        return "tif"
