"""Bad input and faults through dffn:unmix in QGIS: a QgsProcessingException with a clear message
(never a traceback), nothing written; awkward input runs with a note in the Processing log; a
failure in the Toolbox's worker thread reaches the log and leaves no poisoned state behind."""
import errno
import hashlib
import os
import sys

import numpy as np
import pytest
from osgeo import gdal

import processing
from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
)

from qgis_helpers import FAST, destinations, wait_for

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import reliability_cases as cases  # noqa: E402

pytestmark = pytest.mark.qgis

FAST_RUN = dict(FAST, EPOCHS=2)

# Where QGIS itself refuses the value before the algorithm runs, its own message is checked.
# A file QGIS cannot load as a raster gets the reader's explanation instead of QGIS's "not found".
QGIS_REFUSES = {
    "endmembers_1": "at least 2, or 0 to estimate it",       # 1 passes QGIS's bounds (0 means: estimate)
    "endmembers_negative": "N_ENDMEMBERS",
    "endmembers_absurd": "N_ENDMEMBERS",
    "path_does_not_exist": "no such file",
}
class LogFeedback(QgsProcessingFeedback):
    """Keeps what the algorithm writes to the Processing log."""

    def __init__(self):
        super().__init__()
        self.infos, self.errors = [], []

    def pushInfo(self, info):
        self.infos.append(info)
        super().pushInfo(info)

    def reportError(self, error, fatalError=False):
        self.errors.append(error)
        super().reportError(error, fatalError)


def values(path, out, **extra):
    v = dict(FAST_RUN, INPUT=path)
    v.update(destinations(out))
    v.update(extra)
    return v


def assert_clean_failure(exc_info, fragment, out):
    message = str(exc_info.value)
    assert message.strip() and "Traceback" not in message, message
    assert fragment in message, message
    assert cases.files_in(out) == [], cases.files_in(out)


@pytest.mark.parametrize("name", sorted(cases.BAD_INPUTS))
def test_bad_input(name, dffn_provider, tmp_path):
    build, endmembers, fragment = cases.BAD_INPUTS[name]
    path = build(tmp_path / "input.tif")
    out = tmp_path / "out"
    out.mkdir()
    fragment = QGIS_REFUSES.get(name) or fragment    # otherwise the command line's words
    with pytest.raises(QgsProcessingException) as info:
        processing.run("dffn:unmix", values(path, out, N_ENDMEMBERS=endmembers),
                       feedback=LogFeedback())
    assert_clean_failure(info, fragment, out)


@pytest.mark.parametrize("extra,fragment", [
    ({"BANDS": [1, 2, 3, 99]}, "band 99 does not exist"),
    ({"BANDS": [1, 2]}, "need at least 4 bands; 2 were chosen"),
    ({"PRESET": 7}, "PRESET"),
    ({"DEVICE": 9}, "DEVICE"),
    ({"KERNEL": 4}, "kernel size must be an odd number"),
    ({"LR": float("nan")}, "lr must be a finite number"),
])
def test_bad_parameter(extra, fragment, dffn_provider, tmp_path):
    path = cases.ok(tmp_path / "input.tif")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(QgsProcessingException) as info:
        processing.run("dffn:unmix", values(path, out, **extra), feedback=LogFeedback())
    assert_clean_failure(info, fragment, out)


