"""The spectra panel: an interactive matplotlib canvas (zoom, hover read-out) and the map tool that
adds a clicked pixel's spectrum, reconstruction and fractions.

nice -n 10 .venv/bin/python -m pytest tests/qgis/test_qgis_plot_dock.py -q
"""
import numpy as np
import pytest

from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsPointXY, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QEvent, QPoint, Qt
from qgis.PyQt.QtTest import QTest

pytestmark = pytest.mark.qgis


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    """A real (tiny) run of a generated scene: every output, as the Processing dialog writes them."""
    from qgis_helpers import write_scene

    from dffn_qgis.core.io.outputs import plan_outputs
    from dffn_qgis.core.run import service
    from dffn_qgis.core.run.config import params_for

    folder = tmp_path_factory.mktemp("dock")
    scene = write_scene(folder / "scene.tif", seed=0)
    params = params_for("fast", n_endmembers=3, epochs=3, starts=1, start_epochs=0, patience=0, threads=1,
                        device="cpu", seed=1)
    return service.run(service.RunRequest.make(scene, params, plan_outputs(folder / "out", "scene"))).paths


@pytest.fixture
def dock(qgis_iface, qgis_canvas, run_files):
    from dffn_qgis.gui.plot_dock import close_dock, show_plot

    dock = show_plot(run_files["plot_png"], "DFFN endmember spectra: scene", iface=qgis_iface,
                     report_path=run_files["report_html"], record_path=run_files["record_json"])
    dock.setFloating(True)
    dock.resize(320, 620)
    dock.show()
    QTest.qWaitForWindowExposed(dock)
    dock.canvas.draw()
    yield dock
    close_dock(qgis_iface)


def _qt_point(dock, x_fraction, y_fraction):
    """The canvas widget's point at a fraction of the axes' box (0, 0: bottom left)."""
    box = dock.ax.get_window_extent()
    ratio = dock.canvas.device_pixel_ratio if hasattr(dock.canvas, "device_pixel_ratio") else 1.0
    x = box.x0 + x_fraction * box.width
    y = box.y0 + y_fraction * box.height
    return QPoint(int(x / ratio), int((dock.canvas.figure.bbox.height - y) / ratio))


def test_the_run_is_drawn_on_a_canvas_with_the_reports_colours(dock, run_files):
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg, NavigationToolbar2QT
    from matplotlib.colors import to_hex

    from dffn_qgis.core.report.pixel_spectrum import load_run
    from dffn_qgis.core.report.plotting import distinct_colours, hex_colour, legend_label

    run = load_run(run_files["record_json"])
    assert isinstance(dock.canvas, FigureCanvasQTAgg) and isinstance(dock.toolbar, NavigationToolbar2QT)
    assert dock.has_image() and dock.pick_button.isEnabled() and dock.report_button.isEnabled()
    lines = dock.ax.get_lines()
    labels = [legend_label(name) for name in run.names]          # long names wrapped, as in the report
    assert [line.get_label() for line in lines] == labels
    assert [to_hex(line.get_color()) for line in lines] == [hex_colour(c) for c in distinct_colours(3)]
    assert [t.get_text() for t in dock.ax.get_legend().get_texts()] == labels
    assert dock.ax.get_xlabel() == "wavelength (nm)" and dock.ax.get_ylabel() == "reflectance"
    # type that stays readable in a narrow panel: 8 points and up for ticks, the figure at screen size
    assert min(t.get_fontsize() for t in dock.ax.get_xticklabels()) >= 8
    assert dock.canvas.width() >= 250 and abs(dock.figure.get_figwidth() * dock.figure.dpi
                                              - dock.canvas.width() * dock.canvas.device_pixel_ratio) < 2


def test_a_zoom_with_the_toolbar_narrows_the_axes(dock):
    before = dock.ax.get_xlim()
    dock.toolbar.zoom()
    QTest.mousePress(dock.canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _qt_point(dock, 0.3, 0.3))
    QTest.mouseRelease(dock.canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       _qt_point(dock, 0.6, 0.8))
    after = dock.ax.get_xlim()
    assert after != before and after[1] - after[0] < 0.5 * (before[1] - before[0])
    dock.toolbar.home()
    assert dock.ax.get_xlim() == pytest.approx(before)
    dock.toolbar.zoom()                                   # off again


