"""Processing algorithm ``dffn:unmix``: DFFN hyperspectral unmixing of one raster.

``processAlgorithm`` runs the whole unmixing synchronously in whatever thread Processing gives it
(a worker thread from the Toolbox, the main thread in batch, modeler and qgis_process). It never
touches widgets or the project: layers to show are handed to the context and styled by the layer
post-processors of :mod:`.postprocess`, which run on the main thread once the run is over.
"""
import os
import re
import threading
import time
from dataclasses import fields

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingParameterBand,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProviderRegistry,
)
from qgis.PyQt.QtCore import QCoreApplication

from ..core import deps
from ..core.config import DEFAULT_PRESET, PRESETS, DFFNParams

PRESET_NAMES = ["fast", "paper"]
DEVICE_NAMES = ["auto", "cpu", "cuda"]
UNSET_OPTION = "preset value"

# QGIS 3.40 moved these enums into Qgis.*, keeping the old names as aliases; use whichever exists.
_FLAG_ADVANCED = getattr(QgsProcessingParameterDefinition, "FlagAdvanced", None)
if _FLAG_ADVANCED is None:  # pragma: no cover - QGIS 4
    from qgis.core import Qgis
    _FLAG_ADVANCED = Qgis.ProcessingParameterFlag.Advanced
_INTEGER = getattr(QgsProcessingParameterNumber, "Integer", None)
_DOUBLE = getattr(QgsProcessingParameterNumber, "Double", None)
if _INTEGER is None:  # pragma: no cover - QGIS 4
    from qgis.core import Qgis
    _INTEGER = Qgis.ProcessingNumberParameterType.Integer
    _DOUBLE = Qgis.ProcessingNumberParameterType.Double
_FILE_FILTER_CSV = "CSV files (*.csv)"
_FILE_FILTER_HTML = "HTML files (*.html *.htm)"

