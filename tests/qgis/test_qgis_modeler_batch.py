"""dffn:unmix in a graphical model (chained into GDAL's raster calculator) and in the real batch
dialog (two rasters, with and without loading the layers)."""
import inspect
import os
import time

import numpy as np
import pytest
from osgeo import gdal

import processing
from qgis.core import (
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from qgis_helpers import ENDMEMBERS, FAST, destinations

pytestmark = pytest.mark.qgis


def build_model():
    """Model: raster input -> dffn:unmix -> gdal:rastercalculator (A+B+C over the stack)."""
    model = QgsProcessingModelAlgorithm("DFFN sum check", "dffn tests")
    model.addModelParameter(QgsProcessingParameterRasterLayer("image", "Image"),
                            QgsProcessingModelParameter("image"))

    unmix = QgsProcessingModelChildAlgorithm("dffn:unmix")
    unmix.setChildId("unmix")
    unmix.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("image")])
    for name, value in FAST.items():
        unmix.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    # the stack is also an output of the model; the other outputs go to temporary files
    unmix_out = QgsProcessingModelOutput("abundances", "Abundances")
    unmix_out.setChildOutputName("OUTPUT")
    unmix_out.setChildId("unmix")
    unmix.setModelOutputs({"abundances": unmix_out})
    model.addChildAlgorithm(unmix)

    calc = QgsProcessingModelChildAlgorithm("gdal:rastercalculator")
    calc.setChildId("sum")
    stack = QgsProcessingModelChildParameterSource.fromChildOutput("unmix", "OUTPUT")
    for letter, band in (("A", 1), ("B", 2), ("C", 3)):
        calc.addParameterSources("INPUT_" + letter, [stack])
        calc.addParameterSources("BAND_" + letter, [QgsProcessingModelChildParameterSource.fromStaticValue(band)])
    calc.addParameterSources("FORMULA", [QgsProcessingModelChildParameterSource.fromStaticValue("A+B+C")])
    calc.addParameterSources("NO_DATA", [QgsProcessingModelChildParameterSource.fromStaticValue(-9999)])
    calc.addParameterSources("RTYPE", [QgsProcessingModelChildParameterSource.fromStaticValue(5)])  # Float32
    out = QgsProcessingModelOutput("sum", "Sum of abundances")
    out.setChildOutputName("OUTPUT")
    out.setChildId("sum")
    calc.setModelOutputs({"sum": out})
    model.addChildAlgorithm(calc)
    model.updateDestinationParameters()
    return model


def test_model_chains_the_abundance_stack_into_the_raster_calculator(dffn_provider, scene_tif, tmp_path):
    if QgsApplication.processingRegistry().algorithmById("gdal:rastercalculator") is None:
        pytest.skip("GDAL provider (gdal:rastercalculator) not available")
    model = build_model()
    ok, errors = model.validate() if hasattr(model, "validate") else (True, [])
    assert ok, errors
    assert any(isinstance(p, QgsProcessingParameterRasterDestination) for p in model.destinationParameterDefinitions())
    # found by description: QGIS 3.22 names them "<child>:<output>" ("sum:sum"), 3.40 after the
    # description ("sum_of_abundances")
    dest = {p.description(): p.name() for p in model.destinationParameterDefinitions()}
    sum_param = dest["Sum of abundances"]
    abundances_param = dest["Abundances"]
    params = {"image": scene_tif, sum_param: str(tmp_path / "sum.tif"),
              abundances_param: str(tmp_path / "abundances.tif")}
    context = QgsProcessingContext()
    feedback = QgsProcessingFeedback()
    results = processing.run(model, params, context=context, feedback=feedback)
    out = results[sum_param]
    assert out == str(tmp_path / "sum.tif") and os.path.exists(out)
    assert os.path.exists(results[abundances_param])

    src = gdal.Open(scene_tif)
    cube = src.ReadAsArray()
    invalid = np.all(cube == src.GetRasterBand(1).GetNoDataValue(), axis=0)
    total = gdal.Open(out).ReadAsArray()
    np.testing.assert_allclose(total[~invalid], 1.0, atol=1e-3)
    assert np.all(total[invalid] == -9999)
    assert gdal.Open(out).GetGeoTransform() == pytest.approx(src.GetGeoTransform())


def test_model_survives_a_save_and_reload(dffn_provider, tmp_path):
    """The .model3 file keeps the dffn:unmix child and its parameters."""
    model = build_model()
    path = str(tmp_path / "dffn.model3")
    assert model.toFile(path)
    again = QgsProcessingModelAlgorithm()
    assert again.fromFile(path)
    child = again.childAlgorithm("unmix")
    assert child.algorithmId() == "dffn:unmix"
    assert child.parameterSources()["EPOCHS"][0].staticValue() == FAST["EPOCHS"]


