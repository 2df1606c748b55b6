"""Processing algorithm ``dffn:applyendmembers``: unmix a raster with given spectra."""
import os

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingParameterBand,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..core import deps
from ..core.run.apply import SOLVERS
from .unmix_algorithm import _ProgressBridge, _failure_message, _remove_if_empty, _safe_prefix, _tr, input_path


class DFFNApplyAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    SPECTRA = "SPECTRA"
    SOLVER = "SOLVER"
    BANDS = "BANDS"
    OUTPUT = "OUTPUT"
    ABUNDANCE_FOLDER = "ABUNDANCE_FOLDER"
    OUTPUT_LAYERS = "OUTPUT_LAYERS"
    ENDMEMBERS = "ENDMEMBERS"
    PLOT = "PLOT"
    ERROR = "ERROR"
    DOMINANT = "DOMINANT"

    def createInstance(self):
        return DFFNApplyAlgorithm()

    def name(self):
        return "applyendmembers"

    def displayName(self):
        return _tr("Apply endmembers")

    def group(self):
        return _tr("Hyperspectral unmixing")

    def groupId(self):
        return "unmixing"

    def tags(self):
        return _tr("hyperspectral,unmixing,endmember,abundance,fcls,nnls,spectral library").split(",")

    def shortDescription(self):
        return _tr("Unmixes a raster with given spectra (a DFFN run's endmembers or a spectral library).")

    def shortHelpString(self):
        return "\n".join([
            _tr("Unmixes a hyperspectral raster with spectra you give: the endmembers a DFFN Unmix run wrote "
                "(its CSV or .sli), or any spectral library. In a batch over many tiles, one spectra file "
                "gives every tile the same endmembers in the same order."),
            "",
            _tr("Spectra (SPECTRA): a CSV whose first column is 'wavelength' (nm or µm) or 'band', one column "
                "per spectrum (named by its header), or an ENVI spectral library (.sli with its .hdr). With "
                "wavelengths on both sides the spectra are resampled to the raster's bands when the grids "
                "differ; without, the band counts must be equal. One common factor brings them to the "
                "raster's brightness, so a library in reflectance works on a raster stored x 10000."),
            _tr("Solver (SOLVER): fcls, fractions that are non-negative and sum to one (default); nnls, "
                "non-negative and then scaled to sum to one; ls, unconstrained least squares (may be negative)."),
            _tr("Bands: optional subset (empty: all bands except those flagged bad)."),
            "",
            _tr("Outputs: as DFFN Unmix; only the abundances (OUTPUT) are required, with a run record "
                "(.json) of the same name beside them. Layers and files are named after the spectra."),
        ])

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, _tr("Input hyperspectral raster")))
        self.addParameter(QgsProcessingParameterFile(
            self.SPECTRA, _tr("Spectra (CSV or ENVI spectral library)"),
            fileFilter="Spectra (*.csv *.sli *.hdr);;All files (*.*)"))
        self.addParameter(QgsProcessingParameterEnum(
            self.SOLVER, _tr("Solver"), options=list(SOLVERS), defaultValue=0))
        self.addParameter(QgsProcessingParameterBand(
            self.BANDS, _tr("Bands to use (empty: all)"), None, self.INPUT, optional=True, allowMultiple=True))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, _tr("Abundances (one band per spectrum)")))
        for param in (QgsProcessingParameterFolderDestination(
                          self.ABUNDANCE_FOLDER, _tr("Folder for the per-endmember abundance rasters"), optional=True),
                      QgsProcessingParameterFileDestination(
                          self.ENDMEMBERS, _tr("Spectra as used (CSV; ENVI .sli beside it)"), "CSV files (*.csv)",
                          optional=True),
                      QgsProcessingParameterFileDestination(
                          self.PLOT, _tr("Report (HTML)"), "HTML files (*.html *.htm)", optional=True),
                      QgsProcessingParameterRasterDestination(
                          self.ERROR, _tr("Reconstruction error (spectral angle, radians)"), optional=True),
                      QgsProcessingParameterRasterDestination(
                          self.DOMINANT, _tr("Dominant endmember (classes)"), optional=True)):
            param.setCreateByDefault(True)
            self.addParameter(param)
        self.addOutput(QgsProcessingOutputMultipleLayers(self.OUTPUT_LAYERS, _tr("Per-endmember abundance rasters")))

    def checkParameterValues(self, parameters, context):
        missing = deps.missing_dependencies()
        if missing:
            return False, deps.install_hint(missing)
        return super().checkParameterValues(parameters, context)

    def processAlgorithm(self, parameters, context, feedback):
        from ..core.io.outputs import plan_from_destinations
        from ..core.run import service
        from ..core.run.progress import Monitor

        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, self.INPUT))
        spectra = self.parameterAsFile(parameters, self.SPECTRA, context)
        solver = SOLVERS[self.parameterAsEnum(parameters, self.SOLVER, context)]
        bands = self.parameterAsInts(parameters, self.BANDS, context) or None

        def destination(name, as_layer=False):
            value = (self.parameterAsOutputLayer if as_layer else self.parameterAsFileOutput)(parameters, name, context)
            return value or None

        folder = destination(self.ABUNDANCE_FOLDER)
        folder_is_new = folder is not None and not os.path.isdir(folder)
        plan = plan_from_destinations(
            destination(self.OUTPUT, as_layer=True), folder, destination(self.ENDMEMBERS), destination(self.PLOT),
            destination(self.ERROR, as_layer=True), _safe_prefix(layer.name()), destination(self.DOMINANT, as_layer=True))
        bridge = _ProgressBridge(feedback)
        monitor = Monitor(progress=bridge.progress, is_cancelled=bridge.is_cancelled, info=bridge.info)
        try:
            summary = service.apply(input_path(layer), spectra, plan, solver, bands, monitor)
        except Exception as exc:
            if folder_is_new:
                _remove_if_empty(folder)
            raise QgsProcessingException(_failure_message(exc))
        written = summary.outputs
        from .postprocess import register_layers_to_load
        register_layers_to_load(context, layer.name(), written.stack, written.abundances,
                                summary.result.endmember_names, written.error, written.plot_png, written.dominant)
        return {self.OUTPUT: written.stack, self.ABUNDANCE_FOLDER: folder, self.OUTPUT_LAYERS: written.abundances,
                self.ENDMEMBERS: written.endmembers_csv, self.PLOT: written.report_html, self.ERROR: written.error,
                self.DOMINANT: written.dominant}
