"""Qt 6 / QGIS 4 readiness: the forms QGIS's own migration script (pyqt5_to_pyqt6) rewrites.

Under PyQt6 an enum member is reached only through its enum (``Qt.AlignmentFlag.AlignLeft``), Qt is
imported through ``qgis.PyQt`` and ``exec_()`` is gone. This scans the plugin's code: every
attribute of a Qt or QGIS class that is an enum member must be reached through its enum, which the
installed PyQt and PyQGIS tell (so the check knows every enum, not a hand-made list).
"""
import ast
import importlib
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "dffn_qgis"
WRAPPED = ("qgis.PyQt", "qgis.core", "qgis.gui")

pytestmark = pytest.mark.qgis


def _sources():
    return sorted(PACKAGE.rglob("*.py"))


def _imported_classes(tree):
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(WRAPPED):
            for alias in node.names:
                names[alias.asname or alias.name] = (node.module, alias.name)
    return names


def _is_enum_member(value) -> bool:
    return isinstance(value, int) and type(value) not in (int, bool)


def unscoped_enum_uses(path: Path):
    """``Class.Member`` where Member is an enum member of Class reached without its enum."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = _imported_classes(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in names:
            module, name = names[node.value.id]
            owner = getattr(importlib.import_module(module), name, None)
            if owner is None or (isinstance(owner, type) and issubclass(owner, int)):
                continue                                  # the name is an enum itself: scoped already
            value = getattr(owner, node.attr, None)
            if _is_enum_member(value):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value.id}.{node.attr} "
                             f"(use {node.value.id}.{type(value).__name__}.{node.attr})")
    return found


def test_enum_members_are_reached_through_their_enum():
    problems = [p for path in _sources() for p in unscoped_enum_uses(path)]
    assert not problems, "\n".join(problems)


def test_the_scan_finds_an_unscoped_member(tmp_path):
    sample = PACKAGE / "_qt6_scan_sample.py"
    sample.write_text("from qgis.PyQt.QtCore import Qt\nfrom qgis.core import Qgis\n"
                      "a = Qt.AlignLeft\nb = Qt.AlignmentFlag.AlignLeft\nc = Qgis.Critical\n", encoding="utf-8")
    try:
        found = unscoped_enum_uses(sample)
    finally:
        sample.unlink()
    assert len(found) == 2 and "Qt.AlignmentFlag.AlignLeft" in found[0] and "Qgis.MessageLevel.Critical" in found[1]


QT5_ONLY = [
    (re.compile(r"^\s*(from|import)\s+PyQt5\b", re.M), "import Qt through qgis.PyQt"),
    (re.compile(r"^\s*(from|import)\s+sip\b", re.M), "import sip through qgis.PyQt"),
    (re.compile(r"\.exec_\("), "exec_() is exec() under Qt 6"),
    (re.compile(r"\bQRegExp\b"), "QRegExp is gone in Qt 6 (QRegularExpression)"),
    (re.compile(r"\bQDesktopWidget\b"), "QDesktopWidget is gone in Qt 6 (QScreen)"),
    (re.compile(r"\bQtWebKit\w*\b"), "QtWebKit is gone in Qt 6"),
]


def test_no_qt5_only_forms():
    problems = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        for pattern, why in QT5_ONLY:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {why}")
    assert not problems, "\n".join(problems)
