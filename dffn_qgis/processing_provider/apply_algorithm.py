"""Processing algorithm ``dffn:applyendmembers``: unmix a raster with given spectra."""
from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterBand,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterLayer,
)

from ..core.run.parameters import SOLVERS
from .base import DFFNAlgorithm, _ProgressBridge, _safe_prefix, _tr, input_path


class DFFNApplyAlgorithm(DFFNAlgorithm):
    INPUT = "INPUT"
    SPECTRA = "SPECTRA"
    SOLVER = "SOLVER"
    BANDS = "BANDS"

    def name(self):
        return "applyendmembers"

    def displayName(self):
        return _tr("Apply endmembers")

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
        self.add_unmixing_outputs(_tr("Abundances (one band per spectrum)"),
                                  _tr("Spectra as used (CSV; ENVI .sli beside it)"))

    def processAlgorithm(self, parameters, context, feedback):
        self.require_dependencies()
        from ..core.run import service

        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, self.INPUT))
        spectra = self.parameterAsFile(parameters, self.SPECTRA, context)
        solver = SOLVERS[self.parameterAsEnum(parameters, self.SOLVER, context)]
        bands = self.parameterAsInts(parameters, self.BANDS, context) or None
        plan, folder = self.output_plan(parameters, context, _safe_prefix(layer.name()))
        monitor = _ProgressBridge(feedback).monitor()
        summary = self.run_service(
            lambda: service.apply(input_path(layer), spectra, plan, solver, bands, monitor), folder)
        return self.unmixing_results(context, layer.name(), summary, folder)
