"""What every DFFN Processing algorithm shares: group, icon, help link, the dependency check, the
progress bridge, failure messages, and the outputs of an unmixing (the abundances and the optional
files that go with them, named by one scheme)."""
import os
import re

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProviderRegistry,
)
from qgis.PyQt.QtCore import QCoreApplication

from ..core import deps

_INTEGER = getattr(QgsProcessingParameterNumber, "Integer", None)
_DOUBLE = getattr(QgsProcessingParameterNumber, "Double", None)
if _INTEGER is None:  # pragma: no cover - QGIS 4
    from qgis.core import Qgis
    _INTEGER = Qgis.ProcessingNumberParameterType.Integer
    _DOUBLE = Qgis.ProcessingNumberParameterType.Double


def _tr(text):
    return QCoreApplication.translate("DFFNAlgorithm", text)


def _safe_prefix(name):
    prefix = re.sub(r"[^\w.-]+", "_", name or "").strip("._")
    return prefix or "dffn"


def input_path(layer):
    """The file behind a raster layer, or an explanation why the engine cannot read it."""
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            _tr("DFFN reads raster files through GDAL; layer '{}' comes from the '{}' provider. "
                "Save it as a GeoTIFF first (Export > Save As...).").format(layer.name(), layer.providerType()))
    source = layer.source()
    try:
        path = QgsProviderRegistry.instance().decodeUri("gdal", source).get("path") or source
    except Exception:                            # a URI the registry cannot split: it is the path
        path = source
    return path


class _ProgressBridge:
    """Core Monitor callbacks → QgsProcessingFeedback, thread-safe (feedback emits signals)."""

    # The same stage's line ("epoch 12, loss ...") is shown again this often. The promise is a new
    # line at least every 2 s; StatusLine waits ``every`` seconds and then for the next epoch's
    # report, so ``every`` = 2 s gave gaps of 2 s and more (2.0-2.5 s in the desktop test under
    # Xvfb, tests/e2e/test_e2e_desktop.py). 1 s keeps them under 2 s for epochs of up to 1 s.
    STATUS_EVERY_S = 1.0

    def __init__(self, feedback):
        from ..core.run.progress import StatusLine

        self.feedback = feedback
        self.status = StatusLine(every=self.STATUS_EVERY_S)

    def progress(self, fraction, message=""):
        self.feedback.setProgress(100.0 * fraction)
        # a new stage at once; the current one ("epoch 12, loss ...") every STATUS_EVERY_S, with the time left
        text = self.status.update(fraction, message)
        if text:
            self.feedback.setProgressText(text)

    def is_cancelled(self):
        return self.feedback.isCanceled()

    def info(self, message):
        self.feedback.pushInfo(message)

    def monitor(self):
        from ..core.run.progress import Monitor
        return Monitor(progress=self.progress, is_cancelled=self.is_cancelled, info=self.info)


def _failure_message(exc):
    """The one line of :func:`dffn_qgis.core.run.service.describe_failure`; a fault's traceback goes
    to the Log Messages panel (DFFN tab), not in front of the user."""
    from qgis.core import Qgis, QgsMessageLog
    from ..core.run.service import describe_failure, traceback_text

    failure = describe_failure(exc)
    if failure.kind != "fault" or isinstance(exc, MemoryError):
        return failure.message
    QgsMessageLog.logMessage(traceback_text(exc), "DFFN", Qgis.MessageLevel.Critical)
    return _tr("DFFN stopped on an unexpected error ({}); the details are in the Log Messages panel, "
               "DFFN tab.").format(failure.message)


def _remove_if_empty(folder):
    """A failed or cancelled run leaves no empty abundance folder of its own making behind."""
    try:
        os.rmdir(folder)
    except OSError:
        pass                                     # not empty: files of the user's were there


