"""A dock panel that shows the endmember spectra plot (the PNG the engine writes) inside QGIS, with
buttons that open the image and the run's HTML report (QGIS's Results Viewer only lists the report).

One panel for the whole session, reused by every run: :func:`show_plot` (main thread only)
creates it on first use, docks it on the right of the main window and shows the new image.
"""
import os

from qgis.core import Qgis, QgsMessageLog
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import Qt, QUrl
from qgis.PyQt.QtGui import QDesktopServices, QPixmap
from qgis.PyQt.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

OBJECT_NAME = "DFFNEndmemberPlotDock"
_DOCK = None


class PlotDock(QgsDockWidget):
    """Shows one PNG scaled to the panel's width, with its title and file name, and opens the report."""

    def __init__(self, parent=None):
        super().__init__("DFFN endmember spectra", parent)
        self.setObjectName(OBJECT_NAME)
        self._pixmap = QPixmap()
        self.png_path = None
        self.report_path = None

        body = QWidget(self)
        layout = QVBoxLayout(body)
        self.title_label = QLabel(body)
        self.title_label.setWordWrap(True)
        self.title_label.setStyleSheet("font-weight: bold;")
        self.image_label = QLabel(body)
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_label.setMinimumSize(200, 150)
        self.image_label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.path_label = QLabel(body)
        self.path_label.setWordWrap(True)
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QHBoxLayout()
        self.open_button = QPushButton("Open image", body)
        self.open_button.clicked.connect(self.open_image)
        self.report_button = QPushButton("Open report", body)
        self.report_button.setToolTip("The run's HTML report: names, abundance maps, error statistics, "
                                      "parameters and every file written")
        self.report_button.clicked.connect(self.open_report)
        self.report_button.setEnabled(False)
        buttons.addStretch(1)
        buttons.addWidget(self.report_button)
        buttons.addWidget(self.open_button)
        layout.addWidget(self.title_label)
        layout.addWidget(self.image_label, 1)
        layout.addWidget(self.path_label)
        layout.addLayout(buttons)
        self.setWidget(body)

    def set_plot(self, png_path, title="", report_path=None):
        self.png_path = png_path
        self.report_path = report_path
        self.report_button.setEnabled(bool(report_path))
        self.report_button.setToolTip(report_path or "this run wrote no report")
        self._pixmap = QPixmap(png_path)
        self.title_label.setText(title or "DFFN endmember spectra")
        self.path_label.setText(os.path.basename(png_path))
        self.path_label.setToolTip(png_path)
        if self._pixmap.isNull():
            self.image_label.setText("Cannot read {}".format(png_path))
        self._rescale()

    def has_image(self):
        return not self._pixmap.isNull()

    def _rescale(self):
        if self._pixmap.isNull():
            return
        size = self.image_label.size()
        if size.width() < 10 or size.height() < 10:
            self.image_label.setPixmap(self._pixmap)
            return
        self.image_label.setPixmap(self._pixmap.scaled(size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self._rescale()

    def open_image(self):
        if self.png_path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(self.png_path))

    def open_report(self):
        if self.report_path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(self.report_path))


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


def show_plot(png_path, title="", iface=None, report_path=None):
    """Show ``png_path`` in the plot dock (created and docked on first use), with *Open report* opening
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
        _DOCK = dock
    dock.set_plot(png_path, title, report_path)
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
    iface = iface or _iface()
    if iface is not None:
        try:
            iface.removeDockWidget(dock)
        except RuntimeError as exc:             # the main window is already gone (QGIS closing)
            QgsMessageLog.logMessage("spectra panel not removed: {}".format(exc), "DFFN", Qgis.MessageLevel.Info)
    dock.close()
    dock.deleteLater()
