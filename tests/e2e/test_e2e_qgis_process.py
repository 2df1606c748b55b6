"""qgis_process, headless, with the packaged plugin: help, a run, and a run without torch."""
import json
import os
import re

import pytest

from e2e_helpers import QGIS_PROCESS, build_zip, install_plugin, run, scratch_env

pytestmark = [pytest.mark.qgis, pytest.mark.e2e,
              pytest.mark.skipif(not os.path.exists(QGIS_PROCESS),
                                 reason=QGIS_PROCESS + " is not installed")]


def _advanced_names():
    from dffn_qgis.core.run.parameters import advanced
    return [parameter.qgis_name for parameter in advanced()]


MAIN = ["INPUT", "N_ENDMEMBERS", "BANDS", "PRESET", "DEVICE", "SEED"]
DESTINATIONS = ["OUTPUT", "ABUNDANCE_FOLDER", "ENDMEMBERS", "PLOT", "ERROR"]

FAST_ARGS = ["N_ENDMEMBERS=3", "EPOCHS=3", "STARTS=1", "START_EPOCHS=0", "PATIENCE=0", "DEVICE=1",
             "PRECISION=1", "THREADS=1"]

# Makes "import torch" fail inside QGIS's Python, as on a machine without torch.
BLOCK_TORCH = '''
import importlib.abc, sys
class _BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'")
        return None
sys.meta_path.insert(0, _BlockTorch())
'''


@pytest.fixture(scope="module")
def qgis_home(tmp_path_factory):
    """A scratch HOME whose QGIS profile has the packaged plugin enabled (QGIS_PLUGINPATH)."""
    root = tmp_path_factory.mktemp("qgis_process")
    plugins = root / "plugins"
    install_plugin.install(str(plugins), build_zip(root / "dist"))
    home = root / "home"
    home.mkdir()
    env = scratch_env(home)
    env["QGIS_PLUGINPATH"] = str(plugins)
    proc = run([QGIS_PROCESS, "plugins", "enable", "dffn_qgis"], env, 120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"root": root, "env": env}


def test_help_documents_every_parameter(qgis_home):
    proc = run([QGIS_PROCESS, "help", "dffn:unmix"], qgis_home["env"], 120)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "DFFN Unmix (dffn:unmix)" in text
    arguments = text.split("Arguments")[1]
    advanced = _advanced_names()
    assert {"EPOCHS", "LR", "W", "KERNEL", "A", "B", "C", "STARTS", "PRECISION"} <= set(advanced)
    for name in MAIN + advanced + DESTINATIONS:
        assert re.search(r"^{}: ".format(name), arguments, re.M), name
    assert "OUTPUT_LAYERS" in text.split("Outputs")[-1]
    description = text.split("Arguments")[0]
    assert not re.search(r"</?(p|b|br|ul|li|h\d|i|code)\b", description), "raw HTML in the help"
    for name in advanced:  # every advanced parameter is explained in the description
        assert name in description, name


def _scene(folder):
    from dffn_qgis.core.eval.synthetic import make_scene, write_geotiff

    path = str(folder / "scene.tif")
    write_geotiff(make_scene(16, 16, 24, 3, seed=2), path)
    return path


def _outputs(folder):
    return {"OUTPUT": str(folder / "abundances.tif"), "ABUNDANCE_FOLDER": str(folder / "per_endmember"),
            "ENDMEMBERS": str(folder / "endmembers.csv"), "PLOT": str(folder / "report.html"),
            "ERROR": str(folder / "error.tif")}


def _run_args(scene, outputs):
    return ([QGIS_PROCESS, "--json", "run", "dffn:unmix", "--", "INPUT=" + scene] + FAST_ARGS +
            ["{}={}".format(k, v) for k, v in outputs.items()])


def test_run_writes_every_output(qgis_home, tmp_path):
    from osgeo import gdal

    scene = _scene(tmp_path)
    outputs = _outputs(tmp_path / "out")
    proc = run(_run_args(scene, outputs), qgis_home["env"], 300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    results = data["results"]
    for key, path in outputs.items():
        assert results[key] == path and os.path.exists(path), key
    assert len(results["OUTPUT_LAYERS"]) == 3 and all(os.path.exists(p) for p in results["OUTPUT_LAYERS"])
    assert os.path.exists(str(tmp_path / "out" / "report.png"))
    assert os.path.exists(str(tmp_path / "out" / "endmembers.sli"))
    log = "\n".join(data["log"]["info"])
    assert "torch 2." in log or "torch 1." in log
    assert "device 'cpu'" in log
    src, out = gdal.Open(scene), gdal.Open(results["OUTPUT"])
    assert out.RasterCount == 3 and out.GetGeoTransform() == src.GetGeoTransform()


def test_run_with_only_the_abundances(qgis_home, tmp_path):
    """qgis_process run dffn:unmix -- INPUT=... N_ENDMEMBERS=3 OUTPUT=... (no other destination)."""
    scene = _scene(tmp_path)
    out = tmp_path / "out"
    proc = run(_run_args(scene, {"OUTPUT": str(out / "ab.tif")}), qgis_home["env"], 300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.loads(proc.stdout)["results"]["OUTPUT"] == str(out / "ab.tif")
    assert sorted(os.listdir(out)) == ["ab.json", "ab.tif"]


def test_run_without_torch_says_what_to_install(qgis_home, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_TORCH)
    env = dict(qgis_home["env"])
    env["PYTHONPATH"] = os.pathsep.join([str(blocker)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    scene = _scene(tmp_path)
    outputs = _outputs(tmp_path / "out")
    # the plugin still loads: help works and lists the algorithm
    proc = run([QGIS_PROCESS, "help", "dffn:unmix"], env, 120)
    assert proc.returncode == 0 and "DFFN Unmix" in proc.stdout, proc.stderr
    assert "missing now: torch" in proc.stdout
    proc = run(_run_args(scene, outputs), env, 300)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "torch" in text and "-m pip install" in text and "download.pytorch.org/whl/cpu" in text
    assert "Traceback" not in text
    assert not os.path.exists(outputs["OUTPUT"])
