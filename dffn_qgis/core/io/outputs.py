"""Writing a run's results: rasters, spectra, plot, report and the run record.

All or nothing: every file is first written under a hidden temporary name in its final folder
(``.<name>.part-<random>``) and only when every output has been written are they renamed to
their final names. On any error or cancellation the temporary files are removed and files that
already sat at the final paths are left as they were.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np

from ..errors import InputError
from ..run.progress import Monitor, as_monitor
from ..run.result import UnmixResult
from ..report.html import report_html
from .scaling import in_file_values
from .scene import Scene

NODATA = -9999.0          # nodata value of every raster written (float32)
BLOCK_ROWS = 256          # rows written per block
TILE = 256                # tile size of GeoTIFFs at least this large both ways (strips otherwise)
GTIFF_OPTIONS = ["COMPRESS=DEFLATE", "PREDICTOR=3", "BIGTIFF=IF_SAFER"]


@dataclass
class OutputPlan:
    """Where each output goes; ``None`` means that output is not written (``stack`` is required)."""

    stack: str
    abundance_dir: Optional[str] = None   # folder of per-endmember single-band GeoTIFFs
    endmembers_csv: Optional[str] = None
    endmembers_sli: Optional[str] = None  # ENVI spectral library; its .hdr goes beside it
    plot_png: Optional[str] = None
    plot_svg: Optional[str] = None
    report_html: Optional[str] = None
    error: Optional[str] = None           # per-pixel reconstruction angle
    dominant: Optional[str] = None        # the endmember with the largest fraction per pixel (classes)
    record_json: Optional[str] = None
    prefix: str = "dffn"                  # file name stem of the per-endmember files

    def abundance_paths(self, count: int) -> List[Path]:
        """Final paths of the per-endmember GeoTIFFs (empty when not written)."""
        if self.abundance_dir is None:
            return []
        return [Path(self.abundance_dir) / f"{self.prefix}_abundance_em{i + 1}.tif" for i in range(count)]


def _stem(path) -> str:
    return os.path.splitext(str(path))[0]


def plan_from_destinations(stack, abundance_dir=None, endmembers_csv=None, report_html=None, error=None,
                           prefix: str = "dffn", dominant=None) -> OutputPlan:
    """The one naming scheme: the files a run writes, from the destinations a user chose.

    Files that go with a destination are named after it: ``<stack>.json`` (the run record),
    ``<endmembers>.sli`` (ENVI library), ``<report>.png`` and ``.svg`` (the plot). A destination
    left out (``None``) is not written, nor are the files that go with it.
    """
    return OutputPlan(
        stack=str(stack),
        abundance_dir=None if abundance_dir is None else str(abundance_dir),
        endmembers_csv=None if endmembers_csv is None else str(endmembers_csv),
        endmembers_sli=None if endmembers_csv is None else _stem(endmembers_csv) + ".sli",
        plot_png=None if report_html is None else _stem(report_html) + ".png",
        plot_svg=None if report_html is None else _stem(report_html) + ".svg",
        report_html=None if report_html is None else str(report_html),
        error=None if error is None else str(error),
        dominant=None if dominant is None else str(dominant),
        record_json=_stem(stack) + ".json",
        prefix=prefix,
    )


def plan_outputs(output_dir, prefix: str = "dffn") -> OutputPlan:
    """Every output, in ``output_dir`` and named ``<prefix>_...``: what the command line writes,
    and the "Unmix with DFFN..." action in QGIS."""
    d = Path(output_dir)
    return plan_from_destinations(d / f"{prefix}_abundances.tif", d, d / f"{prefix}_endmembers.csv",
                                  d / f"{prefix}_report.html", d / f"{prefix}_error.tif", prefix,
                                  d / f"{prefix}_dominant.tif")


def write_outputs(plan: OutputPlan, scene: Scene, result: UnmixResult,
                  monitor: Optional[Monitor] = None) -> dict:
    """Write every output of ``plan``; returns the final paths written.

    Keys: ``stack``, ``abundances`` (list, empty when not written), ``endmembers_csv``,
    ``endmembers_sli``, ``plot_png``, ``plot_svg``, ``report_html``, ``error``, ``record_json``;
    an output the plan leaves out is ``None``. Raises :class:`InputError` when an output folder
    cannot be created or written, and re-raises whatever stopped the writing (``Cancelled``,
    ``OSError``, GDAL errors) after removing every temporary file.
    """
    monitor = as_monitor(monitor)
    paths = _final_paths(plan, result.n_endmembers)
    _check_targets(paths, scene)
    staging = _Staging()
    try:
        _write_all(plan, paths, scene, result, staging, monitor)
        monitor.check()
        staging.commit()
    except BaseException:
        staging.discard()
        raise
    monitor.progress(1.0)
    return paths


# ---------------------------------------------------------------------------------------------
# planning and checks

def _final_paths(plan: OutputPlan, count: int) -> dict:
    def opt(p):
        return str(p) if p is not None else None

    return {
        "stack": str(plan.stack),
        "abundances": [str(p) for p in plan.abundance_paths(count)],
        "endmembers_csv": opt(plan.endmembers_csv),
        "endmembers_sli": opt(plan.endmembers_sli),
        "plot_png": opt(plan.plot_png),
        "plot_svg": opt(plan.plot_svg),
        "report_html": opt(plan.report_html),
        "error": opt(plan.error),
        "dominant": opt(plan.dominant),
        "record_json": opt(plan.record_json),
    }


def _all_files(paths: dict) -> List[Path]:
    """Every final file, the ENVI header of the spectral library included."""
    files = [Path(p) for key, p in paths.items() if key != "abundances" and p is not None]
    files += [Path(p) for p in paths["abundances"]]
    if paths["endmembers_sli"] is not None:
        files.append(_sli_header(paths["endmembers_sli"]))
    return files


def _sli_header(sli_path) -> Path:
    return Path(sli_path).with_suffix(".hdr")


def _check_targets(paths: dict, scene: Scene) -> None:
    """Output folders exist (created if needed) and are writable; no output is the input file."""
    files = _all_files(paths)
    source = os.path.realpath(scene.source) if scene.source else None
    for f in files:
        if source is not None and os.path.realpath(f) == source:
            raise InputError(f"the output {f} would overwrite the input image; choose another name")
    if len({os.path.realpath(f) for f in files}) != len(files):
        raise InputError("two outputs of the plan share one file name")
    for folder in sorted({f.parent for f in files}):
        _ensure_writable_dir(folder)


def _ensure_writable_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".dffn-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"cannot write to the output folder {folder}: "
                         f"{exc.strerror or exc}") from None


class _Staging:
    """Temporary files beside their final paths, renamed to them all together by :meth:`commit`."""

    def __init__(self):
        self._pairs: List[Tuple[Path, Path]] = []

    def temp(self, final) -> Path:
        """A fresh temporary name in ``final``'s folder, to be renamed to ``final``."""
        final = Path(final)
        tmp = final.with_name(f".{final.name}.part-{secrets.token_hex(6)}")
        self.add(tmp, final)
        return tmp

    def add(self, tmp: Path, final: Path) -> None:
        self._pairs.append((Path(tmp), Path(final)))

    def commit(self) -> None:
        for tmp, final in self._pairs:
            os.replace(tmp, final)
        self._pairs = []

    def discard(self) -> None:
        for tmp, _ in self._pairs:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._pairs = []


