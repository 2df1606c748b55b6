"""The plugin ZIP (scripts/package.py) and its installation (scripts/install_plugin.py)."""
import configparser
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import pytest

pytestmark = pytest.mark.qgis

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import install_plugin  # noqa: E402
import package  # noqa: E402


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "package.py"),
                           "--output-dir", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    path = out / "dffn_qgis-0.1.0.zip"
    assert path.exists(), os.listdir(out)
    return str(path)


def test_zip_layout(plugin_zip):
    with zipfile.ZipFile(plugin_zip) as zf:
        names = zf.namelist()
        metadata = zf.read("dffn_qgis/metadata.txt").decode("utf-8")
        icon = zf.read("dffn_qgis/resources/icon.svg").decode("utf-8")
        assert zf.testzip() is None
    assert all(n.startswith("dffn_qgis/") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert not [n for n in names if os.path.basename(n).startswith(".")]
    for required in ("dffn_qgis/__init__.py", "dffn_qgis/plugin.py", "dffn_qgis/metadata.txt",
                     "dffn_qgis/LICENSE", "dffn_qgis/resources/icon.svg",
                     "dffn_qgis/processing_provider/provider.py",
                     "dffn_qgis/processing_provider/unmix_algorithm.py",
                     "dffn_qgis/gui/plot_dock.py", "dffn_qgis/core/run/pipeline.py",
                     "dffn_qgis/core/deps.py"):
        assert required in names, required
    assert metadata == open(os.path.join(REPO, "metadata.txt"), encoding="utf-8").read()
    assert "<svg" in icon
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(metadata)
    assert parser["general"]["icon"] == "resources/icon.svg"


def test_zip_is_reproducible(plugin_zip, tmp_path):
    again = package.build(str(tmp_path))
    assert open(again, "rb").read() == open(plugin_zip, "rb").read()


def test_install_into_a_profile_and_enable(plugin_zip, tmp_path):
    profile = tmp_path / "profiles" / "default"
    ini = profile / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[General]\nfoo=bar\n\n[PythonPlugins]\nother=true\ndffn_qgis=false\n\n[Other]\nx=1\n")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "install_plugin.py"),
                           "--profile-dir", str(profile), "--zip", plugin_zip],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    target = profile / "python" / "plugins" / "dffn_qgis"
    assert (target / "metadata.txt").exists() and (target / "plugin.py").exists()
    text = ini.read_text()
    assert "dffn_qgis=true" in text and "dffn_qgis=false" not in text
    assert "foo=bar" in text and "other=true" in text and "[Other]\nx=1" in text
    # a second install replaces the first cleanly
    (target / "stale.py").write_text("x = 1\n")
    install_plugin.install(str(profile / "python" / "plugins"), plugin_zip)
    assert not (target / "stale.py").exists()


def test_install_from_source_links_the_tree(tmp_path):
    plugins = tmp_path / "plugins"
    target = install_plugin.install(str(plugins), link=True)
    assert os.path.realpath(os.path.join(target, "plugin.py")) == os.path.join(REPO, "dffn_qgis", "plugin.py")
    assert os.path.exists(os.path.join(target, "metadata.txt"))
    assert os.path.exists(os.path.join(target, "resources", "icon.svg"))
    # removing it leaves the source tree alone
    install_plugin.install(str(plugins), link=True)
    assert os.path.exists(os.path.join(REPO, "dffn_qgis", "plugin.py"))


LOAD_SCRIPT = textwrap.dedent("""
    import json, os, sys
    plugins_dir = sys.argv[1]
    from qgis.core import QgsApplication
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append("/usr/share/qgis/python/plugins")
    sys.path.insert(0, plugins_dir)
    import qgis.utils
    from processing.core.Processing import Processing
    Processing.initialize()
    qgis.utils.plugin_paths = [plugins_dir]
    qgis.utils.updateAvailablePlugins()
    out = {"available": "dffn_qgis" in qgis.utils.available_plugins,
           "version": qgis.utils.pluginMetadata("dffn_qgis", "version"),
           "name": qgis.utils.pluginMetadata("dffn_qgis", "name"),
           "processing": qgis.utils.pluginMetadata("dffn_qgis", "hasProcessingProvider")}
    out["loaded"] = qgis.utils.loadPlugin("dffn_qgis")
    out["started"] = qgis.utils.startProcessingPlugin("dffn_qgis")
    import dffn_qgis
    out["module"] = dffn_qgis.__file__
    alg = QgsApplication.processingRegistry().algorithmById("dffn:unmix")
    out["algorithm"] = alg.displayName() if alg else None
    out["icon"] = not alg.icon().isNull() if alg else False
    print("RESULT" + json.dumps(out))
    app.exitQgis()
""")


def test_unpacked_zip_loads_in_a_fresh_profile(plugin_zip, tmp_path):
    """QGIS's own plugin machinery (qgis.utils) finds, loads and starts the unpacked plugin."""
    plugins = tmp_path / "profile" / "python" / "plugins"
    install_plugin.install(str(plugins), plugin_zip)
    script = tmp_path / "load.py"
    script.write_text(LOAD_SCRIPT)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, str(script), str(plugins)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=str(tmp_path))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert lines, proc.stdout + proc.stderr
    out = json.loads(lines[0][len("RESULT"):])
    assert out["available"] and out["loaded"] and out["started"], out
    assert out["version"] == "0.1.0" and out["processing"] == "yes"
    assert out["module"].startswith(str(plugins)), out["module"]
    assert out["algorithm"] == "DFFN Unmix" and out["icon"]


def test_the_zip_passes_the_plugin_repository_checks(plugin_zip):
    assert package.repository_problems(plugin_zip) == []


def test_the_repository_checks_catch_what_the_repository_refuses(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("my plugin/__init__.py", "")
        zf.writestr("my plugin/__pycache__/x.cpython-311.pyc", b"\0")
        zf.writestr("my plugin/metadata.txt", "[general]\nname=x\nversion=1\nauthor=a/b\n"
                                              "tracker=bugs\nicon=icon.png\n")
    problems = "\n".join(package.repository_problems(str(bad)))
    for expected in ("compiled file or cache folder", "top folder name", "no LICENSE",
                     "lacks: description, qgisMinimumVersion, email, about, repository",
                     "tracker is not a web address", "author contains a slash", "icon=icon.png"):
        assert expected in problems, problems
