"""The "DFFN endmember spectra" panel: the run's endmember spectra as an interactive plot, and the
spectra of pixels picked on the map.

The plot is matplotlib's Qt canvas with its navigation toolbar (pan, zoom, back/forward, save),
drawn from the run's endmember file with the same wavelength order, gaps, colours and units as the
report's plot (``core/report/plotting.py``), in type sizes meant for a narrow panel. Moving the
mouse over it reads out the wavelength and every line's value there. *Pick pixel* arms a map tool
(``pixel_tool.py``): a click on the map adds that pixel's spectrum and its reconstruction from the
endmembers to the plot, with its fractions (``core/report/pixel_spectrum.py``, the run's own rule)
under the plot. *Open report* opens the run's HTML report.

One panel for the whole session, reused by every run: :func:`show_plot` (main thread only)
creates it on first use, docks it on the right of the main window and shows the new run.
"""
import os

from qgis.core import Qgis, QgsMessageLog
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import QSize, Qt, QUrl
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

try:
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg, NavigationToolbar2QT
except ImportError:  # pragma: no cover - matplotlib before 3.5
    from matplotlib.backends.backend_qt5agg import FigureCanvasQTAgg, NavigationToolbar2QT
from matplotlib.figure import Figure

OBJECT_NAME = "DFFNEndmemberPlotDock"
_DOCK = None

# type sizes (points) that stay readable in a panel about 300 pixels wide
TICK_SIZE, LABEL_SIZE, LEGEND_SIZE = 8, 9, 7
# picked pixels: dark colours that none of the endmember palettes' first entries uses
PIXEL_COLOURS = ("black", "#6b4226", "#4b0082", "#556b2f", "#8b0000")
MAX_PIXELS = len(PIXEL_COLOURS)