def test_cuda_without_a_gpu_and_auto_on_the_cpu(dffn_provider, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    path = cases.ok(tmp_path / "input.tif")
    (tmp_path / "a").mkdir()
    with pytest.raises(QgsProcessingException) as info:
        processing.run("dffn:unmix", values(path, tmp_path / "a", DEVICE=2))
    assert_clean_failure(info, "torch sees no CUDA device", tmp_path / "a")
    feedback = LogFeedback()
    processing.run("dffn:unmix", values(path, tmp_path / "b", DEVICE=0), feedback=feedback)
    assert any("no CUDA device visible to torch, using the CPU" in i for i in feedback.infos)


@pytest.mark.parametrize("name", ["nan_and_inf_in_places", "negative_in_places", "moderate_outlier_1e5",
                                  "uint16", "int64", "float64"])
def test_awkward_input_runs_with_a_note(name, dffn_provider, tmp_path):
    build, note = cases.GOOD_INPUTS[name]
    path = build(tmp_path / "input.tif")
    feedback = LogFeedback()
    results = processing.run("dffn:unmix", values(path, tmp_path / "out"), feedback=feedback)
    data = gdal.Open(results["OUTPUT"]).ReadAsArray()
    values_ = data[data != -9999]
    assert values_.size and np.isfinite(values_).all()
    if note is not None:
        assert any(note in i for i in feedback.infos), feedback.infos


def test_disk_full_leaves_nothing(dffn_provider, tmp_path):
    path = cases.ok(tmp_path / "input.tif")
    target = tmp_path / "small"
    with cases.tmpfs(target, "40k") as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        with pytest.raises(QgsProcessingException) as info:
            processing.run("dffn:unmix", values(path, target), feedback=LogFeedback())
        assert_clean_failure(info, "No space left on device", target)


def test_existing_outputs_replaced_only_by_a_complete_result(dffn_provider, tmp_path, monkeypatch):
    from dffn_qgis.core.io import outputs

    path = cases.ok(tmp_path / "input.tif")
    out = tmp_path / "out"
    processing.run("dffn:unmix", values(path, out))
    before = {n: (out / n).read_bytes() for n in cases.files_in(out)}

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs, "write_endmember_csv", full)
    with pytest.raises(QgsProcessingException, match="No space left on device"):
        processing.run("dffn:unmix", values(path, out, SEED=9))
    assert {n: (out / n).read_bytes() for n in cases.files_in(out)} == before


def test_input_is_not_modified_nor_locked(dffn_provider, tmp_path):
    path = cases.ok(tmp_path / "input.tif")
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    mtime = os.stat(path).st_mtime_ns
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    processing.run("dffn:unmix", values(path, tmp_path / "out"), context=context)
    del context                                     # Processing's own copy of the layer goes
    QgsApplication.processEvents()
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == digest
    assert os.stat(path).st_mtime_ns == mtime
    open_now = [fd for fd in os.listdir("/proc/self/fd")
                if os.path.realpath(f"/proc/self/fd/{fd}") == os.path.realpath(path)]
    assert open_now == []
    os.rename(path, path + ".moved")                # nothing holds it: it can be moved away
    # QGIS itself (not the plugin) may leave a .aux.xml beside it with the histogram it computed
    # for its default renderer when Processing loaded the layer: as for any raster QGIS opens.


def _run_in_worker_thread(parameters):
    """Run dffn:unmix the way the Toolbox does: a QgsProcessingAlgRunnerTask on a worker thread."""
    alg = QgsApplication.processingRegistry().createAlgorithmById("dffn:unmix")
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    feedback = LogFeedback()
    task = QgsProcessingAlgRunnerTask(alg, parameters, context, feedback)
    outcome = {}
    task.executed.connect(lambda ok, results: outcome.update(ok=ok, results=results))
    QgsApplication.taskManager().addTask(task)
    assert wait_for(lambda: "ok" in outcome, 180), "the task did not finish"
    return outcome["ok"], feedback, context


def test_worker_thread_exception_reaches_the_log_and_the_next_run_works(dffn_provider, tmp_path,
                                                                       monkeypatch):
    import torch

    from dffn_qgis.core.run import driver, pipeline

    path = cases.ok(tmp_path / "input.tif")
    ok, _, _ = _run_in_worker_thread(values(path, tmp_path / "first"))
    assert ok
    torch.manual_seed(1234)
    rng_before = torch.random.get_rng_state()
    numpy_before = np.random.get_state()[1].copy()
    threads = torch.get_num_threads()

    def broken(*args, **kwargs):
        raise RuntimeError("worker blew up")

    monkeypatch.setattr(driver, "train_with_cpu_fallback", broken)
    ok, feedback, _ = _run_in_worker_thread(values(path, tmp_path / "broken"))
    assert not ok
    log = "\n".join(feedback.errors)
    assert "worker blew up" in log and "Traceback" not in log, log
    assert cases.files_in(tmp_path / "broken") == []
    monkeypatch.undo()

    # no poisoned state: random generators and thread count as they were
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    assert (np.random.get_state()[1] == numpy_before).all()
    assert torch.get_num_threads() == threads
    # the next run works and gives the same result as the first
    ok, _, _ = _run_in_worker_thread(values(path, tmp_path / "again"))
    assert ok
    first = gdal.Open(destinations(tmp_path / "first")["OUTPUT"]).ReadAsArray()
    again = gdal.Open(destinations(tmp_path / "again")["OUTPUT"]).ReadAsArray()
    np.testing.assert_array_equal(first, again)
    assert torch.equal(torch.random.get_rng_state(), rng_before)   # a good run leaves it too
