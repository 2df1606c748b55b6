"""Which Python packages the engine needs, whether this interpreter has them, and how to get them.

The QGIS plugin must load (and QGIS must not crash) when torch is absent, so nothing here imports
torch at module level: :func:`missing_dependencies` only looks the modules up
(``importlib.util.find_spec``), and :func:`import_problems` imports them for real, which the
algorithm does right before a run. :func:`install_hint` prints the command that installs the
missing packages into the Python this process runs on (inside QGIS ``sys.executable`` is the
QGIS binary, not a Python interpreter).

Where the import happens matters: see :func:`import_problems`.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import shlex
import sys
import sysconfig
import threading
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional

# torch: a CPU build from PyTorch's own index (a few hundred MB); the default index gives a CUDA
# build of several GB on Linux.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


@dataclass(frozen=True)
class Dependency:
    module: str        # what ``import`` uses
    pip_name: str      # what pip installs; "" when pip is the wrong tool for it
    debian: str        # Debian package that provides it
    why: str


DEPENDENCIES = (
    Dependency("numpy", "numpy", "python3-numpy", "arrays"),
    Dependency("osgeo", "", "python3-gdal", "GDAL, to read and write rasters"),
    Dependency("torch", "torch", "python3-torch", "PyTorch, which trains the network"),
    Dependency("spectral", "spectral", "python3-spectral", "Spectral Python, for ENVI spectral libraries"),
)
_BY_MODULE = {d.module: d for d in DEPENDENCIES}


def missing_dependencies(modules: Optional[Iterable[str]] = None) -> List[str]:
    """Module names (of ``numpy``, ``osgeo``, ``torch``, ``spectral``) that cannot be found.

    Cheap: nothing is imported. A module that is found may still fail to import (a broken or
    mismatched build); :func:`import_problems` catches that.
    """
    names = list(modules) if modules is not None else [d.module for d in DEPENDENCIES]
    missing = []
    for name in names:
        if name in sys.modules and sys.modules[name] is not None:
            continue
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


# Compiled modules the engine imports later in the run (the plots), first imported with the
# dependencies for the reason given in import_problems; a failure here is not the user's concern.
PRELOAD = ("matplotlib.backends.backend_agg",)


def _import_each(names: Iterable[str]) -> Dict[str, str]:
    problems: Dict[str, str] = {}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # ImportError, OSError (missing shared library), ...
            problems[name] = f"{type(exc).__name__}: {exc}"
    return problems


def import_problems(modules: Optional[Iterable[str]] = None) -> Dict[str, str]:
    """Import each dependency for real; return ``{module: error message}`` for those that fail.

    A module not yet imported is imported in a short-lived Python thread of its own when this is
    called from any thread but Python's main one. QGIS runs algorithms and tasks in pooled Qt
    threads that Python knows only for the length of one call: each call gets a new Python thread
    state, deleted when it returns, and the next call on the same thread gets another. pybind11
    (in torch, and in matplotlib, which share Debian's pybind11) stores the Python thread state of
    the thread that first imports it as that thread's own, and uses it again whenever it frees a
    tensor whose Python object it keeps. Imported first in a pooled thread, torch kept a deleted
    thread state there, and the next run on that thread crashed QGIS 3.40 (Debian 13, torch 2.6,
    Python 3.13: a segfault or abort in ``PyEval_AcquireThread`` as a tensor was freed). A thread
    started by Python keeps one state until it ends, so nothing stale is left behind.
    """
    names = list(modules) if modules is not None else [d.module for d in DEPENDENCIES]
    if threading.current_thread() is threading.main_thread() or all(
            sys.modules.get(name) is not None for name in names):
        return _import_each(names)
    problems: Dict[str, str] = {}
    importer = threading.Thread(target=lambda: problems.update(_import_each(names)),
                                name="dffn-import", daemon=True)
    importer.start()
    importer.join()
    return problems


def python_executable() -> str:
    """The Python interpreter behind this process, also when it is embedded in QGIS.

    Inside QGIS (desktop or qgis_process) ``sys.executable`` is not to be trusted: it is the
    QGIS binary, or whatever ``python3`` comes first on PATH (maybe another Python entirely).
    Outside a virtual environment the interpreter installed under this Python's own prefix is
    the right one (``/usr/bin/python3`` for Debian's QGIS).
    """
    exe = sys.executable or ""
    looks_like_python = os.path.basename(exe).lower().startswith("python") and os.path.exists(exe)
    if in_virtualenv() and looks_like_python:
        return exe
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    prefixes = []
    for prefix in (sys.exec_prefix, sys.base_exec_prefix, sys.prefix, sys.base_prefix):
        if prefix and prefix not in prefixes:
            prefixes.append(prefix)
    for prefix in prefixes:
        if os.name == "nt":
            for name in ("python.exe", "python3.exe"):
                candidate = os.path.join(prefix, name)
                if os.path.exists(candidate):
                    return candidate
            continue
        exact = os.path.join(prefix, "bin", f"python{version}")
        if os.path.exists(exact):
            short = os.path.join(prefix, "bin", "python3")
            if os.path.exists(short) and os.path.realpath(short) == os.path.realpath(exact):
                return short
            return exact
    return exe if looks_like_python else "python3"


def in_virtualenv() -> bool:
    return sys.prefix != sys.base_prefix


def externally_managed() -> bool:
    """PEP 668: pip refuses to install into this Python unless told to (Debian 12 and later)."""
    if in_virtualenv():
        return False
    try:
        stdlib = sysconfig.get_paths()["stdlib"]
    except Exception:
        return False
    return os.path.exists(os.path.join(stdlib, "EXTERNALLY-MANAGED"))


def _numpy_pin() -> Optional[str]:
    """``numpy==<installed version>`` so pip keeps the numpy GDAL was built against."""
    try:
        spec = importlib.util.find_spec("numpy")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return None
    try:
        from importlib import metadata
        return f"numpy=={metadata.version('numpy')}"
    except Exception:
        try:
            import numpy
            return f"numpy=={numpy.__version__}"
        except Exception:
            return None


def _quote(arg: str) -> str:
    if os.name == "nt":
        return f'"{arg}"' if (" " in arg or "=" in arg) else arg
    return shlex.quote(arg)


def install_commands(missing: Iterable[str]) -> List[str]:
    """Shell commands that install ``missing`` (module names) for this interpreter, in order."""
    missing = list(dict.fromkeys(missing))
    commands: List[str] = []
    debian_like = os.path.exists("/etc/debian_version") and not in_virtualenv()

    system_only = [m for m in missing if m in ("numpy", "osgeo")]
    if system_only:
        if debian_like:
            pkgs = " ".join(_BY_MODULE[m].debian for m in system_only)
            commands.append(f"sudo apt install {pkgs}")
        else:
            if "osgeo" in system_only:
                commands.append("install GDAL's Python bindings with the installer QGIS came from "
                                "(OSGeo4W: gdal-python; conda: gdal)")
            if "numpy" in system_only:
                commands.append(f"{_quote(python_executable())} -m pip install numpy")

    pip_args = []
    if in_virtualenv():
        pass  # a venv takes plain installs; --user is refused inside one
    else:
        pip_args.append("--user")
        if externally_managed():
            # Debian refuses --user installs without this flag (PEP 668). It installs into
            # ~/.local/lib/pythonX.Y/site-packages only, which QGIS's Python reads.
            pip_args.append("--break-system-packages")
    base = f"{_quote(python_executable())} -m pip install " + " ".join(pip_args)
    base = base.rstrip() + " "
    pin = _numpy_pin()
    if "torch" in missing:
        commands.append(base + f"--index-url {TORCH_CPU_INDEX} torch")
    if "spectral" in missing:
        extra = f" {_quote(pin)}" if pin else ""
        commands.append(base + "spectral" + extra)
    return commands


def install_hint(missing: Iterable[str]) -> str:
    """A message naming what is missing and the exact command(s) that install it."""
    missing = list(dict.fromkeys(missing))
    if not missing:
        return ""
    lines = ["DFFN needs Python packages that QGIS's Python cannot import:"]
    for name in missing:
        dep = _BY_MODULE.get(name)
        lines.append(f"  - {name}" + (f" ({dep.why})" if dep else ""))
    lines.append(f"QGIS runs Python {sys.version_info[0]}.{sys.version_info[1]} "
                 f"({python_executable()}). Install them with:")
    for command in install_commands(missing):
        lines.append(f"  {command}")
    if "torch" in missing:
        lines.append("The torch command installs the CPU build; for an NVIDIA GPU leave out "
                     "'--index-url ...' (a CUDA build of several GB).")
    lines.append("Then restart QGIS.")
    return "\n".join(lines)


def check() -> Optional[str]:
    """``None`` when every dependency imports; otherwise the message to show the user."""
    missing = missing_dependencies()
    problems = import_problems([m for m in (d.module for d in DEPENDENCIES) if m not in missing])
    if not missing and not problems:
        import_problems(PRELOAD)
        return None
    message = install_hint(missing + list(problems)) if (missing or problems) else ""
    if problems:
        details = "\n".join(f"  {name}: {err}" for name, err in problems.items())
        message += "\nImport errors:\n" + details
    return message