# Advanced parameters: (parameter name, DFFNParams field, type, minimum, maximum, plain-words help).
# Each is optional with no default: left unset, the preset's value is used.
ADVANCED = [
    ("EPOCHS", "epochs", _INTEGER, 1, None, "Epochs",
     "training epochs of the kept start"),
    ("LR", "lr", _DOUBLE, 1e-8, 10.0, "Learning rate",
     "learning rate of the Adam optimiser"),
    ("WEIGHT_DECAY", "weight_decay", _DOUBLE, 0.0, 1.0, "Weight decay",
     "L2 weight decay of the optimiser"),
    ("LR_STEP", "lr_step", _INTEGER, 1, None, "Learning rate step (epochs)",
     "the learning rate is multiplied by the step factor every this many epochs"),
    ("LR_GAMMA", "lr_gamma", _DOUBLE, 0.0, 1.0, "Learning rate step factor",
     "factor applied to the learning rate at each step"),
    ("EEM_LR", "eem_lr", _DOUBLE, 0.0, 10.0, "Endmember module learning rate",
     "learning rate of the endmember module (0: the same as the learning rate)"),
    ("STARTS", "starts", _INTEGER, 1, 100, "Starts",
     "number of short training starts tried; the one with the lowest loss is trained on"),
    ("START_EPOCHS", "start_epochs", _INTEGER, 0, None, "Epochs per start",
     "epochs each start gets before the pick (0: no pick)"),
    ("PATIENCE", "patience", _INTEGER, 0, None, "Patience (epochs)",
     "stop once the loss has not improved for this many epochs (0: never stop early)"),
    ("RESTARTS", "restarts", _INTEGER, 0, 100, "Restarts when stuck",
     "fresh starts allowed when training gets stuck (the patience rule fires in the first half of the "
     "epochs); the run with the lowest loss is kept"),
    ("MIN_DELTA", "min_delta", _DOUBLE, 0.0, 1.0, "Minimum relative improvement",
     "relative loss improvement that counts as one for the patience rule"),
    ("KERNEL", "kernel", _INTEGER, 1, 99, "Kernel size k",
     "convolution kernel size of the spatial branch (odd)"),
    ("PADDING", "padding", _INTEGER, 0, 99, "Padding",
     "convolution padding (left unset while a kernel size is given: k // 2, which keeps the image size)"),
    ("W", "w", _DOUBLE, 0.0, 1.0, "Fusion weight w",
     "weight between spectral (1) and spatial (0) similarity in the feature fusion module"),
    ("FFM_BLOCK", "ffm_block", _INTEGER, 1, None, "Fusion block size (pixels)",
     "pixels per block of the spatial similarity product (memory against speed)"),
    ("A", "a", _DOUBLE, 0.0, None, "Loss weight a",
     "weight of the reconstruction term of the loss (spectral angle between the input and its reconstruction)"),
    ("B", "b", _DOUBLE, 0.0, None, "Loss weight b",
     "weight of the abundance constraint term of the loss (abundances non-negative and summing to one)"),
    ("C", "c", _DOUBLE, 0.0, None, "Loss weight c",
     "weight of the term that keeps the network's two reconstructions consistent (spectral angle between them)"),
    ("THREADS", "threads", _INTEGER, 0, 1024, "CPU threads",
     "CPU threads torch may use (0: torch's default)"),
    ("SPECTRAL_PIXELS", "spectral_pixels", _INTEGER, 0, None, "Spectral kernel reference pixels",
     "band distances of the spectral similarity are scaled to this many pixels (9025, Samson's size, keeps "
     "the published behaviour at any image size; 0: raw sums, which turn the spectral term into the image "
     "itself on large images)"),
    ("EXACT_LIMIT", "exact_limit", _INTEGER, 0, None, "Exact method up to (pixels)",
     "with the automatic method, images up to this many pixels are unmixed exactly; larger ones take the "
     "scalable path"),
    ("LANDMARKS", "landmarks", _INTEGER, 16, 65536, "Fusion landmarks (scalable)",
     "landmark pixels of the approximate spatial similarity; doubled until the measured error is within "
     "the tolerance"),
    ("FFM_TOLERANCE", "ffm_tolerance", _DOUBLE, 0.0, 1.0, "Fusion error tolerance (scalable)",
     "relative error of the approximate spatial similarity term that is accepted"),
    ("TRAIN_WINDOWS", "train_windows", _INTEGER, 1, 4096, "Training windows (scalable)",
     "number of windows, spread over the image, the scalable path trains on"),
    ("WINDOW", "window", _INTEGER, 8, 4096, "Training window size (scalable)",
     "side of the training windows in pixels"),
    ("TILE", "tile", _INTEGER, 32, 16384, "Tile size (scalable)",
     "side of the tiles abundances are computed on (made smaller automatically when memory is short)"),
]


# Advanced choices: (parameter name, DFFNParams field, options, label, help). Option 0 is "preset value".
ADVANCED_CHOICES = [
    ("SCHEDULE", "schedule", ["step", "cosine"], "Learning rate schedule",
     "step: multiplied by the step factor every step (as published); cosine: down to zero at the last epoch"),
    ("PRECISION", "precision", ["float32", "bfloat16", "auto"], "Training precision",
     "float32, bfloat16 or auto (bfloat16 where the hardware has native support)"),
    ("ABUNDANCES", "abundances", ["network", "refined"], "Abundances",
     "network: the abundance module's output (as published); refined: each pixel's non-negative "
     "least-squares fit on the learned endmembers, the abundances that minimise the loss's reconstruction "
     "angle (sharper after a short training; on large images it also skips the fusion of every tile)"),
    ("METHOD", "method", ["auto", "exact", "scalable"], "Method",
     "exact: the published method on the whole image; scalable: approximate fusion, training on windows, "
     "abundances tile by tile, in bounded memory (for large images); auto: exact up to the limit below"),
]

_PARAM_FIELDS = {f.name for f in fields(DFFNParams)}


def _exposed(table):
    """The rows of ``table`` whose DFFNParams field exists in this version of the engine."""
    return [row for row in table if row[1] in _PARAM_FIELDS]


