"""Processing algorithm ``dffn:countendmembers``: how many endmembers a raster holds (noise edge, HySime, HFC)."""
from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBand,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from ..core.method.endmember_count import DEFAULT_FAR
from .base import _DOUBLE, DFFNAlgorithm, _ProgressBridge, _tr, input_path


class DFFNCountAlgorithm(DFFNAlgorithm):
    INPUT = "INPUT"
    BANDS = "BANDS"
    FAR = "FAR"
    REPORT = "REPORT"
    RECOMMENDED = "RECOMMENDED"
    RMT = "RMT"
    HYSIME = "HYSIME"
    HYSIME_SPATIAL = "HYSIME_SPATIAL"
    HFC = "HFC"

    def name(self):
        return "countendmembers"

    def displayName(self):
        return _tr("Count endmembers")

    def tags(self):
        return _tr("hyperspectral,unmixing,endmember,number,hysime,hfc,virtual dimensionality,"
                   "random matrix theory,rmt").split(",")

    def shortDescription(self):
        return _tr("Estimates how many endmembers a hyperspectral raster holds (noise edge, HySime and HFC).")

    def shortHelpString(self):
        return "\n".join([
            _tr("Estimates the number of endmembers (pure materials) of a hyperspectral raster, the value "
                "to give DFFN Unmix (which also takes 0 to estimate it itself)."),
            "",
            _tr("Noise edge (random matrix theory, recommended): each band is divided by its noise level, "
                "estimated by regressing the band on all the others, and the eigenvalues of the whitened "
                "correlation matrix that rise above the largest one noise alone reaches (the Marchenko-Pastur "
                "edge) are counted. HySime finds the signal subspace: the eigenvectors whose signal power "
                "exceeds twice the noise power; it is run with the regression's noise and with the noise of "
                "neighbouring pixels' differences. Where the noise-edge count is more than twice the "
                "neighbour-noise HySime count (smooth real spectra let the regression explain the noise "
                "away) the latter is recommended. HFC (virtual dimensionality) counts the eigenvalues of the "
                "correlation matrix that exceed those of the covariance matrix at the false-alarm rate FAR."),
            "",
            _tr("Input raster: any raster GDAL reads; nodata pixels are left out; large rasters are read "
                "window by window and at most 100000 pixels are used."),
            _tr("Bands: optional subset (empty: all bands except those flagged bad)."),
            _tr("False-alarm rate (FAR): of HFC's test, between 0 and 0.5; smaller counts fewer."),
            _tr("Report (REPORT): an HTML page with both curves (a PNG of the same name beside it)."),
            "",
            _tr("Outputs RECOMMENDED, RMT, HYSIME, HYSIME_SPATIAL and HFC are numbers a model can use, for "
                "example as DFFN Unmix's number of endmembers."),
        ])

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, _tr("Input hyperspectral raster")))
        self.addParameter(QgsProcessingParameterBand(
            self.BANDS, _tr("Bands to use (empty: all)"), None, self.INPUT, optional=True, allowMultiple=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.FAR, _tr("HFC false-alarm rate"), type=_DOUBLE, defaultValue=DEFAULT_FAR, minValue=1e-12,
            maxValue=0.49))
        report = QgsProcessingParameterFileDestination(
            self.REPORT, _tr("Report with the curves (HTML)"), "HTML files (*.html *.htm)", optional=True)
        report.setCreateByDefault(True)
        self.addParameter(report)
        for name, label in ((self.RECOMMENDED, "Recommended number of endmembers"),
                            (self.RMT, "Noise edge, random matrix theory (noise by regression)"),
                            (self.HYSIME, "HySime (noise by regression)"),
                            (self.HYSIME_SPATIAL, "HySime (noise from neighbouring pixels)"),
                            (self.HFC, "HFC virtual dimensionality")):
            self.addOutput(QgsProcessingOutputNumber(name, _tr(label)))

    def processAlgorithm(self, parameters, context, feedback):
        self.require_dependencies()
        from ..core.run import service

        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, self.INPUT))
        bands = self.parameterAsInts(parameters, self.BANDS, context) or None
        far = self.parameterAsDouble(parameters, self.FAR, context)
        report = self.parameterAsFileOutput(parameters, self.REPORT, context) or None
        monitor = _ProgressBridge(feedback).monitor()
        estimate = self.run_service(lambda: service.count(input_path(layer), bands, far, report, monitor), None)
        feedback.pushInfo(estimate.describe())
        return {self.RECOMMENDED: estimate.recommended, self.RMT: estimate.rmt, self.HYSIME: estimate.hysime,
                self.HYSIME_SPATIAL: estimate.hysime_spatial, self.HFC: estimate.hfc, self.REPORT: report}
