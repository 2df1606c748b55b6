"""The spectra panel's map tool: a left click on the map hands the point (in the map's CRS) to the
panel, which adds that pixel's spectrum, reconstruction and fractions to its plot."""
from qgis.gui import QgsMapToolEmitPoint
from qgis.PyQt.QtCore import Qt


class PixelSpectrumTool(QgsMapToolEmitPoint):
    """Armed by the panel's *Pick pixel* button; stays armed for more clicks until another map tool
    is chosen (the button then pops up)."""

    def __init__(self, canvas, dock):
        super().__init__(canvas)
        self.dock = dock
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.canvasClicked.connect(self._clicked)
        self.deactivated.connect(dock.tool_deactivated)

    def _clicked(self, point, button):
        if button != Qt.MouseButton.LeftButton:
            return
        self.dock.add_pixel_at(point, self.canvas().mapSettings().destinationCrs())
