"""Processing algorithm ``dffn:unmix``: DFFN hyperspectral unmixing of one raster.

``processAlgorithm`` runs the whole unmixing synchronously in whatever thread Processing gives it
(a worker thread from the Toolbox, the main thread in batch, modeler and qgis_process). It never
touches widgets or the project: layers to show are handed to the context and styled by the layer
post-processors of :mod:`.postprocess`, which run on the main thread once the run is over.
"""
import threading
import time

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication

from ..core import deps
from . import dialog_defaults
from .base import _DOUBLE, _INTEGER, DFFNAlgorithm, _ProgressBridge, _safe_prefix, _tr, input_path
from ..core.run.config import DEFAULT_PRESET, PRESETS
from ..core.run.parameters import BY_NAME, SCHEMA, advanced

PRESET_NAMES = sorted(PRESETS)
UNSET_OPTION = "preset value"

# QGIS 3.40 moved these enums into Qgis.*, keeping the old names as aliases; use whichever exists.
_FLAG_ADVANCED = getattr(QgsProcessingParameterDefinition, "FlagAdvanced", None)
if _FLAG_ADVANCED is None:  # pragma: no cover - QGIS 4
    from qgis.core import Qgis
    _FLAG_ADVANCED = Qgis.ProcessingParameterFlag.Advanced

def _preset_value(preset, name):
    """A preset's value for the help; the step schedule's settings say when the preset does not use them."""
    value = getattr(preset, name)
    if name in ("lr_step", "lr_gamma") and preset.schedule != "step":
        return "{} (unused: {} schedule)".format(value, preset.schedule)
    return value


def _number_type(parameter):
    return _INTEGER if parameter.kind is int else _DOUBLE


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


