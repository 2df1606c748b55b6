"""Unmixing outside the Processing dialogs: the "Unmix with DFFN..." action and its QgsTask.

The task runs the very same ``dffn:unmix`` algorithm (so progress, cancel, outputs and the
layers it opens are the same), but in a QgsTask of its own that shows in QGIS's task bar, where
it can be cancelled. ``prepare`` runs in the constructor (main thread), ``runPrepared`` in the
task's thread, and the layers are loaded and post-processed in ``finished`` (main thread).
"""
import os
import re
import tempfile

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsMessageLog,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProject,
    QgsTask,
)

from ..processing_provider.postprocess import load_layers_on_completion

ALGORITHM_ID = "dffn:unmix"
LOG_TAG = "DFFN"

# Running tasks: QGIS's task manager does not keep Python task objects alive on its own.
_TASKS = set()

# Parameters the "Unmix with DFFN..." action adds to its runs (defaults: the fast preset).
ACTION_PARAMETERS = {}


def default_output_folder(layer):
    """``<input folder>/<input name>_dffn[_N]`` beside the input, or a temporary folder."""
    source = layer.source().split("|")[0]
    base_dir = os.path.dirname(source) if os.path.isfile(source) else ""
    stem = re.sub(r"[^\w.-]+", "_", layer.name()).strip("._") or "dffn"
    if base_dir and os.access(base_dir, os.W_OK):
        candidate, n = os.path.join(base_dir, stem + "_dffn"), 2
        while os.path.exists(candidate):
            candidate = os.path.join(base_dir, "{}_dffn_{}".format(stem, n))
            n += 1
        return candidate
    return tempfile.mkdtemp(prefix=stem + "_dffn_")


class _TaskFeedback(QgsProcessingFeedback):
    """Processing feedback whose messages also go to QGIS's log panel."""

    def pushInfo(self, info):
        super().pushInfo(info)
        QgsMessageLog.logMessage(info, LOG_TAG, Qgis.MessageLevel.Info)

    def reportError(self, error, fatalError=False):
        super().reportError(error, fatalError)
        QgsMessageLog.logMessage(error, LOG_TAG, Qgis.MessageLevel.Warning)


