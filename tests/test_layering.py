"""Package layering: core/ imports no QGIS and no front end; processing_provider/ never imports gui/;
no import cycle between the core's rooms at import time."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dffn_qgis"


def _imports(path: Path):
    """(module, level) of every import in ``path``, function-level ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


def _absolute(path: Path, module: str, level: int) -> str:
    if level == 0:
        return module
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)[:-level]
    return ".".join(parts + ([module] if module else []))


def test_core_imports_neither_qgis_nor_a_front_end():
    for path in (PACKAGE / "core").rglob("*.py"):
        for module, level in _imports(path):
            name = _absolute(path, module, level)
            assert not name.startswith(("qgis", "dffn_qgis.processing_provider", "dffn_qgis.gui", "dffn_qgis.cli",
                                        "processing")), f"{path.name} imports {name}"


def test_the_processing_provider_never_imports_the_gui():
    for path in (PACKAGE / "processing_provider").rglob("*.py"):
        for module, level in _imports(path):
            assert not _absolute(path, module, level).startswith("dffn_qgis.gui"), path.name


def test_every_core_module_imports_alone_in_a_fresh_interpreter():
    import subprocess
    import sys

    modules = [".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
               for p in (PACKAGE / "core").rglob("*.py") if p.name != "__init__.py"]
    code = ("import importlib, sys\n"
            "for name in sys.argv[1:]:\n"
            "    for key in [k for k in sys.modules if k.startswith('dffn_qgis')]: del sys.modules[key]\n"
            "    importlib.import_module(name)\n")
    proc = subprocess.run([sys.executable, "-c", code, *modules], cwd=PACKAGE.parent, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