def write_files_atomically(contents: dict) -> None:
    """Write ``{path: bytes}`` all or nothing (temporary names, renamed together); folders are
    created when missing."""
    staging = _Staging()
    try:
        for path, data in contents.items():
            _ensure_writable_dir(Path(path).parent)
            Path(staging.temp(path)).write_bytes(data)
        staging.commit()
    except BaseException:
        staging.discard()
        raise


# ---------------------------------------------------------------------------------------------
# the writing itself

def _write_all(plan: OutputPlan, paths: dict, scene: Scene, result: UnmixResult,
               staging: _Staging, monitor: Monitor) -> None:
    names = result.endmember_names
    abundances = np.asarray(result.abundances)
    stage = "writing the abundance rasters"
    write_geotiff(staging.temp(paths["stack"]), abundances, scene, names, monitor.sub(0.0, 0.4), stage)
    per_em = paths["abundances"]
    for i, final in enumerate(per_em):
        write_geotiff(staging.temp(final), abundances[i:i + 1], scene, [names[i]],
                      monitor.sub(0.4 + 0.3 * i / len(per_em), 0.4 + 0.3 * (i + 1) / len(per_em)), stage)
    if paths["error"] is not None:
        write_geotiff(staging.temp(paths["error"]), np.asarray(result.error)[None], scene,
                      ["reconstruction spectral angle (rad)"], monitor.sub(0.7, 0.8), "writing the error map")
    if paths["dominant"] is not None:
        write_class_raster(staging.temp(paths["dominant"]), dominant_endmember(abundances), scene, names)
    monitor.progress(0.8, "writing the endmember spectra")
    if paths["endmembers_csv"] is not None:
        write_endmember_csv(staging.temp(paths["endmembers_csv"]), scene, result)
    if paths["endmembers_sli"] is not None:
        _write_sli_staged(paths["endmembers_sli"], scene, result, staging)
    monitor.check()
    _write_plot_report_record(paths, scene, result, staging, monitor)


