"""The plugin's "Unmix with DFFN..." action: its own QgsTask, progress, cancel, layers and plot."""
import os

import pytest

from qgis.core import QgsApplication, QgsLayerTreeGroup, QgsRasterLayer, QgsTask

from qgis_helpers import FAST, wait_for

pytestmark = pytest.mark.qgis

TASK_PARAMS = {k: v for k, v in FAST.items() if k != "N_ENDMEMBERS"}


@pytest.fixture
def plugin(qgis_iface, dffn_provider):
    import dffn_qgis
    from dffn_qgis.processing_provider.provider import DFFNProvider

    registry = QgsApplication.processingRegistry()
    registry.removeProvider(registry.providerById("dffn"))
    instance = dffn_qgis.classFactory(qgis_iface)
    instance.initGui()
    yield instance
    instance.unload()
    registry.addProvider(DFFNProvider())


def _wait_task(task, timeout=180):
    # QGIS deletes the C++ task once it is over: only its Python attributes are read afterwards.
    assert wait_for(lambda: task.done, timeout), "task did not finish"
    QgsApplication.processEvents()


def _groups(project):
    return [c for c in project.layerTreeRoot().children() if isinstance(c, QgsLayerTreeGroup)]


def test_action_unmixes_the_active_layer_in_its_own_task(plugin, qgis_iface, scene_tif, clean_project,
                                                         monkeypatch):
    from qgis.PyQt.QtWidgets import QInputDialog

    from dffn_qgis.gui import plot_dock, unmix_task

    layer = QgsRasterLayer(scene_tif, "scene")
    clean_project.addMapLayer(layer)
    monkeypatch.setattr(qgis_iface, "activeLayer", lambda: layer, raising=False)
    asked = []
    monkeypatch.setattr(QInputDialog, "getInt",
                        staticmethod(lambda *a, **k: asked.append(a) or (2, True)))
    monkeypatch.setattr(unmix_task, "ACTION_PARAMETERS", TASK_PARAMS)

    plugin.action.trigger()  # "Unmix with DFFN..." (layer context menu and Raster menu)
    assert asked, "the action asks for the number of endmembers"
    tasks = unmix_task.running_tasks()
    assert len(tasks) == 1
    task = tasks[0]
    assert isinstance(task, QgsTask) and task.description() == "DFFN unmixing of scene"
    assert task.flags() & QgsTask.CanCancel
    assert task in QgsApplication.taskManager().tasks()
    assert os.path.dirname(task.output_dir) == os.path.dirname(scene_tif)
    assert os.path.basename(task.output_dir).startswith("scene_dffn")
    _wait_task(task)
    assert task.error is None and task.succeeded
    assert task.last_progress == pytest.approx(100)

    groups = _groups(clean_project)
    assert [g.name() for g in groups] == ["DFFN scene"]
    names = [node.layer().name() for node in groups[0].findLayers()]
    assert len(names) == 4 and names[-2:] == ["dominant endmember", "reconstruction error"]
    assert not any(n.startswith("scene") for n in names) and len(set(names)) == 4      # endmembers: named
    assert len(task.loaded_layers) == 4
    dock = plot_dock.current_dock()
    assert dock is not None and dock.has_image() and dock.png_path.startswith(task.output_dir)
    written = sorted(os.listdir(task.output_dir))
    assert "scene_abundances.tif" in written and "scene_report.html" in written


def test_task_cancel_writes_and_loads_nothing(plugin, scene_tif, clean_project, tmp_path):
    from dffn_qgis.gui.unmix_task import start_unmix

    layer = QgsRasterLayer(scene_tif, "scene")
    clean_project.addMapLayer(layer)
    params = dict(TASK_PARAMS, EPOCHS=5000)
    out = tmp_path / "cancelled"
    task = start_unmix(layer, str(out), n_endmembers=2, extra_parameters=params)
    assert task.prepared
    assert wait_for(lambda: task.last_progress > 12, 120), "no progress before the cancel"
    task.cancel()
    _wait_task(task)
    assert task.cancelled and not task.succeeded
    assert "ancel" in task.error
    assert task.loaded_layers == [] and _groups(clean_project) == []
    assert [n for n in os.listdir(out) if not os.path.isdir(os.path.join(out, n))] == []


def test_task_with_missing_torch_fails_with_the_install_hint(plugin, scene_tif, clean_project, tmp_path,
                                                              monkeypatch):
    from dffn_qgis.core import deps
    from dffn_qgis.gui.unmix_task import running_tasks, start_unmix

    monkeypatch.setattr(deps, "missing_dependencies", lambda modules=None: ["torch"])
    layer = QgsRasterLayer(scene_tif, "scene")
    clean_project.addMapLayer(layer)
    finished = []
    task = start_unmix(layer, str(tmp_path / "x"), extra_parameters=TASK_PARAMS,
                       on_finished=finished.append)
    assert not task.prepared and task.done and task not in running_tasks()
    assert "torch" in task.error and "pip install" in task.error
    assert finished == [task]