class PlotDock(QgsDockWidget):
    """The run's endmember spectra on a matplotlib canvas with its toolbar, a hover read-out, picked
    pixels with their fractions, and a button for the report."""

    def __init__(self, parent=None):
        super().__init__("DFFN endmember spectra", parent)
        self.setObjectName(OBJECT_NAME)
        self.png_path = None
        self.report_path = None
        self.record_path = None
        self.run = None                 # core.report.pixel_spectrum.RunSpectra of the run shown
        self.pixels = []                # (PixelFit, spectrum line, reconstruction line)
        self.map_canvas = None
        self.map_tool = None
        self._x = None                  # x of the bands, in the run's band order
        self._lines = []                # (name, x, y) of every line the read-out reports
        self._drawn = False
        self._grid = None

        body = QWidget(self)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        self.title_label = QLabel(body)        # the run's title, also the panel's title bar
        self.title_label.hide()

        self.figure = Figure(figsize=(4.0, 3.0), dpi=100, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setParent(body)
        self.canvas.setObjectName("DFFNSpectraCanvas")
        self.canvas.setMinimumSize(200, 160)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.ax = self.figure.add_subplot()
        self.toolbar = NavigationToolbar2QT(self.canvas, body, coordinates=False)
        self.toolbar.setObjectName("DFFNSpectraToolbar")
        self.toolbar.setIconSize(QSize(18, 18))
        self.canvas.mpl_connect("motion_notify_event", self._on_motion)
        self.canvas.mpl_connect("axes_leave_event", self._on_leave)

        self.readout_label = QLabel(body)
        self.readout_label.setWordWrap(True)
        self.readout_label.setToolTip("Wavelength under the mouse and each line's value there")
        self.readout_label.setFixedHeight(3 * self.readout_label.fontMetrics().lineSpacing() + 2)
        self.readout_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self._cursor = None             # the vertical line at the band under the mouse
        self.pixel_label = QLabel(body)
        self.pixel_label.setWordWrap(True)
        self.pixel_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label = QLabel(body)
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet("color: #b00020;")
        self.message_label.hide()
        self.pixel_label.hide()

        self.pick_button = QPushButton("Pick pixel", body)
        self.pick_button.setCheckable(True)
        self.pick_button.setToolTip("Click a pixel on the map to add its spectrum, its reconstruction from the "
                                    "endmembers and its fractions")
        self.pick_button.toggled.connect(self._pick_toggled)
        self.clear_button = QPushButton("Clear pixels", body)
        self.clear_button.clicked.connect(self.clear_pixels)
        self.report_button = QPushButton("Open report", body)
        self.report_button.setToolTip("The run's HTML report: names, abundance maps, error statistics, "
                                      "parameters and every file written")
        self.report_button.clicked.connect(self.open_report)
        self.report_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.pick_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        buttons.addWidget(self.report_button)

        layout.addWidget(self.toolbar)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.readout_label)
        layout.addLayout(buttons)
        layout.addWidget(self.pixel_label)
        layout.addWidget(self.message_label)
        self.setWidget(body)
        self._update_buttons()

    # ------------------------------------------------------------------ the run
    def set_plot(self, png_path, title="", report_path=None, record_path=None):
        """Show a run: its endmember spectra from the record's endmember file (``record_path``, the
        run's ``<stack>.json``) or, without one, the report's PNG as a picture."""
        from ..core.errors import InputError
        from ..core.report.pixel_spectrum import load_run

        self.png_path = png_path
        self.report_path = report_path
        self.record_path = record_path
        self.report_button.setEnabled(bool(report_path))
        self.report_button.setToolTip(report_path or "this run wrote no report")
        self.title_label.setText(title or "DFFN endmember spectra")
        self.setWindowTitle(title or "DFFN endmember spectra")
        self.canvas.setToolTip(record_path or png_path or "")
        self.show_message("")
        self.run, self._grid = None, None
        if record_path:
            try:
                self.run = load_run(record_path)
            except InputError as exc:
                self.show_message(str(exc))
        self.pixels = []
        self._draw()

    def has_image(self):
        """Whether the panel shows a run (its spectra, or its picture)."""
        return self._drawn

    def _draw(self):
        from ..core.report.plotting import draw_endmembers, spectral_axis

        self.ax.clear()
        self._cursor = None
        self._lines = []
        self._x = None
        self._drawn = False
        if self.run is not None:
            values, ylabel = self.run.in_file_values(self.run.endmembers)
            units = "nm" if self.run.wavelengths is not None else None
            draw_endmembers(self.ax, values, self.run.wavelengths, units, self.run.names, title=None,
                                    ylabel=ylabel, legend_size=LEGEND_SIZE)
            self._x, _ = spectral_axis(values.shape[0], self.run.wavelengths, units)
            self._lines = [(name, self._x, values[:, i]) for i, name in enumerate(self.run.names)]
            self._drawn = True
        elif self.png_path and os.path.exists(self.png_path):
            import matplotlib.image as mpimg

            self.ax.imshow(mpimg.imread(self.png_path))
            self.ax.set_axis_off()
            self._drawn = True
        else:
            self.ax.text(0.5, 0.5, "no spectra to show", ha="center", va="center", transform=self.ax.transAxes)
            self.ax.set_axis_off()
        self._style_axes()
        self._update_pixel_text()
        self._update_buttons()
        self.toolbar.update()            # a new home view for the toolbar
        self.canvas.draw_idle()

    def _style_axes(self):
        self.ax.tick_params(labelsize=TICK_SIZE)
        self.ax.xaxis.label.set_size(LABEL_SIZE)
        self.ax.yaxis.label.set_size(LABEL_SIZE)
        legend = self.ax.get_legend()
        if legend is not None:
            legend.get_frame().set_alpha(0.7)
            legend.set_draggable(True)

    def _update_buttons(self):
        can_pick = self.run is not None
        self.pick_button.setEnabled(can_pick)
        self.pick_button.setToolTip(self.pick_button.toolTip() if can_pick else
                                    "Needs a run that wrote its endmember spectra (CSV or library)")
        self.clear_button.setEnabled(bool(self.pixels))
        if not can_pick and self.pick_button.isChecked():
            self.pick_button.setChecked(False)

    # ------------------------------------------------------------------ hover read-out
    def readout_at(self, x):
        """The read-out for x (a wavelength or a band number): the nearest band and each line's value."""
        import numpy as np

        if self._x is None or x is None or not self._lines:
            return ""
        i = int(np.nanargmin(np.abs(self._x - x)))
        where = "{:.1f} nm".format(self._x[i]) if self.run is not None and self.run.wavelengths is not None \
            else "band {}".format(self.run.bands[i] if self.run is not None else i + 1)
        values = ", ".join("{} {:.3g}".format(name, y[i]) for name, _, y in self._lines)
        return "{}: {}".format(where, values)

    def _on_motion(self, event):
        if event.inaxes is not self.ax or event.xdata is None or self._x is None:
            return
        import numpy as np

        self.readout_label.setText(self.readout_at(event.xdata))
        x = float(self._x[int(np.nanargmin(np.abs(self._x - event.xdata)))])
        if self._cursor is None or self._cursor.axes is not self.ax:
            self._cursor = self.ax.axvline(x, color="0.5", linewidth=0.8, linestyle=":")
            self._cursor.set_label("_cursor")
        self._cursor.set_xdata([x, x])
        self.canvas.draw_idle()

    def _on_leave(self, event):
        self.readout_label.setText("")
        if self._cursor is not None and self._cursor.axes is self.ax:
            self._cursor.remove()
        self._cursor = None
        self.canvas.draw_idle()

    # ------------------------------------------------------------------ picked pixels
    def set_map_canvas(self, canvas):
        self.map_canvas = canvas

    def _pick_toggled(self, checked):
        from .pixel_tool import PixelSpectrumTool

        if self.map_canvas is None:
            if checked:
                self.show_message("No map canvas to pick pixels on.")
                self.pick_button.setChecked(False)
            return
        if checked:
            if self.map_tool is None:
                self.map_tool = PixelSpectrumTool(self.map_canvas, self)
            self.map_canvas.setMapTool(self.map_tool)
            self.show_message("")
        elif self.map_tool is not None and self.map_canvas.mapTool() is self.map_tool:
            self.map_canvas.unsetMapTool(self.map_tool)

    def tool_deactivated(self):
        """The map tool was replaced by another one: the button follows."""
        if self.pick_button.isChecked():
            self.pick_button.blockSignals(True)
            self.pick_button.setChecked(False)
            self.pick_button.blockSignals(False)

    def show_message(self, text):
        """A one-line message under the plot (red), e.g. a click outside the raster; "" hides it."""
        self.message_label.setText(text)
        self.message_label.setVisible(bool(text))
        if text:
            QgsMessageLog.logMessage(text, "DFFN", Qgis.MessageLevel.Info)

    def add_pixel_at(self, point, crs=None):
        """Add the pixel under map point ``point`` (a QgsPointXY in ``crs``, the map's CRS; None: the
        raster's own). Returns the PixelFit, or None with a message in the panel."""
        from ..core.errors import InputError
        from ..core.report.pixel_spectrum import raster_grid

        if self.run is None:
            self.show_message("This run wrote no endmember spectra: there is nothing to compare a pixel with.")
            return None
        try:
            if self._grid is None:
                self._grid = raster_grid(self.run.input_path)
            x, y = _to_raster_crs(point, crs, self._grid.crs_wkt)
        except InputError as exc:
            self.show_message(str(exc))
            return None
        except Exception as exc:                   # a transform QGIS cannot do (QgsCsException)
            self.show_message("Cannot place the point on the run's input: {}".format(exc))
            return None
        pixel = self._grid.pixel_at(x, y)
        if pixel is None:
            self.show_message("The point ({:.8g}, {:.8g}) is outside the run's input {}.".format(
                x, y, os.path.basename(self.run.input_path)))
            return None
        return self.add_pixel(*pixel)

    def add_pixel(self, row, col):
        """Add pixel (row, col) (0-based) of the run's input: its spectrum, reconstruction and fractions.
        Returns the PixelFit, or None with a message in the panel (nodata, outside, file gone)."""
        from ..core.errors import InputError
        from ..core.report.pixel_spectrum import pixel_spectrum
        from ..core.report.plotting import broken_line

        if self.run is None:
            self.show_message("This run wrote no endmember spectra: there is nothing to compare a pixel with.")
            return None
        try:
            fit = pixel_spectrum(self.run, int(row), int(col))
        except InputError as exc:
            self.show_message(str(exc))
            return None
        if len(self.pixels) >= MAX_PIXELS:
            self._remove_pixel(0)
        used = {line.get_color() for _, line, _ in self.pixels}
        colour = next((c for c in PIXEL_COLOURS if c not in used), PIXEL_COLOURS[0])
        spectrum, _ = self.run.in_file_values(fit.spectrum)
        reconstruction, _ = self.run.in_file_values(fit.reconstruction)
        name = "pixel {},{}".format(fit.row, fit.col)
        line, = self.ax.plot(*broken_line(self._x, spectrum), color=colour, linewidth=1.4, label=name)
        fit_line, = self.ax.plot(*broken_line(self._x, reconstruction), color=colour, linewidth=1.2,
                                 linestyle="--", label="fit {},{} ({:.1f}°)".format(fit.row, fit.col,
                                                                                   _degrees(fit.angle_rad)))
        self.pixels.append((fit, line, fit_line))
        self._lines.append((name, self._x, spectrum))
        self._lines.append(("fit {},{}".format(fit.row, fit.col), self._x, reconstruction))
        self._after_pixels_changed()
        self.show_message("")
        return fit

    def _remove_pixel(self, index):
        fit, line, fit_line = self.pixels.pop(index)
        line.remove()
        fit_line.remove()
        n = len(self.run.names) if self.run is not None else 0
        del self._lines[n + 2 * index:n + 2 * index + 2]

    def clear_pixels(self):
        while self.pixels:
            self._remove_pixel(0)
        self._after_pixels_changed()

    def _after_pixels_changed(self):
        from ..core.report.plotting import add_legend

        if self.run is not None:
            self.ax.relim()
            self.ax.autoscale_view()
            add_legend(self.ax, LEGEND_SIZE)
            self._style_axes()
        self._update_pixel_text()
        self._update_buttons()
        self.canvas.draw_idle()

    def _update_pixel_text(self):
        self.pixel_label.setVisible(bool(self.run is not None and self.pixels))
        if self.run is None or not self.pixels:
            self.pixel_label.setText("")
            return
        rule = {"nnls": "non-negative least squares, scaled to sum to one, with the run's brightness spread "
                        "(as the abundance maps)",
                "fcls": "fully constrained least squares", "ls": "unconstrained least squares",
                "network": "the abundance maps' values"}
        texts = [fit.describe(self.run.names) for fit, _, _ in self.pixels]
        self.pixel_label.setText("\n".join(texts))
        self.pixel_label.setToolTip("Fractions: {}; angle: between the pixel and its reconstruction (dashed). "
                                    "Rows and columns count from 0.".format(rule.get(self.pixels[-1][0].rule, "")))

    # ------------------------------------------------------------------ files
    def open_report(self):
        if self.report_path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(self.report_path))

    def release_map_tool(self):
        if self.map_tool is not None and self.map_canvas is not None:
            try:
                if self.map_canvas.mapTool() is self.map_tool:
                    self.map_canvas.unsetMapTool(self.map_tool)
            except RuntimeError:                     # the canvas is already gone
                pass
        self.map_tool = None


