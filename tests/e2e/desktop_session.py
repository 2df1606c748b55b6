"""Runs INSIDE the QGIS desktop (``qgis --code desktop_session.py``), driven by tests/e2e.

Everything is steered by environment variables set by the test:

DFFN_E2E_OUT     folder for report.json, layer_tree.json and the screenshots
DFFN_E2E_MODE    "run" (default): open the DFFN Unmix dialog, run it, check the result, run the
                 "Unmix with DFFN..." background task; "install_zip": install DFFN_E2E_ZIP
                 through QGIS's own "Install from ZIP" code, then check the plugin is active
DFFN_E2E_INPUT   the hyperspectral GeoTIFF to unmix (mode "run")
DFFN_E2E_PARAMS  JSON of extra algorithm parameters (epochs etc.) of the dialog's run
DFFN_E2E_TASK_PARAMS  JSON of those of the "Unmix with DFFN..." task (default: DFFN_E2E_PARAMS)

Steps run one after the other from the event loop (QTimer), so QGIS stays responsive; the
script writes report.json after every step and quits QGIS at the end (exit code 0 or 1).
"""
import json
import os
import time
import traceback

from qgis.core import (
    QgsApplication,
    QgsLayerTreeGroup,
    QgsLayerTreeLayer,
    QgsProject,
    QgsRasterLayer,
    QgsSingleBandPseudoColorRenderer,
)
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication, QTextEdit
from qgis.gui import QgsDockWidget
import qgis.utils

OUT = os.environ["DFFN_E2E_OUT"]
MODE = os.environ.get("DFFN_E2E_MODE", "run")
INPUT = os.environ.get("DFFN_E2E_INPUT", "")
EXTRA = json.loads(os.environ.get("DFFN_E2E_PARAMS", "{}") or "{}")
N_ENDMEMBERS = int(EXTRA.pop("N_ENDMEMBERS", 3))
TASK_EXTRA = json.loads(os.environ.get("DFFN_E2E_TASK_PARAMS", "") or "null")
TASK_EXTRA = dict(EXTRA) if TASK_EXTRA is None else TASK_EXTRA
PROGRESS_SAMPLE_MS = 250           # how often the dialog's progress line is read during the run
os.makedirs(OUT, exist_ok=True)

report = {"mode": MODE, "steps": [], "errors": [], "done": False}
state = {}


def iface():
    return qgis.utils.iface


