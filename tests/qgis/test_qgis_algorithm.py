"""dffn:unmix run through Processing inside QGIS: outputs, georeferencing, nodata, loading,
progress, cancel, errors, missing dependencies."""
import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from osgeo import gdal

import processing
from qgis.core import (
    QgsApplication,
    QgsLayerTreeGroup,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProject,
    QgsRasterLayer,
    QgsSingleBandPseudoColorRenderer,
)

from qgis_helpers import ENDMEMBERS, FAST, destinations, wait_for

pytestmark = pytest.mark.qgis

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class RecordingFeedback(QgsProcessingFeedback):
    def __init__(self, cancel_at=None):
        super().__init__()
        self.cancel_at = cancel_at
        self.progress = []
        self.infos = []
        self.progressChanged.connect(self._on_progress)

    def _on_progress(self, value):
        self.progress.append(value)
        if self.cancel_at is not None and value >= self.cancel_at:
            self.cancel()

    def pushInfo(self, info):
        self.infos.append(info)
        super().pushInfo(info)


def read(path):
    ds = gdal.Open(path)
    assert ds is not None, path
    data = ds.ReadAsArray()
    data = data[None] if data.ndim == 2 else data
    nodata = ds.GetRasterBand(1).GetNoDataValue()
    return ds, data, nodata


def params(scene, out, **extra):
    values = dict(FAST, INPUT=scene)
    values.update(destinations(out))
    values.update(extra)
    return values


@pytest.fixture(scope="module")
def finished_run(dffn_provider, scene_tif, tmp_path_factory):
    """One run with explicit outputs, shared by the tests that only look at the files."""
    out = tmp_path_factory.mktemp("run")
    feedback = RecordingFeedback()
    values = params(scene_tif, out)
    results = processing.run("dffn:unmix", values, feedback=feedback)
    return {"results": results, "params": values, "feedback": feedback, "out": str(out)}