class DFFNAlgorithm(QgsProcessingAlgorithm):
    """Base of the provider's algorithms."""

    OUTPUT = "OUTPUT"
    ABUNDANCE_FOLDER = "ABUNDANCE_FOLDER"
    OUTPUT_LAYERS = "OUTPUT_LAYERS"
    ENDMEMBERS = "ENDMEMBERS"
    PLOT = "PLOT"
    ERROR = "ERROR"
    DOMINANT = "DOMINANT"

    def createInstance(self):
        return type(self)()

    def group(self):
        return _tr("Hyperspectral unmixing")

    def groupId(self):
        return "unmixing"

    def icon(self):
        from .provider import icon_path
        from qgis.PyQt.QtGui import QIcon
        path = icon_path()
        return QIcon(path) if path else QgsProcessingAlgorithm.icon(self)

    def helpUrl(self):
        return "https://github.com/dffn-qgis/dffn_qgis/blob/main/docs/QGIS.md"

    def require_dependencies(self):
        """Import the engine's dependencies before any engine code (in a thread of their own when
        this runs in a QGIS worker thread: ``deps.import_problems`` says why); a missing or broken
        one stops the run with the command that installs it."""
        problems = deps.check()
        if problems:
            raise QgsProcessingException(problems)

    def checkParameterValues(self, parameters, context):
        missing = deps.missing_dependencies()
        if missing:
            return False, deps.install_hint(missing)
        return super().checkParameterValues(parameters, context)

    # ----------------------------------------------------------------- the outputs of an unmixing
    def add_unmixing_outputs(self, stack_label, endmembers_label):
        """OUTPUT (required) and the optional outputs the dialog creates by default."""
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, stack_label))
        for param in (QgsProcessingParameterFolderDestination(
                          self.ABUNDANCE_FOLDER, _tr("Folder for the per-endmember abundance rasters"), optional=True),
                      QgsProcessingParameterFileDestination(
                          self.ENDMEMBERS, endmembers_label, "CSV files (*.csv)", optional=True),
                      QgsProcessingParameterFileDestination(
                          self.PLOT, _tr("Report with the endmember spectra plot (HTML)"), "HTML files (*.html *.htm)",
                          optional=True),
                      QgsProcessingParameterRasterDestination(
                          self.ERROR, _tr("Reconstruction error (spectral angle, radians)"), optional=True),
                      QgsProcessingParameterRasterDestination(
                          self.DOMINANT, _tr("Dominant endmember (the largest fraction per pixel, classes)"),
                          optional=True)):
            param.setCreateByDefault(True)
            self.addParameter(param)
        self.addOutput(QgsProcessingOutputMultipleLayers(self.OUTPUT_LAYERS, _tr("Per-endmember abundance rasters")))

    def output_plan(self, parameters, context, prefix):
        """The run's OutputPlan from the chosen destinations (one naming scheme), and the abundance folder."""
        from ..core.io.outputs import plan_from_destinations

        def destination(name, as_layer=False):
            """The chosen path of an output, or None when it is not wanted (optional, unticked)."""
            value = (self.parameterAsOutputLayer if as_layer else self.parameterAsFileOutput)(parameters, name, context)
            return value or None

        folder = destination(self.ABUNDANCE_FOLDER)
        plan = plan_from_destinations(
            destination(self.OUTPUT, as_layer=True), folder, destination(self.ENDMEMBERS), destination(self.PLOT),
            destination(self.ERROR, as_layer=True), prefix, destination(self.DOMINANT, as_layer=True))
        return plan, folder

    def run_service(self, call, folder):
        """``call()`` (a service function); a failure becomes one line, and a folder this run made is removed."""
        folder_is_new = folder is not None and not os.path.isdir(folder)
        try:
            return call()
        except Exception as exc:
            if folder_is_new:
                _remove_if_empty(folder)
            raise QgsProcessingException(_failure_message(exc))

    def unmixing_results(self, context, layer_name, summary, folder):
        """Hand the layers to load to the context and return the algorithm's results."""
        from .postprocess import register_layers_to_load

        written = summary.outputs
        register_layers_to_load(context, layer_name, written.stack, written.abundances,
                                summary.result.endmember_names, written.error, written.plot_png, written.dominant,
                                written.report_html)
        return {self.OUTPUT: written.stack, self.ABUNDANCE_FOLDER: folder, self.OUTPUT_LAYERS: written.abundances,
                self.ENDMEMBERS: written.endmembers_csv, self.PLOT: written.report_html, self.ERROR: written.error,
                self.DOMINANT: written.dominant}