def _tr(text):
    return QCoreApplication.translate("DFFNUnmixAlgorithm", text)


def _is_unset(value):
    if value is None:
        return True
    if isinstance(value, str) and value.strip() == "":
        return True
    is_null = getattr(value, "isNull", None)  # a NULL QVariant
    if callable(is_null) and not hasattr(value, "valueAsString"):
        try:
            return bool(is_null())
        except TypeError:
            return False
    return False


def _safe_prefix(name):
    prefix = re.sub(r"[^\w.-]+", "_", name or "").strip("._")
    return prefix or "dffn"


def _stem(path):
    return os.path.splitext(path)[0]


class _ProgressBridge:
    """Core Monitor callbacks → QgsProcessingFeedback, thread-safe (feedback emits signals)."""

    def __init__(self, feedback):
        self.feedback = feedback
        self._last_key = None

    def progress(self, fraction, message=""):
        self.feedback.setProgress(100.0 * fraction)
        if message:
            # "epoch 12/400" and "epoch 13/400" are one stage: show it once, not every epoch.
            key = re.sub(r"[-+]?\d[\d.,eE+-]*", "#", message)
            if key != self._last_key:
                self._last_key = key
                self.feedback.setProgressText(message)

    def is_cancelled(self):
        return self.feedback.isCanceled()

    def info(self, message):
        self.feedback.pushInfo(message)


class DFFNUnmixAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    N_ENDMEMBERS = "N_ENDMEMBERS"
    BANDS = "BANDS"
    PRESET = "PRESET"
    DEVICE = "DEVICE"
    SEED = "SEED"
    OUTPUT = "OUTPUT"
    ABUNDANCE_FOLDER = "ABUNDANCE_FOLDER"
    OUTPUT_LAYERS = "OUTPUT_LAYERS"
    ENDMEMBERS = "ENDMEMBERS"
    PLOT = "PLOT"
    ERROR = "ERROR"

    def createInstance(self):
        return DFFNUnmixAlgorithm()

    def name(self):
        return "unmix"

    def displayName(self):
        return _tr("DFFN Unmix")

    def group(self):
        return _tr("Hyperspectral unmixing")

    def groupId(self):
        return "unmixing"

    def tags(self):
        return _tr("hyperspectral,unmixing,endmember,abundance,dffn,deep learning,spectral").split(",")

    def shortDescription(self):
        return _tr("Finds endmember spectra and per-pixel abundances of a hyperspectral raster with DFFN.")

    def icon(self):
        from .provider import icon_path
        from qgis.PyQt.QtGui import QIcon
        path = icon_path()
        return QIcon(path) if path else QgsProcessingAlgorithm.icon(self)

    def helpUrl(self):
        return "https://github.com/dffn-qgis/dffn_qgis/blob/main/docs/QGIS.md"

    def shortHelpString(self):
        fast, paper = PRESETS["fast"], PRESETS["paper"]
        lines = [
            _tr("Blind hyperspectral unmixing with DFFN, a deep feature fusion network: it finds "
                "the spectra of N pure materials (endmembers) in the image and, for every pixel, "
                "the fraction of each (abundances between 0 and 1 that sum to 1)."),
            "",
            _tr("Input raster: a hyperspectral image, one band per wavelength. Its nodata pixels stay "
                "nodata in every output. Wavelengths are read from the file's metadata when present."),
            _tr("Number of endmembers: how many materials to separate (at least 2)."),
            _tr("Bands: optional subset of bands to use (for example without water absorption bands); "
                "empty uses all bands."),
            _tr("Preset: 'fast' uses a learning-rate schedule that converges sooner, stops when the "
                "loss no longer improves ({} epochs at most) and refines the abundances (each pixel's "
                "best non-negative fit on the learned endmembers); 'paper' is the published setting "
                "({} epochs, the network's own abundances).").format(fast.epochs, paper.epochs),
            _tr("Device: 'auto' uses a CUDA GPU when torch sees one, otherwise the CPU; 'cuda' fails "
                "if there is no GPU."),
            _tr("Random seed: the same seed on the same machine gives the same result."),
            "",
            _tr("Large images: up to {} pixels (200 x 200) the published method runs on the whole "
                "image. Larger images are read in windows and never held in memory: the spatial "
                "similarity is approximated (its measured error is in the log), the network trains "
                "on {} windows of {} x {} pixels spread over the image, and abundances are computed "
                "tile by tile with overlapping borders. The log shows the estimated peak memory "
                "before the run starts; a run that cannot fit stops with a clear message. Advanced "
                "parameter METHOD forces one way or the other.").format(
                fast.exact_limit, fast.train_windows, fast.window, fast.window),
            "",
            _tr("Advanced parameters, left unset, take the preset's value:"),
        ]
        for pname, field, *_rest, words in _exposed(ADVANCED) + _exposed(ADVANCED_CHOICES):
            lines.append("  {} ({}): {}; fast {}, paper {}.".format(
                pname, field, words, getattr(fast, field), getattr(paper, field)))
        lines += [
            "",
            _tr("Outputs:"),
            _tr("  Abundances (OUTPUT): one GeoTIFF with one band per endmember, same grid and CRS "
                "as the input; a run record (.json) is written beside it."),
            _tr("  Abundance folder (ABUNDANCE_FOLDER): one single-band GeoTIFF per endmember, "
                "listed in OUTPUT_LAYERS."),
            _tr("  Endmember spectra (ENDMEMBERS): CSV, one column per endmember; an ENVI spectral "
                "library (.sli/.hdr) of the same name is written beside it."),
            _tr("  Report (PLOT): HTML page with the endmember spectra plot (PNG and SVG beside it), "
                "shown in the Results Viewer."),
            _tr("  Reconstruction error (ERROR): per-pixel spectral angle in radians between the "
                "input and its reconstruction."),
            _tr("In QGIS, when the abundances are opened after running, they are added as one "
                "layer per endmember (0-1 colour ramp) in a group named after the input, and the "
                "endmember spectra are shown in the 'DFFN endmember spectra' panel."),
            "",
            _tr("Needs the Python packages torch and spectral in QGIS's Python; if they are missing "
                "the run stops and the log gives the command that installs them."),
        ]
        missing = deps.missing_dependencies()
        if missing:
            lines += ["", _tr("NOTE: missing now:") + " " + ", ".join(missing) + ".",
                      deps.install_hint(missing)]
        return "\n".join(lines)

    # ----------------------------------------------------------------------------- parameters
    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.INPUT, _tr("Input hyperspectral raster")))
        self.addParameter(QgsProcessingParameterNumber(
            self.N_ENDMEMBERS, _tr("Number of endmembers"), type=_INTEGER,
            defaultValue=DFFNParams.n_endmembers, minValue=2, maxValue=100))
        self.addParameter(QgsProcessingParameterBand(
            self.BANDS, _tr("Bands to use (empty: all)"), None, self.INPUT,
            optional=True, allowMultiple=True))
        self.addParameter(QgsProcessingParameterEnum(
            self.PRESET, _tr("Preset"), options=PRESET_NAMES,
            defaultValue=PRESET_NAMES.index(DEFAULT_PRESET)))
        self.addParameter(QgsProcessingParameterEnum(
            self.DEVICE, _tr("Device"), options=DEVICE_NAMES, defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            self.SEED, _tr("Random seed"), type=_INTEGER, defaultValue=DFFNParams.seed, minValue=0))

        for pname, _field, kind, lo, hi, label, words in _exposed(ADVANCED):
            kwargs = dict(type=kind, defaultValue=None, optional=True)
            if lo is not None:
                kwargs["minValue"] = lo
            if hi is not None:
                kwargs["maxValue"] = hi
            param = QgsProcessingParameterNumber(
                pname, "{} [{}]".format(_tr(label), _tr("unset: preset value")), **kwargs)
            self._advanced(param, _tr(words))
        for pname, _field, options, label, words in _exposed(ADVANCED_CHOICES):
            choice = QgsProcessingParameterEnum(
                pname, _tr(label), options=[_tr(UNSET_OPTION)] + options, defaultValue=0,
                optional=True)
            self._advanced(choice, _tr(words))

        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, _tr("Abundances (one band per endmember; opened as one layer per endmember)")))
        self.addParameter(QgsProcessingParameterFolderDestination(
            self.ABUNDANCE_FOLDER, _tr("Folder for the per-endmember abundance rasters")))
        self.addOutput(QgsProcessingOutputMultipleLayers(
            self.OUTPUT_LAYERS, _tr("Per-endmember abundance rasters")))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.ENDMEMBERS, _tr("Endmember spectra (CSV; ENVI .sli beside it)"), _FILE_FILTER_CSV))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.PLOT, _tr("Report with the endmember spectra plot (HTML)"), _FILE_FILTER_HTML))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.ERROR, _tr("Reconstruction error (spectral angle, radians)")))

    def _advanced(self, param, help_text):
        param.setFlags(param.flags() | _FLAG_ADVANCED)
        if hasattr(param, "setHelp"):
            param.setHelp(help_text)
        self.addParameter(param)

    # ----------------------------------------------------------------------------- checks
    def checkParameterValues(self, parameters, context):
        missing = deps.missing_dependencies()
        if missing:
            return False, deps.install_hint(missing)
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            # QGIS says "... not found" for any file it cannot load; the reader says why
            message = self._input_problem(parameters, context) or message
        return ok, message

    def _input_problem(self, parameters, context):
        """Why the INPUT path given as text cannot be read, or None."""
        value = parameters.get(self.INPUT)
        if not isinstance(value, str) or not value.strip():
            return None
        if self.parameterAsRasterLayer(parameters, self.INPUT, context) is not None:
            return None
        from ..core.errors import InputError
        from ..core.raster_io import open_raster
        try:
            ds = open_raster(value)
        except InputError as exc:
            return str(exc)
        ds = None  # noqa: F841  (closes the file)
        return None

    def params_from(self, parameters, context):
        """The run's :class:`DFFNParams`: the preset with every set parameter applied."""
        from ..core.config import params_for
        from ..core.errors import InputError

        preset = PRESET_NAMES[self.parameterAsEnum(parameters, self.PRESET, context)]
        overrides = {
            "n_endmembers": self.parameterAsInt(parameters, self.N_ENDMEMBERS, context),
            "seed": self.parameterAsInt(parameters, self.SEED, context),
            "device": DEVICE_NAMES[self.parameterAsEnum(parameters, self.DEVICE, context)],
        }
        for pname, field, kind, _lo, _hi, _label, _words in _exposed(ADVANCED):
            if _is_unset(parameters.get(pname)):
                continue
            if kind == _INTEGER:
                overrides[field] = self.parameterAsInt(parameters, pname, context)
            else:
                overrides[field] = self.parameterAsDouble(parameters, pname, context)
        for pname, field, options, _label, _words in _exposed(ADVANCED_CHOICES):
            if _is_unset(parameters.get(pname)):
                continue
            index = self.parameterAsEnum(parameters, pname, context)
            if index > 0:
                overrides[field] = options[index - 1]
        if "kernel" in overrides and "padding" not in overrides:
            overrides["padding"] = overrides["kernel"] // 2
        try:
            return preset, params_for(preset, **overrides)
        except InputError as exc:
            raise QgsProcessingException(str(exc))

    @staticmethod
    def input_path(layer):
        """The file behind a raster layer, or an explanation why the engine cannot read it."""
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                _tr("DFFN reads raster files through GDAL; layer '{}' comes from the '{}' provider. "
                    "Save it as a GeoTIFF first (Export > Save As...).").format(layer.name(), layer.providerType()))
        source = layer.source()
        try:
            path = QgsProviderRegistry.instance().decodeUri("gdal", source).get("path") or source
        except Exception:
            path = source
        return path

    # ----------------------------------------------------------------------------- run
    def processAlgorithm(self, parameters, context, feedback):
        problems = deps.check()
        if problems:
            raise QgsProcessingException(problems)

        import torch
        from ..core.errors import Cancelled, InputError
        from ..core.outputs import OutputPlan
        from ..core.pipeline import unmix_file
        from ..core.progress import Monitor

        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, self.INPUT))
        path = self.input_path(layer)
        bands = self.parameterAsInts(parameters, self.BANDS, context) or None
        preset, params = self.params_from(parameters, context)
        _check_band_count(layer, bands, params.n_endmembers)

        stack = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        error = self.parameterAsOutputLayer(parameters, self.ERROR, context)
        folder = self.parameterAsFileOutput(parameters, self.ABUNDANCE_FOLDER, context)
        csv_path = self.parameterAsFileOutput(parameters, self.ENDMEMBERS, context)
        html_path = self.parameterAsFileOutput(parameters, self.PLOT, context)
        folder_is_new = not os.path.isdir(folder)

        plan = OutputPlan(
            stack=stack,
            abundance_dir=folder,
            endmembers_csv=csv_path,
            endmembers_sli=_stem(csv_path) + ".sli",
            plot_png=_stem(html_path) + ".png",
            plot_svg=_stem(html_path) + ".svg",
            report_html=html_path,
            error=error,
            record_json=_stem(stack) + ".json",
            prefix=_safe_prefix(layer.name()),
        )

        feedback.pushInfo(_tr("DFFN: torch {}, requested device '{}', CUDA available: {}").format(
            torch.__version__, params.device, torch.cuda.is_available()))
        feedback.pushInfo(_tr("Input: {} ({} bands{}), preset '{}', {} endmembers").format(
            path, layer.bandCount(), ", bands used: " + ",".join(map(str, bands)) if bands else "",
            preset, params.n_endmembers))

        bridge = _ProgressBridge(feedback)
        monitor = Monitor(progress=bridge.progress, is_cancelled=bridge.is_cancelled, info=bridge.info)
        started = time.time()
        # The core writes every output under a temporary name and renames them all at the end,
        # so a cancelled or failed run leaves no half-written file behind.
        try:
            with _engine_turn(feedback), _global_state_kept():
                summary = unmix_file(path, plan, params, bands=bands, monitor=monitor)
        except Cancelled as exc:
            _remove_if_empty(folder, folder_is_new)
            raise QgsProcessingException(_tr("Cancelled: {}; no output was written.").format(exc))
        except InputError as exc:
            _remove_if_empty(folder, folder_is_new)
            raise QgsProcessingException(str(exc))
        except Exception as exc:
            _remove_if_empty(folder, folder_is_new)
            raise QgsProcessingException(_fault_message(exc, feedback))

        record = getattr(summary, "record", {}) or {}
        feedback.pushInfo(_tr("Done in {:.1f} s on device '{}' with torch {}").format(
            time.time() - started, record.get("device", params.device),
            record.get("torch_version", torch.__version__)))
        feedback.setProgress(100)

        paths = summary.paths
        abundances = list(paths.get("abundances") or [])
        names = list(getattr(summary, "endmember_names", []) or
                     ["endmember {}".format(i + 1) for i in range(len(abundances))])

        from .postprocess import register_layers_to_load
        register_layers_to_load(context, layer.name(), paths.get("stack", stack), abundances, names,
                                paths.get("error", error), paths.get("plot_png"))

        return {
            self.OUTPUT: paths.get("stack", stack),
            self.ABUNDANCE_FOLDER: folder,
            self.OUTPUT_LAYERS: abundances,
            self.ENDMEMBERS: paths.get("endmembers_csv", csv_path),
            self.PLOT: paths.get("report_html", html_path),
            self.ERROR: paths.get("error", error),
        }


