"""Helpers of the end-to-end tests: the packaged plugin in a scratch QGIS profile."""
import os
import shutil
import subprocess
import sys
import sysconfig

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ARTIFACTS = os.path.join(REPO, "test-artifacts")
QGIS_PROCESS = "/usr/bin/qgis_process.bin"
QGIS = shutil.which("qgis") or "/usr/bin/qgis"
XVFB_RUN = shutil.which("xvfb-run")

sys.path.insert(0, os.path.join(REPO, "scripts"))
import install_plugin  # noqa: E402
import package  # noqa: E402


def venv_site_packages():
    """Where this test run's torch and spectral live: put on QGIS's PYTHONPATH."""
    return sysconfig.get_paths()["purelib"]


def build_zip(folder):
    return package.build(str(folder))


def scratch_env(home, with_venv=True, display=False):
    """Environment for a QGIS executable: scratch HOME, runtime dir, and the venv's packages."""
    home = str(home)
    runtime = os.path.join(home, "xdg-runtime")
    os.makedirs(runtime, mode=0o700, exist_ok=True)
    env = dict(os.environ)
    for key in ("QGIS_CUSTOM_CONFIG_PATH", "QGIS_OPTIONS_PATH", "PYTHONHOME", "QGIS_PLUGINPATH"):
        env.pop(key, None)
    env.update(HOME=home, XDG_RUNTIME_DIR=runtime, LC_ALL="C.UTF-8", LANG="C.UTF-8")
    if display:
        env.pop("QT_QPA_PLATFORM", None)
    else:
        env["QT_QPA_PLATFORM"] = "offscreen"
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    venv = venv_site_packages()
    paths = [p for p in paths if os.path.realpath(p) != os.path.realpath(venv)]
    if with_venv and sys.prefix != sys.base_prefix:
        paths.insert(0, venv)
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    else:
        env.pop("PYTHONPATH", None)
    return env


def run(cmd, env, timeout, cwd=None):
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