def save_report():
    with open(os.path.join(OUT, "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, default=str)


def log(step, **info):
    entry = {"step": step, "t": round(time.time() - START, 2)}
    entry.update(info)
    report["steps"].append(entry)
    save_report()


def finish(code=0):
    report["done"] = True
    report["exit_code"] = code
    save_report()
    QTimer.singleShot(300, lambda: QgsApplication.exit(code))


def guarded(fn):
    def run():
        try:
            fn()
        except Exception:
            report["errors"].append(traceback.format_exc())
            finish(1)
    return run


def later(ms, fn):
    QTimer.singleShot(ms, guarded(fn))


def poll(condition, then, timeout_s, what, every_ms=250):
    deadline = time.time() + timeout_s

    def check():
        if condition():
            then()
        elif time.time() > deadline:
            raise TimeoutError("timed out waiting for " + what)
        else:
            later(every_ms, check)
    later(every_ms, check)


def grab_widget(widget, name):
    path = os.path.join(OUT, name)
    QApplication.processEvents()
    ok = widget.grab().save(path)
    return path if ok else None


def grab_screen(name):
    path = os.path.join(OUT, name)
    QApplication.processEvents()
    ok = QApplication.primaryScreen().grabWindow(0).save(path)
    return path if ok else None


def layer_info(layer):
    info = {"name": layer.name(), "id": layer.id(), "type": layer.__class__.__name__,
            "valid": layer.isValid(), "source": layer.source(),
            "crs": layer.crs().authid(), "extent": layer.extent().toString(6)}
    if isinstance(layer, QgsRasterLayer):
        renderer = layer.renderer()
        info.update(band_count=layer.bandCount(), renderer=renderer.type() if renderer else None,
                    width=layer.width(), height=layer.height())
        if isinstance(renderer, QgsSingleBandPseudoColorRenderer):
            info.update(band=renderer.band(), min=renderer.classificationMin(),
                        max=renderer.classificationMax())
        info["role"] = layer.customProperty("dffn/role")
    return info


def tree_json(node):
    if isinstance(node, QgsLayerTreeGroup):
        return {"group": node.name(), "visible": node.isVisible(),
                "children": [tree_json(child) for child in node.children()]}
    if isinstance(node, QgsLayerTreeLayer):
        layer = node.layer()
        info = layer_info(layer) if layer is not None else {}
        info.update(checked=node.itemVisibilityChecked(), expanded=node.isExpanded())
        return {"layer": info}
    return {"other": str(node)}


def plot_dock_widgets():
    return [dock for dock in iface().mainWindow().findChildren(QgsDockWidget)
            if dock.objectName() == "DFFNEndmemberPlotDock"]


def plotted_lines(dock):
    """The plot's lines, without the read-out's marker (its label starts with "_")."""
    return len([line for line in dock.ax.get_lines() if not line.get_label().startswith("_")])


def plot_docks():
    docks = []
    for dock in plot_dock_widgets():
        docks.append({"visible": dock.isVisible(), "title": dock.windowTitle(),
                      "has_image": dock.has_image(), "png": dock.png_path, "record": dock.record_path,
                      "label": dock.title_label.text(), "lines": plotted_lines(dock),
                      "canvas": type(dock.canvas).__name__, "toolbar": type(dock.toolbar).__name__,
                      "canvas_size": [dock.canvas.width(), dock.canvas.height()]})
    return docks


def write_tree(name):
    data = {"tree": tree_json(QgsProject.instance().layerTreeRoot()),
            "layer_count": len(QgsProject.instance().mapLayers()),
            "plot_docks": plot_docks()}
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=str)
    return data


def find_group(prefix):
    for child in QgsProject.instance().layerTreeRoot().children():
        if isinstance(child, QgsLayerTreeGroup) and child.name().startswith(prefix):
            return child
    return None


# --------------------------------------------------------------------------------- steps

def step_start():
    iface().mainWindow().showMaximized()
    registry = QgsApplication.processingRegistry()
    log("start", active_plugins=list(qgis.utils.active_plugins),
        algorithm=registry.algorithmById("dffn:unmix") is not None,
        qgis=qgis.core.Qgis.QGIS_VERSION)
    if MODE == "install_zip":
        later(500, step_install_zip)
    else:
        later(500, step_open_dialog)


def home_plugin_path():
    """The profile's plugin folder, where "Install from ZIP" unpacks: ``qgis.utils.home_plugin_path``
    up to QGIS 3.3x, ``qgis.utils.HOME_PLUGIN_PATH`` in 3.40+, else the profile's ``python/plugins``."""
    for name in ("HOME_PLUGIN_PATH", "home_plugin_path"):
        path = getattr(qgis.utils, name, None)
        if path:
            return path
    return os.path.join(QgsApplication.qgisSettingsDirPath(), "python", "plugins")


def step_install_zip():
    import pyplugin_installer
    zip_path = os.environ["DFFN_E2E_ZIP"]
    before = "dffn_qgis" in qgis.utils.active_plugins
    pyplugin_installer.instance().installFromZipFile(zip_path)
    registry = QgsApplication.processingRegistry()
    plugin_dir = os.path.join(home_plugin_path(), "dffn_qgis")
    log("install_zip", active_before=before, active_after="dffn_qgis" in qgis.utils.active_plugins,
        algorithm=registry.algorithmById("dffn:unmix") is not None,
        plugin_dir=plugin_dir, files=sorted(os.listdir(plugin_dir)) if os.path.isdir(plugin_dir) else [],
        module_file=getattr(__import__("dffn_qgis"), "__file__", None))
    finish(0)


def step_open_dialog():
    import processing

    layer = QgsRasterLayer(INPUT, "demo")
    assert layer.isValid(), "cannot open " + INPUT
    QgsProject.instance().addMapLayer(layer)
    iface().setActiveLayer(layer)
    iface().mapCanvas().setExtent(layer.extent())
    state["layer"] = layer
    params = {"INPUT": layer.id(), "N_ENDMEMBERS": N_ENDMEMBERS}
    params.update(EXTRA)
    for key, name in (("OUTPUT", "demo_abundances.tif"), ("ABUNDANCE_FOLDER", "demo_per_endmember"),
                      ("ENDMEMBERS", "demo_endmembers.csv"), ("PLOT", "demo_report.html"),
                      ("ERROR", "demo_error.tif"), ("DOMINANT", "demo_dominant.tif")):
        params[key] = os.path.join(OUT, "outputs", name)
    dialog = processing.createAlgorithmDialog("dffn:unmix", params)
    assert dialog is not None, "createAlgorithmDialog returned None"
    state["dialog"] = dialog
    dialog.resize(900, 720)
    dialog.show()
    dialog.raise_()
    log("dialog_open", title=dialog.windowTitle(), params=params)
    later(1500, step_screenshot_dialog)


def step_screenshot_dialog():
    dialog = state["dialog"]
    log("dialog_screenshot", dialog_png=grab_widget(dialog, "dialog.png"),
        screen_png=grab_screen("screen_dialog.png"))
    watch_progress(dialog)
    state["t_run"] = time.time()
    dialog.runAlgorithm()
    expected = N_ENDMEMBERS

    def finished():
        group = find_group("DFFN demo")
        if group is None:
            return False
        return len(group.findLayers()) >= expected + 1 and not dialog_running(dialog)

    poll(finished, step_after_run, 600, "the dialog's run to load its layers")


def watch_progress(dialog):
    """What the real dialog shows while it runs: its progress line (the label under the log, read
    every PROGRESS_SAMPLE_MS; each change is kept with its time) and every value its progress bar
    takes (valueChanged), until the dialog says the algorithm finished (before it resets the bar)."""
    from qgis.PyQt.QtWidgets import QLabel, QProgressBar

    bar = dialog.findChild(QProgressBar, "progressBar")
    label = dialog.findChild(QLabel, "lblProgress")
    watch = {"bar": bar is not None, "label": label is not None, "texts": [], "values": [],
             "maximums": [], "samples": 0, "finished_at": None, "ok": None,
             "has_finished_signal": hasattr(dialog, "algorithmFinished")}
    state["watch"] = watch
    t0 = time.time()

    def now():
        return round(time.time() - t0, 3)

    def on_value(value):
        # with the line shown then: QGIS's own "Loading resulting layers" runs the bar 0..100 again
        if watch["finished_at"] is None:
            watch["values"].append([now(), int(value), label.text() if label is not None else ""])

    def sample():
        try:
            if watch["finished_at"] is not None:
                return
            watch["samples"] += 1
            text = label.text() if label is not None else ""
            if not watch["texts"] or watch["texts"][-1][1] != text:
                watch["texts"].append([now(), text])
            if bar is not None and (not watch["maximums"] or watch["maximums"][-1] != bar.maximum()):
                watch["maximums"].append(bar.maximum())
        except Exception:
            report["errors"].append("progress sample: " + traceback.format_exc())

    def on_finished(ok, results=None):
        sample()
        watch["finished_at"], watch["ok"] = now(), bool(ok)
        timer.stop()

    if bar is not None:
        bar.valueChanged.connect(on_value)
    timer = QTimer(dialog)
    timer.setInterval(PROGRESS_SAMPLE_MS)
    timer.timeout.connect(sample)
    timer.start()
    state["watch_timer"] = timer
    if watch["has_finished_signal"]:
        dialog.algorithmFinished.connect(on_finished)
    state["watch_finished"] = on_finished


def dialog_running(dialog):
    try:
        return not dialog.buttonBox().button(dialog.buttonBox().Close).isEnabled()
    except Exception:
        return False


def dialog_log(dialog):
    edits = [w for w in dialog.findChildren(QTextEdit) if w.objectName() == "txtLog"]
    return edits[0].toPlainText() if edits else ""


def step_after_run():
    dialog = state["dialog"]
    QApplication.processEvents()
    text = dialog_log(dialog)
    with open(os.path.join(OUT, "dialog_log.txt"), "w", encoding="utf-8") as f:
        f.write(text)
    log("run_done", seconds=round(time.time() - state["t_run"], 1),
        dialog_log_png=grab_widget(dialog, "dialog_log.png"), log_chars=len(text))
    watch = state["watch"]
    if watch["finished_at"] is None:                      # no algorithmFinished signal: stop here
        state["watch_finished"](True)
        watch["ok"] = None
    log("progress_watch", **watch)
    dialog.close()
    later(1500, step_dialog_again)


def _parameter_widget(dialog, name):
    """The widget of parameter ``name`` in an algorithm dialog (its C++ or Python wrapper's)."""
    wrapper = getattr(dialog.mainWidget(), "wrappers", {}).get(name)
    if wrapper is None:
        return None
    if hasattr(wrapper, "wrappedWidget"):
        return wrapper.wrappedWidget()
    return getattr(wrapper, "widget", None)


def _current_layer(widget):
    from qgis.gui import QgsMapLayerComboBox

    if widget is None:
        return None
    if hasattr(widget, "currentLayer"):
        return widget.currentLayer()
    combos = widget.findChildren(QgsMapLayerComboBox)
    return combos[0].currentLayer() if combos else None


def _combo_texts(widget):
    """What the combo boxes inside ``widget`` show (QGIS 3.22's QgsProcessingMapLayerComboBox comes
    to Python as a plain QWidget)."""
    from qgis.PyQt.QtWidgets import QComboBox

    if widget is None:
        return []
    combos = ([widget] if isinstance(widget, QComboBox) else []) + widget.findChildren(QComboBox)
    return [[type(c).__name__, c.currentText()] for c in combos]


def step_dialog_again():
    """The DFFN Unmix dialog opened again after the run, as the menu opens it (no parameters given):
    it offers the run's input and count, not the single-band abundance layer now active."""
    import processing

    active = iface().activeLayer()
    active_by_run = layer_info(active) if active is not None else None
    if active is None or active.customProperty("dffn/role") != "abundance":
        # a user who clicks an abundance layer before opening the dialog again
        group = find_group("DFFN demo")
        abundance = [node.layer() for node in group.findLayers()
                     if node.layer().customProperty("dffn/role") == "abundance"]
        iface().setActiveLayer(abundance[0])
        active = iface().activeLayer()
    dialog = processing.createAlgorithmDialog("dffn:unmix", {})
    assert dialog is not None, "createAlgorithmDialog returned None"
    dialog.resize(900, 720)
    dialog.show()
    QApplication.processEvents()
    combo = _parameter_widget(dialog, "INPUT")
    spin = _parameter_widget(dialog, "N_ENDMEMBERS")
    layer = _current_layer(combo)
    info = {"active_by_run": active_by_run, "active_layer": layer_info(active),
            "input_widget": type(combo).__name__, "count_widget": type(spin).__name__,
            "input_combos": _combo_texts(combo),
            "input_layer": layer.name() if layer is not None else None,
            "input_source": layer.source() if layer is not None else None,
            "input_id": layer.id() if layer is not None else None, "demo_id": state["layer"].id(),
            "n_endmembers": spin.value() if spin is not None and hasattr(spin, "value") else None}
    try:                                                  # what *Run* would take from the widgets
        values = dialog.createProcessingParameters()
        info["parameters"] = {key: str(values.get(key)) for key in ("INPUT", "N_ENDMEMBERS")}
    except Exception as exc:
        info["parameters_error"] = "{}: {}".format(type(exc).__name__, exc)
    info["dialog_png"] = grab_widget(dialog, "dialog_again.png")
    log("dialog_again", **info)
    dialog.close()
    later(1000, step_screenshot_result)


def step_screenshot_result():
    canvas = iface().mapCanvas()
    # the group shows its first endmember; hide the input under it for the screenshot
    input_node = QgsProject.instance().layerTreeRoot().findLayer(state["layer"].id())
    input_node.setItemVisibilityChecked(False)
    input_node.setExpanded(False)
    canvas.setExtent(state["layer"].extent())
    canvas.refreshAllLayers()
    later(2000, step_write_tree)


def step_write_tree():
    data = write_tree("layer_tree.json")
    log("result", result_png=grab_widget(iface().mainWindow(), "result_before_pick.png"),
        screen_png=grab_screen("screen_result.png"), docks=data["plot_docks"])
    later(200, step_dock_zoom)


def _axes_point(dock, x_fraction, y_fraction):
    """The plot canvas widget's point at a fraction of the axes' box (0, 0: bottom left)."""
    from qgis.PyQt.QtCore import QPoint

    box = dock.ax.get_window_extent()
    ratio = getattr(dock.canvas, "device_pixel_ratio", 1.0) or 1.0
    return QPoint(int((box.x0 + x_fraction * box.width) / ratio),
                  int((dock.figure.bbox.height - box.y0 - y_fraction * box.height) / ratio))


def _zoom_box_clear_of_the_legend(dock):
    """Corners (axes fractions) of a zoom box whose press and release points are off the legend (a
    press on the draggable legend drags it, as matplotlib does, instead of zooming)."""
    legend = dock.ax.get_legend()
    box = legend.get_window_extent() if legend is not None else None
    axes = dock.ax.get_window_extent()

    def clear(fx, fy):
        x, y = axes.x0 + fx * axes.width, axes.y0 + fy * axes.height
        return box is None or not (box.x0 - 5 <= x <= box.x1 + 5 and box.y0 - 5 <= y <= box.y1 + 5)

    for corners in (((0.2, 0.2), (0.6, 0.8)), ((0.1, 0.5), (0.5, 0.9)), ((0.4, 0.1), (0.8, 0.5)),
                    ((0.1, 0.1), (0.4, 0.4)), ((0.55, 0.1), (0.9, 0.45))):
        if all(clear(*corner) for corner in corners):
            return corners
    return ((0.2, 0.2), (0.6, 0.8))


def step_dock_zoom():
    """The spectra panel in the real window: a zoom with the toolbar, by mouse, changes the axes."""
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtTest import QTest

    dock = plot_dock_widgets()[0]
    dock.canvas.draw()
    QApplication.processEvents()
    before = list(dock.ax.get_xlim()), list(dock.ax.get_ylim())
    presses, releases = [], []
    cid = dock.canvas.mpl_connect("button_press_event", lambda e: presses.append((e.x, e.y, e.inaxes is dock.ax)))
    rid = dock.canvas.mpl_connect("button_release_event",
                                  lambda e: releases.append((e.x, e.y, str(e.key), str(e.button))))
    mode_before = str(getattr(dock.toolbar, "mode", ""))
    dock.toolbar.zoom()
    mode_zoom = str(getattr(dock.toolbar, "mode", ""))
    (x0, y0), (x1, y1) = _zoom_box_clear_of_the_legend(dock)
    QTest.mousePress(dock.canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _axes_point(dock, x0, y0))
    zoom_started = getattr(dock.toolbar, "_zoom_info", None) is not None
    QTest.mouseMove(dock.canvas, _axes_point(dock, (x0 + x1) / 2, (y0 + y1) / 2))
    QTest.mouseRelease(dock.canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       _axes_point(dock, x1, y1))
    QApplication.processEvents()
    dock.canvas.mpl_disconnect(rid)
    after = list(dock.ax.get_xlim()), list(dock.ax.get_ylim())
    zoomed_png = grab_widget(dock, "plot_zoomed.png")
    dock.toolbar.home()
    dock.toolbar.zoom()                                   # the zoom mode off again
    home = list(dock.ax.get_xlim())
    QTest.mouseMove(dock.canvas, _axes_point(dock, 0.5, 0.5))
    QApplication.processEvents()
    dock.canvas.mpl_disconnect(cid)
    log("dock_zoom", xlim_before=before[0], ylim_before=before[1], xlim_after=after[0], ylim_after=after[1],
        presses=presses, releases=releases, axes_px=[float(dock.ax.get_window_extent().width),
                                                     float(dock.ax.get_window_extent().height)], mode_before=mode_before, mode_zoom=mode_zoom, zoom_started=zoom_started,
        canvas_size=[dock.canvas.width(), dock.canvas.height()],
        figure_px=[float(dock.figure.bbox.width), float(dock.figure.bbox.height)],
        mode=str(getattr(dock.toolbar, "mode", "")),
        xlim_home=home, readout=dock.readout_label.text(), zoomed_png=zoomed_png,
        font_sizes=sorted({t.get_fontsize() for t in dock.ax.get_xticklabels()}))
    later(500, step_dock_pick)


def _mixed_pixel(path, stack_path):
    """A valid pixel of the input where the run's abundances are the most even (a mixture shows its
    fit best), and the input's geotransform."""
    import numpy as np
    from osgeo import gdal

    ds = gdal.Open(path)
    band = ds.GetRasterBand(1)
    valid = band.ReadAsArray() != band.GetNoDataValue()
    fractions = gdal.Open(stack_path).ReadAsArray()
    evenness = np.where(valid, fractions.min(axis=0) + np.sort(fractions, axis=0)[-2], -1.0)
    row, col = np.unravel_index(int(np.argmax(evenness)), evenness.shape)
    return int(row), int(col), ds.GetGeoTransform()


def step_dock_pick():
    """*Pick pixel*, then a real mouse click on the map canvas: the pixel's spectrum, its fit and its
    fractions join the plot. Then a click beside the raster."""
    from osgeo import gdal
    from qgis.core import QgsPointXY
    from qgis.PyQt.QtCore import QPoint, Qt
    from qgis.PyQt.QtTest import QTest

    from dffn_qgis.core.report.pixel_spectrum import load_run, pixel_spectrum

    dock = plot_dock_widgets()[0]
    canvas = iface().mapCanvas()
    dock.pick_button.click()
    tool = canvas.mapTool()
    row, col, gt = _mixed_pixel(INPUT, os.path.join(OUT, "outputs", "demo_abundances.tif"))
    point = QgsPointXY(gt[0] + (col + 0.5) * gt[1], gt[3] + (row + 0.5) * gt[5])   # the map is in the input's CRS
    device = canvas.getCoordinateTransform().transform(point)
    where = QPoint(int(round(device.x())), int(round(device.y())))
    QTest.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, where)
    QApplication.processEvents()
    pick = {"row": row, "col": col, "tool": type(tool).__name__,
            "pixels": [[fit.row, fit.col] for fit, _, _ in dock.pixels],
            "fractions": [list(map(float, fit.fractions)) for fit, _, _ in dock.pixels],
            "pixel_label": dock.pixel_label.text(), "lines": plotted_lines(dock),
            "legend": [t.get_text() for t in dock.ax.get_legend().get_texts()],
            "message": dock.message_label.text()}
    # what the core computes for that pixel, and what the abundance raster holds there
    run = load_run(dock.record_path)
    pick["core_fractions"] = list(map(float, pixel_spectrum(run, row, col).fractions))
    pick["stack_fractions"] = [float(v) for v in gdal.Open(run.stack_path).ReadAsArray(col, row, 1, 1).ravel()]
    # a click beside the raster: zoom out so that there is map around it, click, zoom back
    ds = gdal.Open(INPUT)
    canvas.zoomByFactor(2.0)
    outside = canvas.getCoordinateTransform().transform(
        QgsPointXY(gt[0] - 3 * gt[1], gt[3] + ds.RasterYSize / 2.0 * gt[5]))
    if 0 <= outside.x() < canvas.viewport().width():
        QTest.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         QPoint(int(outside.x()), int(outside.y())))
        QApplication.processEvents()
        pick["outside_message"] = dock.message_label.text()
        pick["pixels_after_outside"] = len(dock.pixels)
        dock.show_message("")
    canvas.setExtent(state["layer"].extent())
    canvas.refresh()
    state["pick"] = pick
    dock.canvas.draw()
    later(1500, step_result_screenshots)