def test_hovering_reads_out_the_wavelength_and_every_value(dock, run_files):
    from dffn_qgis.core.report.pixel_spectrum import load_run

    run = load_run(run_files["record_json"])
    QTest.mouseMove(dock.canvas, _qt_point(dock, 0.5, 0.5))
    text = dock.readout_label.text()
    if not text:                                           # platforms without synthetic mouse moves
        from matplotlib.backend_bases import MouseEvent
        box = dock.ax.get_window_extent()
        MouseEvent("motion_notify_event", dock.canvas, box.x0 + box.width / 2, box.y0 + box.height / 2)._process()
        text = dock.readout_label.text()
    assert text.split(":")[0].endswith(" nm") and all(name in text for name in run.names)
    values, _ = run.in_file_values(run.endmembers)
    wavelength = float(text.split(" nm")[0])
    band = int(np.argmin(np.abs(run.wavelengths - wavelength)))
    assert "{} {:.3g}".format(run.names[0], values[band, 0]) in text
    assert dock.readout_at(run.wavelengths[0]).startswith("{:.1f} nm: ".format(run.wavelengths[0]))


def _click(canvas, tool, map_point):
    from qgis.gui import QgsMapMouseEvent

    device = canvas.getCoordinateTransform().transform(map_point)
    position = QPoint(int(round(device.x())), int(round(device.y())))
    for kind in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease):
        event = QgsMapMouseEvent(canvas, kind, position, Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton,
                                 Qt.KeyboardModifier.NoModifier)
        (tool.canvasPressEvent if kind == QEvent.Type.MouseButtonPress else tool.canvasReleaseEvent)(event)


@pytest.fixture
def map_in_degrees(qgis_canvas, run_files):
    """The map canvas in WGS 84 (the scene is in UTM) showing the whole scene, and a function giving
    the map point of the centre of pixel (row, col)."""
    from dffn_qgis.core.report.pixel_spectrum import load_run, raster_grid

    grid = raster_grid(load_run(run_files["record_json"]).input_path)
    utm = QgsCoordinateReferenceSystem.fromWkt(grid.crs_wkt)
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    to_map = QgsCoordinateTransform(utm, wgs84, QgsProject.instance())
    x0, dx, _, y0, _, dy = grid.geotransform
    qgis_canvas.setDestinationCrs(wgs84)
    extent = to_map.transformBoundingBox(QgsRectangle(x0 - 5 * dx, y0 + (grid.height + 5) * dy,
                                                      x0 + (grid.width + 5) * dx, y0 - 5 * dy))
    qgis_canvas.setExtent(extent)
    qgis_canvas.refresh()

    def centre(row, col):
        return to_map.transform(QgsPointXY(x0 + (col + 0.5) * dx, y0 + (row + 0.5) * dy))
    return centre