class DFFNUnmixAlgorithm(DFFNAlgorithm):
    INPUT = "INPUT"
    N_ENDMEMBERS = "N_ENDMEMBERS"
    BANDS = "BANDS"
    PRESET = "PRESET"
    DEVICE = "DEVICE"
    SEED = "SEED"
    LIBRARY = "LIBRARY"
    KEEP_BAD_BANDS = "KEEP_BAD_BANDS"

    def name(self):
        return "unmix"

    def displayName(self):
        return _tr("DFFN Unmix")

    def tags(self):
        return _tr("hyperspectral,unmixing,endmember,abundance,dffn,deep learning,spectral").split(",")

    def shortDescription(self):
        return _tr("Finds endmember spectra and per-pixel abundances of a hyperspectral raster with DFFN.")

    def shortHelpString(self):
        fast, paper = PRESETS["fast"], PRESETS["paper"]
        lines = [
            _tr("Blind hyperspectral unmixing with DFFN, the Dual-Feature Fusion Network: it finds "
                "the spectra of N pure materials (endmembers) in the image and, for every pixel, "
                "the fraction of each (abundances between 0 and 1 that sum to 1)."),
            "",
            _tr("Input raster: a hyperspectral image, one band per wavelength. Its nodata pixels stay "
                "nodata in every output. Wavelengths are read from the file's metadata when present."),
            _tr("Number of endmembers: how many materials to separate (at least 2); 0 estimates it from the "
                "image with HySime, as the Count endmembers tool does, and says so in the log."),
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
            _tr("Run time: measured on a 2-core CPU without bfloat16 units, the fast preset takes about 4 "
                "minutes on Samson (95 x 95 pixels, 156 bands; training costs about 0.4 s an epoch there, "
                "growing with pixels x bands, and stops early once the loss settles), and the scalable path "
                "about 5 minutes on 1000 x 1000 pixels x 224 bands; a CUDA GPU makes it several times faster. "
                "Training precision 'auto' or 'bfloat16' is 3.5 to 4.5 times faster on CPUs with AMX units, "
                "but less accurate on most test scenes. Not sure how many endmembers? Run Count endmembers first, or give 0."),
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
        for parameter in advanced():
            lines.append("  {} ({}): {}; {}; fast {}, paper {}.".format(
                parameter.qgis_name, _tr(parameter.label), _tr(parameter.help), parameter.range_text,
                _preset_value(fast, parameter.name), _preset_value(paper, parameter.name)))
        lines += [
            "",
            _tr("Outputs (only the abundances are required; the dialog creates the others too "
                "unless they are unticked):"),
            _tr("  Abundances (OUTPUT): one GeoTIFF with one band per endmember, same grid and CRS "
                "as the input; a run record (.json) of the same name is written beside it."),
            _tr("  Abundance folder (ABUNDANCE_FOLDER): one single-band GeoTIFF per endmember, "
                "listed in OUTPUT_LAYERS."),
            _tr("  Endmember spectra (ENDMEMBERS): CSV, one column per endmember; an ENVI spectral "
                "library (.sli/.hdr) of the same name is written beside it."),
            _tr("  Report (PLOT): one self-contained HTML page: the endmember spectra plot (PNG and SVG of "
                "the same name beside it), a thumbnail of every abundance map, the reconstruction error's "
                "statistics, the parameters and every file written; 'Open report' in the spectra panel "
                "opens it."),
            _tr("  KEEP_BAD_BANDS: without a band list, bands flagged bad (bbl), those in the atmospheric "
                "water-vapour windows and those far noisier than their neighbours are left out (the log lists "
                "them); tick to keep them."),
            _tr("  Names: with wavelengths in the image, each endmember is named after the nearest class of a "
                "spectral library (LIBRARY, or the bundled one built from earthlib: vegetation, soil, water, "
                "asphalt, roofs, dry vegetation, concrete, char, sand, wood) when the spectral angle is below "
                "0.15 rad; otherwise 'endmember i (unmatched, nearest: ...)'."),
            _tr("  Dominant endmember (DOMINANT): per pixel, the endmember with the largest fraction (1..N, 0 "
                "nodata), opened with one named colour per endmember; the report adds each endmember's mean "
                "fraction, the area where it dominates and how well it fits there."),
            _tr("  Reconstruction error (ERROR): per-pixel spectral angle in radians between the "
                "input and its reconstruction."),
            _tr("In QGIS, when the abundances are opened after running, they are added as one "
                "layer per endmember, named by the endmember, in a group named after the input, each "
                "drawn from white (0) to the endmember's colour in the plot (1), and the endmember "
                "spectra are shown in the 'DFFN endmember spectra' panel. The dialog then offers the "
                "same input and number of endmembers again."),
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
        raster = QgsProcessingParameterRasterLayer(self.INPUT, _tr("Input hyperspectral raster"))
        count = self._number(BY_NAME["n_endmembers"], defaultValue=PRESETS[DEFAULT_PRESET].n_endmembers)
        dialog_defaults.apply(raster, count)
        self.addParameter(raster)
        self.addParameter(count)
        self.addParameter(QgsProcessingParameterBand(
            self.BANDS, _tr("Bands to use (empty: all)"), None, self.INPUT,
            optional=True, allowMultiple=True))
        self.addParameter(QgsProcessingParameterEnum(
            self.PRESET, _tr("Preset"), options=PRESET_NAMES,
            defaultValue=PRESET_NAMES.index(DEFAULT_PRESET)))
        device = BY_NAME["device"]
        self.addParameter(QgsProcessingParameterEnum(
            device.qgis_name, _tr(device.label), options=list(device.choices),
            defaultValue=device.choices.index(PRESETS[DEFAULT_PRESET].device)))
        self.addParameter(self._number(BY_NAME["seed"], defaultValue=PRESETS[DEFAULT_PRESET].seed))

        library = QgsProcessingParameterFile(
            self.LIBRARY, _tr("Spectral library that names the endmembers (empty: the bundled one)"),
            fileFilter="Spectral libraries (*.sli *.hdr *.csv);;All files (*.*)", optional=True)
        self._advanced(library, _tr("ENVI .sli or a CSV with a wavelength column; names each endmember after the "
                                    "nearest class when the spectral angle is below the threshold"))
        keep = QgsProcessingParameterBoolean(
            self.KEEP_BAD_BANDS, _tr("Keep bad bands and water-vapour windows"), defaultValue=False, optional=True)
        self._advanced(keep, _tr("without a band list, bands the file flags bad (bbl), those in the atmospheric "
                                 "water-vapour windows (about 1340-1460, 1790-1960 nm, beyond 2450 nm) and those "
                                 "whose noise is over 4 times their neighbours' are left out; tick to keep them"))
        for parameter in advanced():
            if parameter.kind is str:
                param = QgsProcessingParameterEnum(
                    parameter.qgis_name, _tr(parameter.label),
                    options=[_tr(UNSET_OPTION)] + list(parameter.choices), defaultValue=0, optional=True)
            else:
                param = self._number(parameter, label="{} [{}]".format(_tr(parameter.label),
                                                                       _tr("unset: preset value")),
                                     defaultValue=None, optional=True)
            self._advanced(param, _tr(parameter.help))

        self.add_unmixing_outputs(_tr("Abundances (one band per endmember; opened as one layer per endmember)"),
                                  _tr("Endmember spectra (CSV; ENVI .sli beside it)"))

    @staticmethod
    def _number(parameter, label=None, **kwargs):
        """The QGIS number parameter of a schema entry, with the schema's bounds."""
        return QgsProcessingParameterNumber(
            parameter.qgis_name, label or _tr(parameter.label), type=_number_type(parameter),
            minValue=parameter.low, maxValue=parameter.high, **kwargs)

    def _advanced(self, param, help_text):
        param.setFlags(param.flags() | _FLAG_ADVANCED)
        if hasattr(param, "setHelp"):
            param.setHelp(help_text)
        self.addParameter(param)

    # ----------------------------------------------------------------------------- checks
    def checkParameterValues(self, parameters, context):
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            # QGIS says "... not found" for any file it cannot load; the reader says why
            message = self._input_problem(parameters, context) or message
            return ok, message
        problem = self._too_few_bands(parameters, context)
        return (False, problem) if problem else (True, message)

    def _too_few_bands(self, parameters, context):
        """Why the input has too few bands for the count (before the run starts), or None: the
        run service's own check and words, with a hint."""
        from ..core.errors import InputError
        from ..core.run.service import check_band_count

        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            return None
        count = self.parameterAsInt(parameters, self.N_ENDMEMBERS, context)
        chosen = self.parameterAsInts(parameters, self.BANDS, context)
        try:
            check_band_count(input_path(layer), chosen or None, dialog_defaults.bands_needed(count) - 1,
                             band_count=layer.bandCount())
        except InputError as exc:
            return _tr("'{}': {}. Choose the hyperspectral image (a DFFN run's abundance layers have one band "
                       "each).").format(layer.name(), exc)
        return None

    def _input_problem(self, parameters, context):
        """Why the INPUT path given as text cannot be read, or None."""
        value = parameters.get(self.INPUT)
        if not isinstance(value, str) or not value.strip():
            return None
        if self.parameterAsRasterLayer(parameters, self.INPUT, context) is not None:
            return None
        from ..core.errors import InputError
        from ..core.io.gdal_open import open_raster
        try:
            ds = open_raster(value)
        except InputError as exc:
            return str(exc)
        ds = None  # noqa: F841  (closes the file)
        return None

    def params_from(self, parameters, context):
        """The run's :class:`DFFNParams`: the preset with every set parameter applied."""
        from ..core.run.config import params_for
        from ..core.errors import InputError

        preset = PRESET_NAMES[self.parameterAsEnum(parameters, self.PRESET, context)]
        overrides = {}
        for parameter in SCHEMA:
            name = parameter.qgis_name
            if parameter.kind is str:
                options = list(parameter.choices)
                if parameter.advanced:
                    if _is_unset(parameters.get(name)):
                        continue
                    index = self.parameterAsEnum(parameters, name, context) - 1
                else:
                    index = self.parameterAsEnum(parameters, name, context)
                if index >= 0:
                    overrides[parameter.name] = options[index]
            elif parameter.advanced and _is_unset(parameters.get(name)):
                continue
            elif parameter.kind is int:
                overrides[parameter.name] = self.parameterAsInt(parameters, name, context)
            else:
                overrides[parameter.name] = self.parameterAsDouble(parameters, name, context)
        try:
            return preset, params_for(preset, **overrides)
        except InputError as exc:
            raise QgsProcessingException(str(exc))

    # ----------------------------------------------------------------------------- run
    def processAlgorithm(self, parameters, context, feedback):
        self.require_dependencies()

        import torch
        from ..core.run import service

        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, self.INPUT))
        path = input_path(layer)
        bands = self.parameterAsInts(parameters, self.BANDS, context) or None
        preset, params = self.params_from(parameters, context)
        dialog_defaults.remember(layer, self.parameterAsInt(parameters, self.N_ENDMEMBERS, context))

        plan, folder = self.output_plan(parameters, context, _safe_prefix(layer.name()))
        library = self.parameterAsFile(parameters, self.LIBRARY, context) or None
        keep_bad_bands = self.parameterAsBool(parameters, self.KEEP_BAD_BANDS, context)
        request = service.RunRequest.make(path, params, plan, bands, library, keep_bad_bands)

        feedback.pushInfo(_tr("DFFN: torch {}, requested device '{}', CUDA available: {}").format(
            torch.__version__, params.device, torch.cuda.is_available()))
        feedback.pushInfo(_tr("Input: {} ({} bands{}), preset '{}', {} endmembers").format(
            path, layer.bandCount(), ", bands used: " + ",".join(map(str, bands)) if bands else "",
            preset, params.n_endmembers))

        monitor = _ProgressBridge(feedback).monitor()
        started = time.time()
        # The core writes every output under a temporary name and renames them all at the end,
        # so a cancelled or failed run leaves no half-written file behind.
        def one_run_at_a_time():
            with _engine_turn(feedback):
                return service.run(request, monitor)

        summary = self.run_service(one_run_at_a_time, folder)

        feedback.pushInfo(_tr("Done in {:.1f} s on device '{}' with torch {}").format(
            time.time() - started, summary.record["device"], summary.record["versions"]["torch"]))
        feedback.setProgress(100)

        return self.unmixing_results(context, layer.name(), summary, folder)


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