def _check_band_count(layer, bands, endmembers):
    """Too many endmembers for the bands: refused before the image is read."""
    from ..core.errors import InputError
    from ..core.raster_io import validate_band_list

    count = layer.bandCount()
    if bands:
        try:
            count = len(validate_band_list(bands, count, layer.name()))
        except InputError as exc:
            raise QgsProcessingException(str(exc))
    if 0 < count < endmembers + 1:
        raise QgsProcessingException(_tr(
            "{} endmembers need at least {} bands; {} {}").format(
            endmembers, endmembers + 1, count,
            _tr("band(s) were chosen") if bands else _tr("band(s) in the image")))


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def _fault_message(exc, feedback):
    """One line for an exception the engine did not raise on purpose; the traceback goes to the
    Log Messages panel (DFFN tab), not in front of the user."""
    import traceback
    from qgis.core import Qgis, QgsMessageLog

    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    QgsMessageLog.logMessage(details, "DFFN", Qgis.Critical)
    if isinstance(exc, OSError):
        return _tr("{}; no output was written.").format(_one_line(exc))
    if isinstance(exc, FloatingPointError):
        return _tr("{}; try a lower learning rate or mask extreme values as nodata; no output was "
                   "written.").format(_one_line(exc))
    if isinstance(exc, MemoryError):
        return _tr("Not enough memory; choose fewer bands or a smaller image; no output was written.")
    return _tr("DFFN stopped on an unexpected error ({}: {}); no output was written. The details "
               "are in the Log Messages panel, DFFN tab.").format(type(exc).__name__, _one_line(exc))