def _write_plot_report_record(paths: dict, scene: Scene, result: UnmixResult,
                              staging: _Staging, monitor: Monitor) -> None:
    from ..report.plotting import endmember_figure, figure_to_png_bytes, save_figure
    from ..report.summary import endmember_summary, error_statistics

    result.record["endmember_summary"] = endmember_summary(scene, result)
    result.record["reconstruction_error"] = error_statistics(result.error)
    png_bytes = None
    if any(paths[k] is not None for k in ("plot_png", "plot_svg", "report_html")):
        monitor.progress(0.85, "plotting the endmembers")
        values, label = _as_in_the_file(result.endmembers, scene)
        fig = endmember_figure(values, scene.wavelengths, scene.wavelength_units,
                               result.endmember_names, title="DFFN endmembers", ylabel=label)
        save_figure(fig, _maybe_temp(staging, paths["plot_png"]), _maybe_temp(staging, paths["plot_svg"]))
        if paths["report_html"] is not None:
            png_bytes = figure_to_png_bytes(fig)
    monitor.check()
    if paths["report_html"] is not None:
        page = report_html(scene, result, png_bytes, paths)
        _write_text(staging.temp(paths["report_html"]), page)
    if paths["record_json"] is not None:
        record = dict(result.record)
        record["outputs"] = paths
        _write_text(staging.temp(paths["record_json"]),
                    json.dumps(record, indent=2, default=str, allow_nan=True) + "\n")


def _as_in_the_file(endmembers: np.ndarray, scene: Scene) -> Tuple[np.ndarray, str]:
    """The endmembers in the input's own values and the y-axis label (see
    :func:`~dffn_qgis.core.io.scaling.in_file_values`)."""
    return in_file_values(endmembers, scene.scaling)


def _maybe_temp(staging: _Staging, final) -> Optional[Path]:
    return staging.temp(final) if final is not None else None


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


# ---------------------------------------------------------------------------------------------
# GeoTIFF

@contextlib.contextmanager
def _gdal_errors() -> Iterator[List[str]]:
    """Collect the GDAL failures of this thread while the block runs (a thread-local handler)."""
    from osgeo import gdal

    errors: List[str] = []

    def handler(err_class, err_no, message):
        if err_class >= gdal.CE_Failure:
            errors.append(" ".join(str(message).split()))

    gdal.PushErrorHandler(handler)
    try:
        yield errors
    finally:
        gdal.PopErrorHandler()


_PART_NAME = re.compile(r"^\.(.+)\.part-[0-9a-f]+$")
_LOW_SPACE = 1024 * 1024      # bytes free below which a failed write is put down to a full disk


def _raise_on(errors: List[str], path, what: str) -> None:
    if errors:
        path = Path(path)
        match = _PART_NAME.match(path.name)
        shown = path.with_name(match.group(1)) if match else path     # the name the user gave
        raise OSError(f"GDAL failed to {what} {shown}: {errors[-1]}{_disk_full_hint(path.parent)}")


def _disk_full_hint(folder: Path) -> str:
    """``' (No space left on device: 4 kB free)'`` when the folder's file system is (nearly) full."""
    try:
        stats = os.statvfs(folder)
    except (OSError, AttributeError):     # no statvfs on Windows
        return ""
    free = stats.f_bavail * stats.f_frsize
    if free >= _LOW_SPACE:
        return ""
    return f" (No space left on device: {free // 1024} kB free)"


DOMINANT_NODATA = 0


def dominant_endmember(abundances: np.ndarray) -> np.ndarray:
    """The 1-based index of the largest fraction per pixel (uint8), 0 where the pixel is nodata."""
    A = np.asarray(abundances)
    out = np.ones(A.shape[1:], dtype=np.uint8)
    best = A[0].copy()
    valid = np.isfinite(best)
    for i in range(1, A.shape[0]):          # one map at a time: no copy of the stack (ties: the first)
        valid &= np.isfinite(A[i])
        larger = A[i] > best
        np.copyto(best, A[i], where=larger)
        out[larger] = i + 1
    out[~valid] = DOMINANT_NODATA
    return out