def test_outputs_exist(finished_run):
    r, p = finished_run["results"], finished_run["params"]
    assert r["OUTPUT"] == p["OUTPUT"] and os.path.exists(r["OUTPUT"])
    assert r["ERROR"] == p["ERROR"] and os.path.exists(r["ERROR"])
    assert r["ABUNDANCE_FOLDER"] == p["ABUNDANCE_FOLDER"]
    layers = r["OUTPUT_LAYERS"]
    assert len(layers) == ENDMEMBERS
    assert all(os.path.dirname(f) == p["ABUNDANCE_FOLDER"] and os.path.exists(f) for f in layers)
    assert os.path.exists(r["ENDMEMBERS"])
    sli = os.path.splitext(r["ENDMEMBERS"])[0] + ".sli"
    assert os.path.exists(sli) and os.path.exists(os.path.splitext(sli)[0] + ".hdr")
    assert r["PLOT"] == p["PLOT"] and "<html" in open(r["PLOT"], encoding="utf-8").read().lower()
    stem = os.path.splitext(r["PLOT"])[0]
    assert os.path.getsize(stem + ".png") > 1000 and os.path.exists(stem + ".svg")
    record = json.load(open(os.path.splitext(r["OUTPUT"])[0] + ".json", encoding="utf-8"))
    assert record  # the run record goes next to the stack
    with open(r["ENDMEMBERS"], newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    record = json.load(open(os.path.splitext(r["OUTPUT"])[0] + ".json", encoding="utf-8"))
    assert len(rows[0]) == ENDMEMBERS + 1 and len(rows) - 1 == len(record["bands_used"])
    leftovers = [n for n in os.listdir(finished_run["out"]) if ".part" in n]
    assert not leftovers


def test_outputs_are_georeferenced_like_the_input(finished_run):
    src = gdal.Open(finished_run["params"]["INPUT"])
    r = finished_run["results"]
    for path in [r["OUTPUT"], r["ERROR"]] + r["OUTPUT_LAYERS"]:
        ds = gdal.Open(path)
        assert (ds.RasterXSize, ds.RasterYSize) == (src.RasterXSize, src.RasterYSize), path
        assert ds.GetGeoTransform() == pytest.approx(src.GetGeoTransform()), path
        assert ds.GetSpatialRef().IsSame(src.GetSpatialRef()), path
    assert gdal.Open(r["OUTPUT"]).RasterCount == ENDMEMBERS
    assert gdal.Open(r["ERROR"]).RasterCount == 1


def test_nodata_stays_nodata(finished_run):
    src, cube, src_nodata = read(finished_run["params"]["INPUT"])
    invalid = np.all(cube == src_nodata, axis=0)
    assert invalid.any() and not invalid.all()
    r = finished_run["results"]
    _, stack, nodata = read(r["OUTPUT"])
    assert nodata is not None
    stack_invalid = stack == nodata
    for band in stack_invalid:
        np.testing.assert_array_equal(band, invalid)
    valid_values = stack[:, ~invalid]
    assert np.all(valid_values >= -1e-5) and np.all(valid_values <= 1 + 1e-5)
    np.testing.assert_allclose(valid_values.sum(axis=0), 1.0, atol=1e-3)
    for i, path in enumerate(r["OUTPUT_LAYERS"]):
        _, single, single_nodata = read(path)
        np.testing.assert_array_equal(single[0] == single_nodata, invalid)
        np.testing.assert_allclose(single[0][~invalid], stack[i][~invalid])
    _, error, error_nodata = read(r["ERROR"])
    np.testing.assert_array_equal(error[0] == error_nodata, invalid)


def test_progress_and_log_name_torch_and_device(finished_run):
    feedback = finished_run["feedback"]
    assert len(feedback.progress) > 5 and max(feedback.progress) == pytest.approx(100)
    text = "\n".join(feedback.infos)
    import torch
    assert "torch {}".format(torch.__version__) in text
    assert "device 'cpu'" in text


def test_run_loads_nothing_without_a_destination_project(dffn_provider, scene_tif, tmp_path,
                                                        clean_project):
    """processing.run and qgis_process: files only, the project stays empty."""
    processing.run("dffn:unmix", params(scene_tif, tmp_path))
    assert clean_project.mapLayers() == {}
    assert clean_project.layerTreeRoot().children() == []


def test_temporary_outputs(dffn_provider, scene_tif):
    values = dict(FAST, INPUT=scene_tif)
    for name in ("OUTPUT", "ABUNDANCE_FOLDER", "ENDMEMBERS", "PLOT", "ERROR"):
        values[name] = "TEMPORARY_OUTPUT"
    results = processing.run("dffn:unmix", values)
    assert results["OUTPUT"].endswith(".tif") and os.path.exists(results["OUTPUT"])
    assert results["ENDMEMBERS"].endswith(".csv") and os.path.exists(results["ENDMEMBERS"])
    assert results["PLOT"].endswith(".html") and os.path.exists(results["PLOT"])
    assert os.path.isdir(results["ABUNDANCE_FOLDER"])
    assert len(results["OUTPUT_LAYERS"]) == ENDMEMBERS


def test_band_subset(dffn_provider, scene_tif, tmp_path):
    results = processing.run("dffn:unmix", params(scene_tif, tmp_path, BANDS=list(range(3, 15))))
    with open(results["ENDMEMBERS"], newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert len(rows) - 1 == 12


def _band_description(path):
    ds = gdal.Open(path)                 # held while its band is read
    return ds.GetRasterBand(1).GetDescription()


def _check_loaded_group(project, input_name="scene", endmembers=ENDMEMBERS, with_error=True):
    groups = [c for c in project.layerTreeRoot().children() if isinstance(c, QgsLayerTreeGroup)]
    assert len(groups) == 1, [g.name() for g in groups]
    group = groups[0]
    assert group.name() == "DFFN {}".format(input_name)
    layers = [node.layer() for node in group.findLayers()]
    abundance = [lay for lay in layers if lay.customProperty("dffn/role") == "abundance"]
    names = [lay.name() for lay in abundance]       # the endmember's name, inside the input's group
    assert len(set(names)) == endmembers and not any(input_name in n for n in names)
    assert names == [_band_description(lay.source()) for lay in abundance]
    from dffn_qgis.core.report.plotting import distinct_colours, hex_colour
    for lay, colour in zip(abundance, distinct_colours(endmembers)):   # the plot's colours
        last = lay.renderer().shader().rasterShaderFunction().colorRampItemList()[-1]
        assert last.color.name() == hex_colour(colour)
    for lay in abundance:
        assert isinstance(lay, QgsRasterLayer) and lay.isValid() and lay.bandCount() == 1
        renderer = lay.renderer()
        assert isinstance(renderer, QgsSingleBandPseudoColorRenderer)
        assert (renderer.classificationMin(), renderer.classificationMax()) == (0.0, 1.0)
        items = renderer.shader().rasterShaderFunction().colorRampItemList()
        assert len(items) >= 2 and items[0].value == 0.0 and items[-1].value == 1.0
    errors = [lay for lay in layers if lay.customProperty("dffn/role") == "error"]
    assert len(errors) == (1 if with_error else 0)
    assert all(lay.name() == "reconstruction error" for lay in errors)
    # every loaded layer is in the group: no stray stack
    assert len(project.mapLayers()) == len(layers) + sum(
        1 for lay in project.mapLayers().values() if lay.source().endswith("scene.tif"))
    return group, abundance


def test_toolbox_dialog_loads_one_styled_layer_per_endmember_and_the_plot(
        dffn_provider, scene_tif, tmp_path, clean_project, qgis_iface, monkeypatch):
    """The real Processing dialog, run as from the Toolbox (QgsProcessingAlgRunnerTask in a
    worker thread, then Processing's own result handling on the main thread)."""
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from qgis.gui import QgsBrowserGuiModel

    browser = QgsBrowserGuiModel()
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: browser, raising=False)

    from dffn_qgis.gui import plot_dock

    alg = QgsApplication.processingRegistry().createAlgorithmById("dffn:unmix")
    dialog = AlgorithmDialog(alg, False, None)
    values = params(scene_tif, tmp_path)
    dialog.setParameters(values)
    finished = []
    if hasattr(dialog, "algorithmFinished"):
        dialog.algorithmFinished.connect(lambda ok, res: finished.append(ok))
    dialog.runAlgorithm()
    assert wait_for(lambda: finished or clean_project.layerTreeRoot().findGroups(), 180)
    assert wait_for(lambda: len(clean_project.mapLayers()) >= ENDMEMBERS + 1, 30)
    if finished:
        assert finished == [True]
    group, layers = _check_loaded_group(clean_project)
    assert [node.layer().source() for node in group.findLayers()][:ENDMEMBERS] == [
        lay.source() for lay in layers]
    dock = plot_dock.current_dock()
    # docked into the (never shown) test main window: visible as far as the dock is concerned
    assert dock is not None and dock.has_image() and not dock.isHidden()
    assert dock.png_path == os.path.splitext(values["PLOT"])[0] + ".png"
    assert dock.report_path == values["PLOT"] and dock.report_button.isEnabled()   # "Open report"
    assert "scene" in dock.title_label.text()
    from qgis.PyQt import sip
    if not sip.isdeleted(dialog):  # it closes itself unless "keep dialog open" is set
        dialog.close()


def test_open_output_unticked_loads_nothing(dffn_provider, scene_tif, tmp_path, clean_project):
    """As the batch dialog with "Load layers on completion" unticked: no destination project."""
    from processing.gui.Postprocessing import handleAlgorithmResults

    values = params(scene_tif, tmp_path)
    values["OUTPUT"] = QgsProcessingOutputLayerDefinition(values["OUTPUT"], None)
    values["ERROR"] = QgsProcessingOutputLayerDefinition(values["ERROR"], None)
    alg = QgsApplication.processingRegistry().createAlgorithmById("dffn:unmix")
    context = QgsProcessingContext()
    context.setProject(clean_project)
    feedback = QgsProcessingFeedback()
    results, ok = alg.run(values, context, feedback)
    assert ok and os.path.exists(results["OUTPUT"])
    # by keyword: QGIS 3.22 takes (alg, context, feedback, showResults, parameters), 3.40 dropped showResults
    handleAlgorithmResults(alg, context, feedback, parameters=values)
    assert clean_project.mapLayers() == {}


def test_run_and_load_results(dffn_provider, scene_tif, tmp_path, clean_project, qgis_iface):
    """processing.runAndLoadResults (the Python console's way) gives the same group."""
    processing.runAndLoadResults("dffn:unmix", params(scene_tif, tmp_path))
    QgsApplication.processEvents()
    _check_loaded_group(clean_project)


def test_cancel_raises_and_writes_nothing(dffn_provider, scene_tif, tmp_path):
    feedback = RecordingFeedback(cancel_at=15)
    values = params(scene_tif, tmp_path, EPOCHS=200)
    with pytest.raises(QgsProcessingException, match="[Cc]ancel"):
        processing.run("dffn:unmix", values, feedback=feedback)
    assert feedback.isCanceled()
    assert os.listdir(tmp_path) == []  # no file, no half-written file, no empty folder


def test_input_error_becomes_processing_exception(dffn_provider, scene_tif, tmp_path, monkeypatch):
    from dffn_qgis.core.run import pipeline
    from dffn_qgis.core.errors import InputError

    def bad(*args, **kwargs):
        raise InputError("the image has fewer valid pixels than endmembers")

    monkeypatch.setattr(pipeline, "unmix_file", bad)
    with pytest.raises(QgsProcessingException, match="fewer valid pixels than endmembers"):
        processing.run("dffn:unmix", params(scene_tif, tmp_path))


def test_real_input_error_from_the_engine(dffn_provider, tmp_path):
    """A raster whose pixels are all nodata: the engine's InputError reaches the user."""
    path = str(tmp_path / "empty.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 8, 8, 12, gdal.GDT_Float32)
    ds.SetGeoTransform((0, 1, 0, 8, 0, -1))
    for b in range(12):
        band = ds.GetRasterBand(b + 1)
        band.SetNoDataValue(-9999)
        band.Fill(-9999)
    ds = None
    with pytest.raises(QgsProcessingException) as info:
        processing.run("dffn:unmix", params(path, tmp_path / "out"))
    assert "Traceback" not in str(info.value) and str(info.value).strip()


def test_cuda_without_a_gpu_is_explained(dffn_provider, scene_tif, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(QgsProcessingException, match="cuda"):
        processing.run("dffn:unmix", params(scene_tif, tmp_path, DEVICE=2))
    assert os.listdir(tmp_path) == []


def test_missing_torch_is_explained(dffn_provider, scene_tif, tmp_path, monkeypatch):
    from dffn_qgis.core import deps

    monkeypatch.setattr(deps, "missing_dependencies", lambda modules=None: ["torch"])
    alg = QgsApplication.processingRegistry().createAlgorithmById("dffn:unmix")
    assert "torch" in alg.shortHelpString() and "pip install" in alg.shortHelpString()
    with pytest.raises(QgsProcessingException) as info:
        processing.run("dffn:unmix", params(scene_tif, tmp_path))
    message = str(info.value)
    assert "torch" in message and "-m pip install" in message and "restart QGIS" in message
    assert not os.path.exists(os.path.join(str(tmp_path), "run_abundances.tif"))


def test_broken_torch_import_is_explained(dffn_provider, scene_tif, tmp_path, monkeypatch):
    """torch is found but fails to import (e.g. a missing shared library)."""
    from dffn_qgis.core import deps

    monkeypatch.setattr(deps, "import_problems", lambda modules=None: {
        "torch": "OSError: libtorch_cpu.so: cannot open shared object file"})
    with pytest.raises(QgsProcessingException) as info:
        processing.run("dffn:unmix", params(scene_tif, tmp_path))
    assert "libtorch_cpu.so" in str(info.value) and "pip install" in str(info.value)


BLOCKED_TORCH_SCRIPT = textwrap.dedent("""
    import importlib.abc, json, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError("No module named 'torch'")
            return None
    sys.meta_path.insert(0, Block())
    sys.path.insert(0, sys.argv[1])
    from qgis.core import QgsApplication, QgsProcessingException
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append("/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing
    Processing.initialize()
    import dffn_qgis
    plugin = dffn_qgis.classFactory(None)
    plugin.initProcessing()
    out = {"torch_imported": "torch" in sys.modules}
    alg = QgsApplication.processingRegistry().createAlgorithmById("dffn:unmix")
    out["algorithm"] = alg is not None
    out["help"] = alg.shortHelpString()
    import processing
    try:
        processing.run("dffn:unmix", {"INPUT": sys.argv[2], "OUTPUT": "TEMPORARY_OUTPUT",
                       "ABUNDANCE_FOLDER": "TEMPORARY_OUTPUT", "ENDMEMBERS": "TEMPORARY_OUTPUT",
                       "PLOT": "TEMPORARY_OUTPUT", "ERROR": "TEMPORARY_OUTPUT"})
        out["error"] = None
    except QgsProcessingException as exc:
        out["error"] = str(exc)
    print("RESULT" + json.dumps(out))
    app.exitQgis()
""")


def test_plugin_loads_without_torch_and_says_how_to_install_it(scene_tif, tmp_path):
    script = tmp_path / "blocked.py"
    script.write_text(BLOCKED_TORCH_SCRIPT)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, str(script), REPO, scene_tif], capture_output=True,
                          text=True, timeout=120, env=env, cwd=str(tmp_path))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    out = json.loads(lines[0][len("RESULT"):])
    assert out["algorithm"] and not out["torch_imported"]
    assert "torch" in out["help"]
    assert out["error"] and "torch" in out["error"] and "-m pip install" in out["error"]


def test_only_the_abundances_are_required(dffn_provider, scene_tif, tmp_path):
    values = dict(FAST, INPUT=scene_tif, OUTPUT=str(tmp_path / "ab.tif"))
    results = processing.run("dffn:unmix", values)
    assert sorted(os.listdir(tmp_path)) == ["ab.json", "ab.tif"]
    assert results["OUTPUT_LAYERS"] == [] and not results["ERROR"] and not results["PLOT"]


def test_processing_and_the_command_line_write_the_same_files(dffn_provider, scene_tif, tmp_path):
    """One run service: the same input, parameters and seed give the same files, named alike."""
    from dffn_qgis.cli import main

    cli_dir, qgis_dir = tmp_path / "cli", tmp_path / "qgis"
    assert main(["unmix", scene_tif, "-p", str(ENDMEMBERS), "-o", str(cli_dir), "--prefix", "scene",
                 "--device", "cpu", "--seed", "1", "--epochs", "3", "--starts", "1", "--start-epochs", "0",
                 "--patience", "0", "--precision", "float32", "--threads", "1", "-q"]) == 0
    from dffn_qgis.core.io.outputs import plan_outputs
    plan = plan_outputs(qgis_dir, "scene")
    processing.run("dffn:unmix", dict(FAST, INPUT=scene_tif, OUTPUT=plan.stack, ABUNDANCE_FOLDER=plan.abundance_dir,
                                      ENDMEMBERS=plan.endmembers_csv, PLOT=plan.report_html, ERROR=plan.error,
                                      DOMINANT=plan.dominant))
    assert sorted(os.listdir(cli_dir)) == sorted(os.listdir(qgis_dir))
    for name in os.listdir(cli_dir):
        if name.endswith((".tif", ".csv", ".sli")):
            assert (cli_dir / name).read_bytes() == (qgis_dir / name).read_bytes(), name


def test_count_endmembers_algorithm_gives_numbers_and_a_report(dffn_provider, tmp_path):
    from qgis_helpers import write_scene

    tif = write_scene(tmp_path / "four.tif", seed=3, height=40, width=40, bands=60, endmembers=4)
    results = processing.run("dffn:countendmembers", {"INPUT": tif, "REPORT": str(tmp_path / "count.html")})
    assert results["RECOMMENDED"] == 4 and results["RMT"] == 4 and results["HYSIME"] == 4
    assert isinstance(results["HFC"], int) and os.path.exists(str(tmp_path / "count.png"))
    assert "<html" in open(results["REPORT"], encoding="utf-8").read().lower()


def test_zero_endmembers_means_estimated(dffn_provider, tmp_path):
    from qgis_helpers import write_scene

    tif = write_scene(tmp_path / "three.tif", seed=4, height=24, width=24, bands=40, endmembers=3)
    feedback = RecordingFeedback()
    values = dict(FAST, INPUT=tif, N_ENDMEMBERS=0, OUTPUT=str(tmp_path / "ab.tif"))
    processing.run("dffn:unmix", values, feedback=feedback)
    assert any("unmixing with 3 endmembers" in line for line in feedback.infos)
    assert gdal.Open(str(tmp_path / "ab.tif")).RasterCount == 3


def test_apply_endmembers_in_a_batch_gives_every_tile_the_same_order(dffn_provider, tmp_path):
    """Two rasters, one spectra file: the same endmembers, in the same order, named after the spectra."""
    from dffn_qgis.core.eval import synthetic

    names = []
    for seed in (5, 6):
        s = synthetic.make_scene(24, 24, 30, 3, seed=seed, snr_db=50)
        files = synthetic.write_geotiff(s, tmp_path / "tile{}.tif".format(seed))
        spectra = str(tmp_path / "tile5_truth_endmembers.csv")
        out = tmp_path / "out{}".format(seed)
        results = processing.run("dffn:applyendmembers", {"INPUT": files["image"], "SPECTRA": spectra,
                                                          "OUTPUT": str(out / "ab.tif")})
        ds = gdal.Open(results["OUTPUT"])
        names.append([ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount)])
        ds = None
        assert sorted(os.listdir(out)) == ["ab.json", "ab.tif"]
    assert names[0] == names[1] and len(names[0]) == 3


def test_apply_endmembers_refuses_spectra_it_cannot_match(dffn_provider, tmp_path, scene_tif):
    bad = tmp_path / "bad.csv"
    bad.write_text("band,a,b\n1,0.1,0.2\n2,0.2,0.3\n3,0.3,0.1\n")
    with pytest.raises(QgsProcessingException, match="the spectra have 3 bands and the image 2"):
        processing.run("dffn:applyendmembers", {"INPUT": scene_tif, "SPECTRA": str(bad),
                                                "OUTPUT": str(tmp_path / "o" / "ab.tif")})
    assert not (tmp_path / "o").exists()


def test_keep_bad_bands_keeps_the_water_vapour_windows(dffn_provider, scene_tif, tmp_path):
    import json as json_module

    used = []
    for keep in (False, True):
        out = tmp_path / str(keep)
        processing.run("dffn:unmix", dict(FAST, INPUT=scene_tif, OUTPUT=str(out / "ab.tif"), KEEP_BAD_BANDS=keep))
        used.append(json_module.load(open(str(out / "ab.json"), encoding="utf-8"))["bands_used"])
    assert len(used[0]) < len(used[1]) == gdal.Open(scene_tif).RasterCount