def _fill_batch_row(panel, row, values, outputs, context):
    for name, value in values.items():
        column = panel.parameter_to_column[name]
        panel.wrappers[row][column].setParameterValue(value, context)
    for name, value in outputs.items():
        column = panel.parameter_to_column[name]
        panel.tblParameters.cellWidget(row + 1, column).setValue(value)


def _wait_for_batch(timeout=180):
    """QGIS 3.22's batch dialog runs the rows on the main thread, inside ``runAlgorithm``; from
    QGIS 3.24 on, the dialog runs each row as a background task and returns at once, with a
    "Batch Processing" task in the task manager until the last row's results are handled."""
    manager = QgsApplication.taskManager()
    deadline = time.monotonic() + timeout
    QgsApplication.processEvents()
    while manager.countActiveTasks() and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.02)
    assert manager.countActiveTasks() == 0, "batch still running after {} s".format(timeout)
    QgsApplication.processEvents()


@pytest.mark.parametrize("load_layers", [False, True])
def test_batch_dialog_runs_two_rasters(dffn_provider, scene_tif, scene2_tif, tmp_path, clean_project,
                                       qgis_iface, monkeypatch, request, load_layers):
    """Processing's own batch dialog, filled as a user would (two rows), then run."""
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
    from processing.tools import dataobjects
    from qgis.gui import QgsBrowserGuiModel

    from dffn_qgis.gui import qgis_fixes

    browser = QgsBrowserGuiModel()
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: browser, raising=False)
    qgis_fixes.install()  # what the plugin's initGui does (QGIS 3.22's batch HTML-output bug)
    assert not qgis_fixes.needs_fix()
    request.addfinalizer(qgis_fixes.uninstall)
    alg = QgsApplication.processingRegistry().createAlgorithmById("dffn:unmix")
    dialog = BatchAlgorithmDialog(alg.create())
    panel = dialog.mainWidget()
    while panel.batchRowCount() < 2:
        panel.addRow()
    context = dataobjects.createContext()
    rows = []
    for row, (scene, stem) in enumerate(((scene_tif, "first"), (scene2_tif, "second"))):
        outputs = destinations(tmp_path, stem)
        values = dict(FAST, INPUT=scene)
        _fill_batch_row(panel, row, values, outputs, context)
        rows.append(outputs)
    panel.checkLoadLayersOnCompletion.setChecked(load_layers)
    for row in range(2):
        if "context" in inspect.signature(panel.parametersForRow).parameters:  # QGIS 3.40 wants one
            parameters, ok = panel.parametersForRow(row, context=context, warnOnInvalid=True)
        else:                                                                   # QGIS 3.22
            parameters, ok = panel.parametersForRow(row, warnOnInvalid=True)
        assert ok, "batch row {} rejected".format(row)
        assert parameters.get("EPOCHS") == FAST["EPOCHS"]
        assert parameters.get("LR") in (None, "")  # unset advanced parameters stay unset
    # Shown, as a user's dialog is when they click Run. From QGIS 3.24 on, a batch dialog that is
    # hidden when its last row finishes schedules its own deletion (deleteLater in algExecuted) before
    # loading that row's layers; pytest-qgis delivers deferred deletions whenever layers are added to
    # the project (legendLayersAdded), so a hidden dialog would be deleted, with its feedback and
    # context, in the middle of its own handleAlgorithmResults (what the desktop never does).
    dialog.show()
    dialog.runAlgorithm()  # rows run one after the other
    _wait_for_batch()
    from processing.core.ProcessingResults import resultsList
    names = [r.name for r in resultsList.getResults()]
    assert any(n.startswith("Report with the endmember spectra plot") and n.endswith("[1]") for n in names)

    for outputs in rows:
        assert os.path.exists(outputs["OUTPUT"]) and os.path.exists(outputs["ERROR"])
        assert os.path.exists(outputs["ENDMEMBERS"]) and os.path.exists(outputs["PLOT"])
        per = sorted(os.listdir(outputs["ABUNDANCE_FOLDER"]))
        assert len([n for n in per if n.endswith(".tif")]) == ENDMEMBERS, per
    first = gdal.Open(rows[0]["OUTPUT"]).ReadAsArray()
    second = gdal.Open(rows[1]["OUTPUT"]).ReadAsArray()
    assert not np.array_equal(first, second)  # two different inputs, two different results

    layers = list(clean_project.mapLayers().values())
    if load_layers:
        groups = sorted(g.name() for g in clean_project.layerTreeRoot().findGroups())
        assert groups == ["DFFN other", "DFFN scene"]
        assert len(layers) == 2 * (ENDMEMBERS + 1)
    else:
        assert layers == [] and clean_project.layerTreeRoot().children() == []
    from qgis.PyQt import sip
    if not sip.isdeleted(dialog):  # a hidden batch dialog of QGIS 3.24+ deletes itself once done
        dialog.close()
