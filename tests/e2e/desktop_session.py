"""Runs INSIDE the QGIS desktop (``qgis --code desktop_session.py``), driven by tests/e2e.

Everything is steered by environment variables set by the test:

DFFN_E2E_OUT     folder for report.json, layer_tree.json and the screenshots
DFFN_E2E_MODE    "run" (default): open the DFFN Unmix dialog, run it, check the result, run the
                 "Unmix with DFFN..." background task; "install_zip": install DFFN_E2E_ZIP
                 through QGIS's own "Install from ZIP" code, then check the plugin is active
DFFN_E2E_INPUT   the hyperspectral GeoTIFF to unmix (mode "run")
DFFN_E2E_PARAMS  JSON of extra algorithm parameters (epochs etc.)

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


def plot_docks():
    docks = []
    for dock in iface().mainWindow().findChildren(QgsDockWidget):
        if dock.objectName() == "DFFNEndmemberPlotDock":
            docks.append({"visible": dock.isVisible(), "title": dock.windowTitle(),
                          "has_image": dock.has_image(), "png": dock.png_path,
                          "label": dock.title_label.text()})
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


def step_install_zip():
    import pyplugin_installer
    zip_path = os.environ["DFFN_E2E_ZIP"]
    before = "dffn_qgis" in qgis.utils.active_plugins
    pyplugin_installer.instance().installFromZipFile(zip_path)
    registry = QgsApplication.processingRegistry()
    plugin_dir = os.path.join(qgis.utils.home_plugin_path, "dffn_qgis")
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
    state["t_run"] = time.time()
    dialog.runAlgorithm()
    expected = N_ENDMEMBERS

    def finished():
        group = find_group("DFFN demo")
        if group is None:
            return False
        return len(group.findLayers()) >= expected + 1 and not dialog_running(dialog)

    poll(finished, step_after_run, 600, "the dialog's run to load its layers")


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
    dialog.close()
    later(1500, step_screenshot_result)


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
    log("result", result_png=grab_widget(iface().mainWindow(), "result.png"),
        screen_png=grab_screen("screen_result.png"), docks=data["plot_docks"])
    later(200, step_action)


def step_action():
    """The plugin's own "Unmix with DFFN..." path: a QgsTask of its own."""
    from dffn_qgis.gui.unmix_task import start_unmix

    layer = state["layer"]
    extra = dict(EXTRA)
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