def write_class_raster(path, classes: np.ndarray, scene: Scene, names: List[str]) -> None:
    """A one-band uint8 GeoTIFF of classes 1..K (0: nodata) with a colour table; the class names are
    band metadata ``CLASS_<k>`` (kept inside the GeoTIFF)."""
    from osgeo import gdal

    from ..report.plotting import distinct_colours

    height, width = classes.shape
    with _gdal_errors() as errors:
        ds = gdal.GetDriverByName("GTiff").Create(str(path), width, height, 1, gdal.GDT_Byte, ["COMPRESS=DEFLATE"])
        if ds is None or errors:
            _raise_on(errors or ["cannot create the file"], path, "create")
        try:
            _set_georeference(ds, scene)
            band = ds.GetRasterBand(1)
            band.SetDescription("dominant endmember")
            band.SetNoDataValue(DOMINANT_NODATA)
            band.SetMetadata({f"CLASS_{k + 1}": str(n) for k, n in enumerate(names)})
            table = gdal.ColorTable()
            table.SetColorEntry(0, (0, 0, 0, 0))
            for k, colour in enumerate(distinct_colours(len(names))):
                table.SetColorEntry(k + 1, tuple(int(round(255 * c)) for c in colour[:3]) + (255,))
            band.SetRasterColorTable(table)
            band.WriteArray(classes)
            ds.FlushCache()
        finally:
            ds = None
        _raise_on(errors, path, "write")


def write_geotiff(path, maps: np.ndarray, scene: Scene, descriptions: List[str],
                  monitor: Optional[Monitor] = None, stage: str = "") -> None:
    """Write ``maps`` (bands, rows, cols) as a float32 GeoTIFF at ``path`` (any file name).

    NaN becomes :data:`NODATA`; the scene's CRS and geotransform are kept (when known); each
    band is described by ``descriptions``. Written in blocks of :data:`BLOCK_ROWS` rows, checking
    ``monitor`` for cancellation between blocks.
    """
    from osgeo import gdal

    monitor = as_monitor(monitor)
    count, height, width = maps.shape
    options = list(GTIFF_OPTIONS)
    if min(height, width) >= TILE:
        options += ["TILED=YES", f"BLOCKXSIZE={TILE}", f"BLOCKYSIZE={TILE}"]
    with _gdal_errors() as errors:
        ds = gdal.GetDriverByName("GTiff").Create(str(path), width, height, count, gdal.GDT_Float32, options)
        if ds is None or errors:
            _raise_on(errors or ["cannot create the file"], path, "create")
        try:
            _set_georeference(ds, scene)
            bands = [ds.GetRasterBand(b + 1) for b in range(count)]
            for band, text in zip(bands, descriptions):
                band.SetDescription(str(text))
                band.SetNoDataValue(NODATA)
            for row0 in range(0, height, BLOCK_ROWS):
                monitor.check()
                for b, band in enumerate(bands):
                    block = maps[b, row0:row0 + BLOCK_ROWS].astype(np.float32)
                    block[~np.isfinite(block)] = NODATA
                    if band.WriteArray(block, 0, row0) != 0 or errors:
                        _raise_on(errors or ["write error"], path, "write")
                monitor.progress(min(row0 + BLOCK_ROWS, height) / height, stage)
            ds.FlushCache()
            _raise_on(errors, path, "write")
        finally:
            bands = band = None  # noqa: F841  (band objects must go before the dataset closes)
            ds = None            # closes the file; a failure here (disk full) lands in ``errors``
        _raise_on(errors, path, "close")


def _set_georeference(ds, scene: Scene) -> None:
    if scene.geotransform is not None:
        ds.SetGeoTransform(tuple(float(v) for v in scene.geotransform))
    if scene.crs_wkt:
        ds.SetProjection(scene.crs_wkt)


# ---------------------------------------------------------------------------------------------
# spectra

def write_endmember_csv(path, scene: Scene, result: UnmixResult) -> None:
    """CSV with a ``wavelength`` (or ``band``) column and one column per endmember."""
    E = np.asarray(result.endmembers, dtype=np.float64)
    key, axis = scene.spectral_axis(E.shape[0])
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([key] + result.endmember_names)
        for x, row in zip(axis, E):
            writer.writerow([_fmt(x)] + [_fmt(v) for v in row])


def _fmt(value: float) -> str:
    return f"{value:.10g}"


def _write_sli_staged(final_sli, scene: Scene, result: UnmixResult, staging: _Staging) -> None:
    """ENVI spectral library (``.sli`` + ``.hdr``) written under a temporary base name."""
    from spectral.io import envi

    final_sli = Path(final_sli)
    base = final_sli.with_name(f".{final_sli.stem}.part-{secrets.token_hex(6)}")
    staging.add(Path(str(base) + ".sli"), final_sli)
    staging.add(Path(str(base) + ".hdr"), _sli_header(final_sli))
    E = np.asarray(result.endmembers, dtype=np.float32)
    header = {"spectra names": result.endmember_names}
    if scene.wavelengths is not None and len(scene.wavelengths) == E.shape[0]:
        header["wavelength"] = [float(w) for w in scene.wavelengths]
        if scene.wavelength_units:
            header["wavelength units"] = scene.wavelength_units
    envi.SpectralLibrary(E.T.copy(), header).save(str(base), description="DFFN endmembers")