def _degrees(angle):
    import math
    return math.degrees(angle) if angle == angle else float("nan")


def _to_raster_crs(point, crs, raster_wkt):
    """(x, y) of QgsPointXY ``point`` (in ``crs``) in the CRS of the raster (WKT; empty: none)."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject

    if crs is None or not raster_wkt:
        return point.x(), point.y()
    raster_crs = QgsCoordinateReferenceSystem.fromWkt(raster_wkt)
    if not raster_crs.isValid() or not crs.isValid() or raster_crs == crs:
        return point.x(), point.y()
    out = QgsCoordinateTransform(crs, raster_crs, QgsProject.instance()).transform(point)
    return out.x(), out.y()


def _give_room(main_window, dock):
    """Most of the right column's height for the new panel (QGIS stacks it under the panels already
    there, such as the Results Viewer, and it would get a third of it)."""
    try:
        main_window.resizeDocks([dock], [max(420, int(main_window.height() * 0.6))], Qt.Orientation.Vertical)
    except (AttributeError, TypeError, RuntimeError):      # no QMainWindow (tests' stand-ins)
        pass


def _iface():
    try:
        from qgis.utils import iface
    except ImportError:
        return None
    return iface


def current_dock():
    """The session's plot dock, or None before the first plot."""
    if _DOCK is not None:
        try:
            from qgis.PyQt import sip
            if sip.isdeleted(_DOCK):
                return None
        except ImportError:                     # no sip module to ask: trust the reference
            pass
    return _DOCK