# One DFFN run at a time in a QGIS process. The engine seeds torch's global random generator
# and builds its network from it, sets torch's CPU thread count, and the algorithm puts the random
# states back afterwards: two runs interleaving (two Toolbox dialogs, the "Unmix with DFFN..."
# task beside a dialog) changed each other's networks, hence their results
# (tests/qgis/test_concurrency.py). A second run waits here, still cancellable. Re-entrant: a run
# started on the main thread from inside another main-thread run's event processing (the Python
# console during a batch run) goes ahead instead of waiting for a run that cannot go on before it.
_ENGINE_LOCK = threading.RLock()
_WAIT_POLL_S = 0.05


class _engine_turn:
    """Holds :data:`_ENGINE_LOCK` for one run; waits for it while polling the feedback's cancel."""

    def __init__(self, feedback):
        self.feedback = feedback

    def __enter__(self):
        if _ENGINE_LOCK.acquire(blocking=False):
            return self
        from ..core.errors import Cancelled
        from qgis.PyQt.QtCore import QThread

        self.feedback.pushInfo(_tr("Another DFFN run is in progress in this QGIS; this one starts "
                                   "when it is over."))
        app = QCoreApplication.instance()
        on_main_thread = app is not None and QThread.currentThread() == app.thread()
        while not _ENGINE_LOCK.acquire(timeout=_WAIT_POLL_S):
            if self.feedback.isCanceled():
                raise Cancelled("cancelled while waiting for another DFFN run to finish")
            if on_main_thread:
                # batch dialog, modeler: keep QGIS (and its Cancel button) alive while waiting
                QCoreApplication.processEvents()
        return self

    def __exit__(self, *exc_info):
        _ENGINE_LOCK.release()
        return False


class _global_state_kept:
    """Random generator states of torch and numpy as they were before the run (QGIS's Python is
    shared with other plugins; the engine seeds them). Torch's thread count is restored by the
    engine itself."""

    def __enter__(self):
        import numpy as np
        import torch
        self._torch = torch.random.get_rng_state()
        self._numpy = np.random.get_state()
        self._threads = torch.get_num_threads()
        return self

    def __exit__(self, *exc_info):
        import numpy as np
        import torch
        torch.random.set_rng_state(self._torch)
        np.random.set_state(self._numpy)
        if torch.get_num_threads() != self._threads:
            torch.set_num_threads(self._threads)
        return False


def _remove_if_empty(folder, created_by_us):
    """A failed or cancelled run leaves no empty abundance folder of its own making behind."""
    if created_by_us:
        try:
            os.rmdir(folder)
        except OSError:
            pass