def step_result_screenshots():
    dock = plot_dock_widgets()[0]
    hover_over_plot(dock)
    log("dock_pick", result_png=grab_widget(iface().mainWindow(), "result.png"),
        plot_png=grab_widget(dock, "plot.png"), **state["pick"])
    dock.pick_button.click()                              # the map tool off
    later(200, step_action)


def hover_over_plot(dock):
    from qgis.PyQt.QtTest import QTest

    QTest.mouseMove(dock.canvas, _axes_point(dock, 0.55, 0.5))
    QApplication.processEvents()
    dock.canvas.draw()
    QApplication.processEvents()


def step_action():
    """The plugin's own "Unmix with DFFN..." path: a QgsTask of its own."""
    from dffn_qgis.gui.unmix_task import start_unmix

    layer = state["layer"]
    extra = dict(TASK_EXTRA)
    task = start_unmix(layer, os.path.join(OUT, "action_outputs"), n_endmembers=2,
                       extra_parameters=extra)
    state["task"] = task
    state["t_task"] = time.time()
    log("task_started", description=task.description(), prepared=task.prepared, error=task.error)

    # QGIS deletes the C++ task when it is over: only its Python attributes are read
    poll(lambda: task.done, step_after_task, 600, "the background task")


def step_after_task():
    task = state["task"]
    later(500, lambda: _after_task(task))


def _after_task(task):
    data = write_tree("layer_tree_after_task.json")
    log("task_done", succeeded=task.succeeded, cancelled=task.cancelled, error=task.error,
        seconds=round(time.time() - state["t_task"], 1),
        loaded=[layer.name() for layer in task.loaded_layers], docks=data["plot_docks"],
        output_dir=task.output_dir)
    finish(0)


START = time.time()
save_report()
QTimer.singleShot(15 * 60 * 1000, lambda: (report["errors"].append("watchdog: 15 minutes"), finish(1)))
later(2000, step_start)
