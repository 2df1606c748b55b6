"""The one way a front end runs DFFN: a request in, a summary out, a failure as one line.

The command line (:mod:`dffn_qgis.cli`), the Processing algorithm and the "Unmix with DFFN..."
task all build a :class:`RunRequest` and call :func:`run`; they differ only in how they show
progress and messages. :func:`describe_failure` turns any exception into the one line the user
reads and says whether the input, a cancel or the program was at fault.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

from .config import DFFNParams
from ..errors import Cancelled, InputError
from ..io.outputs import OutputPlan
from .progress import Monitor, as_monitor

NOTHING_WRITTEN = "no output was written"


@dataclass(frozen=True)
class RunRequest:
    """What a front end asks for: an input raster, the parameters and where each output goes."""

    input_path: str
    params: DFFNParams
    outputs: OutputPlan
    bands: Optional[Tuple[int, ...]] = None
    library: Optional[str] = None       # names the endmembers: a file, None (bundled) or "none"
    keep_bad_bands: bool = False        # keep bands flagged bad and those in water-vapour windows

    @classmethod
    def make(cls, input_path, params: DFFNParams, outputs: OutputPlan, bands: Optional[Sequence[int]] = None,
             library: Optional[str] = None, keep_bad_bands: bool = False) -> "RunRequest":
        return cls(str(input_path), params, outputs, tuple(bands) if bands else None,
                   None if library is None else str(library), bool(keep_bad_bands))


@dataclass(frozen=True)
class Failure:
    """A failed run as the user reads it; ``kind``: ``input``, ``cancelled`` or ``fault``."""

    message: str
    kind: str


def check_band_count(path: str, bands: Optional[Sequence[int]], n_endmembers: int,
                     band_count: Optional[int] = None) -> None:
    """Refuse too many endmembers for the bands before the image is read (a cheap look).

    ``band_count`` is the image's, when the caller knows it already (a QGIS layer).
    """
    from ..io.gdal_open import open_raster
    from ..io.band_metadata import validate_band_list

    if band_count is None:
        if str(path).lower().endswith(".mat"):
            return                                   # the reader and check_scene see to it
        ds = open_raster(path)
        band_count = ds.RasterCount
        ds = None  # noqa: F841  (closes the file)
    count, have = band_count, f"the image has {band_count}"
    if bands:
        count = len(validate_band_list(list(bands), band_count, path))
        have = f"{count} were chosen"
    if count < n_endmembers + 1:
        raise InputError(f"{n_endmembers} endmembers need at least {n_endmembers + 1} bands; {have}")


def _check_exists(path: str) -> None:
    """A local input that is not there is an input error (GDAL's virtual paths are left to GDAL)."""
    if not Path(path).exists() and "://" not in path and not path.startswith("/vsi"):
        raise InputError(f"input file not found: {path}")


def run(request: RunRequest, monitor: Optional[Monitor] = None):
    """Check the request, unmix and write every planned output (all or nothing); a
    :class:`~dffn_qgis.core.run.pipeline.RunSummary`."""
    from .pipeline import unmix_file

    path = request.input_path
    _check_exists(path)
    check_band_count(path, request.bands, max(request.params.n_endmembers, 2))
    if request.library not in (None, "none") and not Path(request.library).exists():
        raise InputError(f"spectral library not found: {request.library}")
    return unmix_file(path, request.outputs, request.params, bands=request.bands, monitor=monitor,
                      library=request.library, keep_bad_bands=request.keep_bad_bands)


def traceback_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def count(input_path, bands: Optional[Sequence[int]] = None, far: Optional[float] = None,
          report_html=None, monitor: Optional[Monitor] = None):
    """Estimate the number of endmembers of a raster (a window-by-window pass); with ``report_html``
    also write the HTML report and the curves as a PNG of the same name (both or neither)."""
    from ..io.raster_io import read_scene
    from ..io.raster_source import ArraySource, RasterSource
    from ..method.endmember_count import DEFAULT_FAR, count_source

    monitor = as_monitor(monitor)
    path = str(input_path)
    _check_exists(path)
    band_list = list(bands) if bands else None
    if path.lower().endswith(".mat"):
        source = ArraySource(read_scene(path, bands=band_list, monitor=monitor.sub(0.0, 0.3)))
    else:
        source = RasterSource(path, bands=band_list, monitor=monitor.sub(0.0, 0.3))
    try:
        estimate = count_source(source, DEFAULT_FAR if far is None else far, monitor=monitor.sub(0.3, 0.9))
    finally:
        source.close()
    if report_html:
        from ..io.outputs import write_files_atomically
        from ..report.count_report import count_figure, count_html
        from ..report.plotting import figure_to_png_bytes

        stem = Path(str(report_html)).with_suffix("")
        write_files_atomically({str(report_html): count_html(estimate, path).encode("utf-8"),
                                str(stem) + ".png": figure_to_png_bytes(count_figure(estimate, Path(path).name))})
    monitor.progress(1.0, "counted")
    return estimate


def apply(input_path, spectra_path, outputs: OutputPlan, solver: str = "fcls",
          bands: Optional[Sequence[int]] = None, monitor: Optional[Monitor] = None):
    """Unmix a raster with given spectra (:mod:`~dffn_qgis.core.run.apply`); a RunSummary."""
    from .apply import apply_spectra

    path = str(input_path)
    _check_exists(path)
    return apply_spectra(path, spectra_path, outputs, solver, bands, monitor)


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def describe_failure(exc: BaseException) -> Failure:
    """The one line a user reads for ``exc`` (a front end logs a fault's traceback where its
    users look: :func:`traceback_text`)."""
    if isinstance(exc, InputError):
        return Failure(one_line(exc), "input")
    if isinstance(exc, Cancelled):
        return Failure(f"cancelled ({one_line(exc)}); {NOTHING_WRITTEN}", "cancelled")
    if isinstance(exc, OSError):                 # full disk, folder gone, ... while writing
        return Failure(f"{one_line(exc)}; {NOTHING_WRITTEN}", "input")
    if isinstance(exc, FloatingPointError):      # the training loss became NaN or infinite
        return Failure(f"{one_line(exc)}; try a lower learning rate (lr) or mask extreme values as "
                       f"nodata; {NOTHING_WRITTEN}", "input")
    if isinstance(exc, MemoryError):
        return Failure(f"not enough memory; choose fewer bands or a smaller image; {NOTHING_WRITTEN}",
                       "fault")
    return Failure(f"{type(exc).__name__}: {one_line(exc)}; {NOTHING_WRITTEN}", "fault")