def show_plot(png_path, title="", iface=None, report_path=None, record_path=None):
    """Show a run in the plot dock (created and docked on first use): its endmember spectra from the
    run record ``record_path`` (``<stack>.json``), else the PNG ``png_path``; *Open report* opens
    ``report_path`` (disabled without one). Main thread only.

    Returns the dock, or None where there is no QGIS main window (qgis_process, scripts).
    """
    global _DOCK
    iface = iface or _iface()
    if iface is None:
        return None
    dock = current_dock()
    if dock is None:
        main_window = iface.mainWindow() if hasattr(iface, "mainWindow") else None
        dock = PlotDock(main_window)
        iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        _give_room(main_window, dock)
        _DOCK = dock
    if hasattr(iface, "mapCanvas"):
        dock.set_map_canvas(iface.mapCanvas())
    dock.set_plot(png_path, title, report_path, record_path)
    dock.show()
    if hasattr(dock, "setUserVisible"):
        dock.setUserVisible(True)
    dock.raise_()
    return dock


def close_dock(iface=None):
    """Remove the dock (plugin unload)."""
    global _DOCK
    dock = current_dock()
    _DOCK = None
    if dock is None:
        return
    dock.release_map_tool()
    iface = iface or _iface()
    if iface is not None:
        try:
            iface.removeDockWidget(dock)
        except RuntimeError as exc:             # the main window is already gone (QGIS closing)
            QgsMessageLog.logMessage("spectra panel not removed: {}".format(exc), "DFFN", Qgis.MessageLevel.Info)
    dock.close()
    dock.deleteLater()