def test_a_click_on_the_map_adds_the_pixel_its_reconstruction_and_fractions(dock, qgis_canvas, run_files,
                                                                          map_in_degrees):
    from dffn_qgis.core.report.pixel_spectrum import load_run, pixel_spectrum
    from dffn_qgis.core.report.plotting import broken_line
    from dffn_qgis.gui.pixel_tool import PixelSpectrumTool

    run = load_run(run_files["record_json"])
    dock.pick_button.setChecked(True)
    tool = qgis_canvas.mapTool()
    assert isinstance(tool, PixelSpectrumTool)
    _click(qgis_canvas, tool, map_in_degrees(7, 6))
    assert dock.message_label.text() == ""
    expected = pixel_spectrum(run, 7, 6)                  # what core computes for that pixel
    fit, line, fit_line = dock.pixels[-1]
    assert (fit.row, fit.col) == (7, 6)
    np.testing.assert_allclose(fit.fractions, expected.fractions, atol=1e-9)
    from osgeo import gdal
    np.testing.assert_allclose(fit.fractions, gdal.Open(run_files["stack"]).ReadAsArray()[:, 7, 6], atol=2e-4)
    assert len(dock.ax.get_lines()) == 3 + 2 and line.get_label() == "pixel 7,6"
    assert fit_line.get_linestyle() == "--" and fit_line.get_label().startswith("fit 7,6")
    spectrum, _ = run.in_file_values(expected.spectrum)
    np.testing.assert_allclose(line.get_ydata(), broken_line(run.wavelengths, spectrum)[1], equal_nan=True)
    reconstruction, _ = run.in_file_values(expected.reconstruction)
    np.testing.assert_allclose(fit_line.get_ydata(), broken_line(run.wavelengths, reconstruction)[1],
                               equal_nan=True)
    text = dock.pixel_label.text()
    assert text == expected.describe(run.names)
    for name, fraction in zip(run.names, expected.fractions):
        assert "{} {:.2f}".format(name, fraction) in text
    legend = [t.get_text() for t in dock.ax.get_legend().get_texts()]
    assert "pixel 7,6" in legend
    # the read-out now also reports the pixel and its fit
    assert "pixel 7,6 " in dock.readout_at(run.wavelengths[3]) and "fit 7,6 " in dock.readout_at(run.wavelengths[3])
    # a second pixel, then clearing
    _click(qgis_canvas, tool, map_in_degrees(14, 2))
    assert len(dock.pixels) == 2 and len(dock.pixel_label.text().splitlines()) == 2
    dock.clear_pixels()
    assert len(dock.ax.get_lines()) == 3 and dock.pixel_label.text() == "" and not dock.clear_button.isEnabled()
    # another map tool takes over: the button pops up
    from qgis.gui import QgsMapToolPan
    pan = QgsMapToolPan(qgis_canvas)
    qgis_canvas.setMapTool(pan)
    assert not dock.pick_button.isChecked()
    qgis_canvas.unsetMapTool(pan)


def test_a_click_outside_the_raster_or_on_nodata_gives_a_message(dock, qgis_canvas, run_files, map_in_degrees):
    from qgis_helpers import HEIGHT, WIDTH

    from dffn_qgis.core.eval.synthetic import nodata_mask

    dock.pick_button.setChecked(True)
    tool = qgis_canvas.mapTool()
    _click(qgis_canvas, tool, map_in_degrees(-3, 4))
    assert "outside the run's input" in dock.message_label.text()
    assert len(dock.ax.get_lines()) == 3 and not dock.pixels
    row, col = np.argwhere(nodata_mask(HEIGHT, WIDTH, seed=0))[0]
    _click(qgis_canvas, tool, map_in_degrees(int(row), int(col)))
    assert "nodata" in dock.message_label.text() and not dock.pixels
    dock.pick_button.setChecked(False)
    assert qgis_canvas.mapTool() is not tool


def test_a_run_without_spectra_shows_its_picture_and_cannot_pick(qgis_iface, run_files, tmp_path):
    import json

    from dffn_qgis.gui.plot_dock import close_dock, show_plot

    record = json.load(open(run_files["record_json"]))
    record["outputs"]["endmembers_csv"] = record["outputs"]["endmembers_sli"] = None
    path = tmp_path / "record.json"
    path.write_text(json.dumps(record))
    dock = show_plot(run_files["plot_png"], "t", iface=qgis_iface, record_path=str(path))
    try:
        assert dock.has_image() and not dock.pick_button.isEnabled() and not dock.report_button.isEnabled()
        assert "no endmember spectra" in dock.message_label.text()
        assert dock.add_pixel(3, 3) is None
    finally:
        close_dock(qgis_iface)


def test_the_loaded_run_hands_its_record_to_the_panel(run_files):
    from dffn_qgis.processing_provider.postprocess import RunDisplay, set_plot_viewer
    from dffn_qgis.gui.plot_dock import show_plot

    calls = []
    set_plot_viewer(lambda png, title, **kw: calls.append((png, kw)))
    try:
        run = RunDisplay("scene", run_files["plot_png"], 1, run_files["report_html"], run_files["record_json"])

        class Layer:
            def id(self):
                return "layer"
        run.done(Layer())
    finally:
        set_plot_viewer(show_plot)
    assert calls == [(run_files["plot_png"], {"report_path": run_files["report_html"],
                                              "record_path": run_files["record_json"]})]