class UnmixTask(QgsTask):
    """One DFFN unmixing of a raster layer, in the background, loading its layers when done."""

    def __init__(self, layer, output_dir=None, n_endmembers=3, project=None, extra_parameters=None,
                 on_finished=None):
        super().__init__("DFFN unmixing of {}".format(layer.name()), QgsTask.Flag.CanCancel)
        self.layer_name = layer.name()
        self.project = project or QgsProject.instance()
        self.output_dir = output_dir or default_output_folder(layer)
        self.on_finished = on_finished
        # Python-side state: QGIS deletes the C++ task soon after it finishes.
        self.results = None
        self.error = None
        self.loaded_layers = []
        self.done = False
        self.succeeded = False
        self.cancelled = False
        self.last_progress = 0.0
        os.makedirs(self.output_dir, exist_ok=True)
        from ..core.io.outputs import plan_outputs
        prefix = re.sub(r"[^\w.-]+", "_", layer.name()).strip("._") or "dffn"
        plan = plan_outputs(self.output_dir, prefix)       # the command line's names
        self.parameters = {
            "INPUT": layer.id() if self.project.mapLayer(layer.id()) is not None else layer.source(),
            "N_ENDMEMBERS": int(n_endmembers),
            "OUTPUT": QgsProcessingOutputLayerDefinition(plan.stack, self.project),
            "ABUNDANCE_FOLDER": plan.abundance_dir,
            "ENDMEMBERS": plan.endmembers_csv,
            "PLOT": plan.report_html,
            "ERROR": QgsProcessingOutputLayerDefinition(plan.error, self.project),
            "DOMINANT": QgsProcessingOutputLayerDefinition(plan.dominant, self.project),
        }
        self.parameters.update(ACTION_PARAMETERS if extra_parameters is None else extra_parameters)

        self.feedback = _TaskFeedback()
        self.feedback.progressChanged.connect(self._progress)
        self.context = QgsProcessingContext()
        self.context.setProject(self.project)
        self.context.setFeedback(self.feedback)

        self.algorithm = QgsApplication.processingRegistry().createAlgorithmById(ALGORITHM_ID)
        if self.algorithm is None:
            from ..processing_provider.unmix_algorithm import DFFNUnmixAlgorithm
            self.algorithm = DFFNUnmixAlgorithm().create()
        self.prepared = False
        try:
            ok, message = self.algorithm.checkParameterValues(self.parameters, self.context)
            if not ok:
                raise QgsProcessingException(message)
            self.prepared = bool(self.algorithm.prepare(self.parameters, self.context, self.feedback))
            if not self.prepared:
                self.error = "the algorithm could not be prepared"
        except QgsProcessingException as exc:
            self.error = str(exc)

    def _progress(self, value):
        self.last_progress = float(value)
        self.setProgress(value)

    def run(self):
        if not self.prepared:
            return False
        try:
            self.results = self.algorithm.runPrepared(self.parameters, self.context, self.feedback)
        except QgsProcessingException as exc:
            self.error = str(exc)
            return False
        except Exception as exc:  # a bug: report it instead of losing it in the task thread
            self.error = "{}: {}".format(type(exc).__name__, exc)
            return False
        return not self.feedback.isCanceled()

    def cancel(self):
        self.feedback.cancel()
        super().cancel()

    def finished(self, result):
        try:
            if result and self.results is not None:
                try:
                    self.results.update(self.algorithm.postProcess(self.context, self.feedback))
                except Exception as exc:        # the outputs are written; say why layers may be missing
                    QgsMessageLog.logMessage("post-processing failed: {}: {}".format(
                        type(exc).__name__, exc), LOG_TAG, Qgis.MessageLevel.Warning)
                self.loaded_layers = load_layers_on_completion(self.context, self.feedback)
                self.succeeded = True
                _message("DFFN unmixing of {} finished: results in {}".format(
                    self.layer_name, self.output_dir), Qgis.MessageLevel.Success)
            elif self.isCanceled() or self.feedback.isCanceled():
                self.cancelled = True
                self.error = self.error or "cancelled"
                _message("DFFN unmixing of {} was cancelled; no output was written.".format(
                    self.layer_name), Qgis.MessageLevel.Warning)
            else:
                QgsMessageLog.logMessage(self.error or "failed", LOG_TAG, Qgis.MessageLevel.Critical)
                _message("DFFN unmixing of {} failed: {}".format(self.layer_name, self.error),
                         Qgis.MessageLevel.Critical)
            self.done = True
            if self.on_finished is not None:
                self.on_finished(self)
        finally:
            self.done = True
            _TASKS.discard(self)


def _message(text, level):
    QgsMessageLog.logMessage(text, LOG_TAG, level)
    try:
        from qgis.utils import iface
        if iface is not None:
            iface.messageBar().pushMessage("DFFN", text, level=level, duration=10)
    except Exception as exc:                    # no message bar (qgis_process, tests): the log has it
        QgsMessageLog.logMessage("message bar unavailable: {}".format(exc), LOG_TAG, Qgis.MessageLevel.Info)


def start_unmix(layer, output_dir=None, n_endmembers=3, project=None, extra_parameters=None,
                on_finished=None):
    """Start a background unmixing of ``layer``; returns the (referenced) task."""
    task = UnmixTask(layer, output_dir, n_endmembers, project, extra_parameters, on_finished)
    if task.error and not task.prepared:
        task.done = True
        _message("DFFN cannot unmix {}: {}".format(layer.name(), task.error), Qgis.MessageLevel.Critical)
        if on_finished is not None:
            on_finished(task)
        return task
    _TASKS.add(task)
    QgsApplication.taskManager().addTask(task)
    return task


def running_tasks():
    return list(_TASKS)


def cancel_all():
    for task in list(_TASKS):
        task.cancel()
