"""Work-arounds for QGIS bugs that break this plugin's algorithm in the desktop.

QGIS 3.22's batch dialog adds HTML outputs to the Results Viewer with
``resultsList.addResult(icon=..., name=..., result=...)`` although ``addResult`` requires a
``timestamp``: every batch run of an algorithm with an HTML output (dffn:unmix's PLOT) ends in
a TypeError after the last row, before the summary, and the dialog stays in its "running" state.
:func:`install` gives ``timestamp`` a default (now) on QGIS's results list, only where
``addResult`` still requires it; :func:`uninstall` puts the original back (plugin unload).
"""
import inspect
import time

_ORIGINAL = {}


def _results_list():
    try:
        from processing.core.ProcessingResults import resultsList
    except ImportError:
        return None
    return resultsList


def needs_fix(results_list=None):
    results_list = results_list or _results_list()
    if results_list is None:
        return False
    try:
        parameter = inspect.signature(results_list.addResult).parameters.get("timestamp")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.default is inspect.Parameter.empty


def install():
    """Patch QGIS's results list where needed; True if it was patched (now or before)."""
    results_list = _results_list()
    if results_list is None:
        return False
    if "addResult" in _ORIGINAL:
        return True
    if not needs_fix(results_list):
        return False
    original = results_list.addResult

    def addResult(icon, name, timestamp=None, result=None):  # noqa: N802 - QGIS's name
        return original(icon, name, timestamp if timestamp is not None else time.localtime(), result)

    _ORIGINAL["addResult"] = original
    results_list.addResult = addResult
    return True


def uninstall():
    results_list = _results_list()
    original = _ORIGINAL.pop("addResult", None)
    if results_list is not None and original is not None:
        try:
            del results_list.addResult  # the instance attribute; the class method shows again
        except AttributeError:
            pass
