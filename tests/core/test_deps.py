"""dffn_qgis.core.deps: where the dependencies are first imported.

Run: .venv/bin/python -m pytest tests/core/test_deps.py -q
"""
import sys
import threading

from dffn_qgis.core import deps


def _module_recording_its_import_thread(tmp_path, monkeypatch, name):
    (tmp_path / (name + ".py")).write_text(
        "import threading\nIMPORTED_IN = threading.current_thread()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)


def test_imports_on_the_main_thread_stay_there(tmp_path, monkeypatch):
    _module_recording_its_import_thread(tmp_path, monkeypatch, "dffn_probe_main")
    assert deps.import_problems(["dffn_probe_main"]) == {}
    assert sys.modules["dffn_probe_main"].IMPORTED_IN is threading.main_thread()


def test_a_worker_thread_imports_in_a_short_lived_thread_of_its_own(tmp_path, monkeypatch):
    """A QGIS worker thread's Python state lives for one call: the first import of a module that
    remembers it (pybind11 in torch) must not happen there (deps.import_problems)."""
    _module_recording_its_import_thread(tmp_path, monkeypatch, "dffn_probe_worker")
    seen = {}

    def worker():
        seen["problems"] = deps.import_problems(["dffn_probe_worker", "dffn_no_such_module"])
        seen["caller"] = threading.current_thread()

    caller = threading.Thread(target=worker)
    caller.start()
    caller.join()
    importer = sys.modules["dffn_probe_worker"].IMPORTED_IN
    assert importer is not seen["caller"] and importer is not threading.main_thread()
    assert importer.name == "dffn-import" and not importer.is_alive()
    assert list(seen["problems"]) == ["dffn_no_such_module"]
    assert seen["problems"]["dffn_no_such_module"].startswith("ModuleNotFoundError")
