"""Windows of an image for the scalable path: scaled exactly as :func:`read_scene` scales the
whole image, without ever holding the whole image.

:class:`RasterSource` reads a GDAL raster window by window. Opening it makes one pass over the
file (a second one when bands turn out to hold no valid value) to find the valid pixels, the
divisor that brings the largest valid value to 1 and the notes the log shows (and whatever
statistic of the whole image ``scan_with`` gathers, e.g. the fusion's band moments); afterwards only
the validity mask (one byte per pixel) and the metadata stay in memory. :class:`ArraySource`
gives an in-memory :class:`Scene` the same interface.
"""
from __future__ import annotations

import os
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
from osgeo import gdal

from ..run.progress import Monitor, as_monitor
from .raster_io import (_check_data_types, _default_bands, _georeference, empty_bands_note, invalid_pixel_notes, read_band_window)
from .scaling import extreme_values_note, negatives_note, scaling_record, unit_max_divisor
from .band_metadata import find_wavelengths, read_envi_header, validate_band_list
from .gdal_open import open_raster
from .scene import Scene

WINDOW = 256          # side of the windows a pass reads
_SAMPLE_PIXELS = 20_000


def windows(height: int, width: int, size: int = WINDOW) -> Iterator[Tuple[int, int, int, int]]:
    """(row0, col0, rows, cols) of the ``size`` x ``size`` windows covering the image, row by row."""
    for row0 in range(0, height, size):
        for col0 in range(0, width, size):
            yield row0, col0, min(size, height - row0), min(size, width - col0)


class ArraySource:
    """An in-memory scene behind the window interface."""

    def __init__(self, scene: Scene):
        self.scene = scene

    @property
    def n_bands(self) -> int:
        return self.scene.n_bands

    @property
    def height(self) -> int:
        return self.scene.height

    @property
    def width(self) -> int:
        return self.scene.width

    def close(self) -> None:
        """Nothing to release: the scene is in memory (a :class:`RasterSource` closes its file)."""

    def read(self, row0: int, col0: int, rows: int, cols: int) -> Tuple[np.ndarray, np.ndarray]:
        """(L x rows x cols float32 scaled data with 0 at invalid pixels, rows x cols validity)."""
        window = (slice(row0, row0 + rows), slice(col0, col0 + cols))
        return (np.array(self.scene.data[(slice(None),) + window], dtype=np.float32),
                self.scene.valid[window].copy())


class RasterSource(ArraySource):
    """A GDAL raster read window by window; ``scene`` holds its metadata and validity, no data."""

    def __init__(self, path, bands: Optional[Sequence[int]] = None, use_bbl: bool = True,
                 monitor: Optional[Monitor] = None, scan_with=None):
        """``scan_with``: an object that also sees every block of valid pixels of the scan, so that
        a statistic of the whole image costs no read of its own: ``start(n_bands)``, then
        ``update(values)`` per block (L x n, before the divisor), then ``finish(divisor)``
        (e.g. :class:`~dffn_qgis.core.method.ffm_scalable.BandMoments`)."""
        monitor = as_monitor(monitor)
        self._scan_with = scan_with
        self.path = os.fspath(path)
        self._ds = open_raster(self.path)
        ds = self._ds
        notes: List[str] = []
        header = read_envi_header(ds)
        explicit = bands is not None
        numbers = (validate_band_list(bands, ds.RasterCount, self.path) if explicit
                   else _default_bands(ds, self.path, use_bbl, header, notes))
        _check_data_types(ds, self.path, numbers)
        stats = self._stats(numbers, monitor.sub(0.0, 0.9))
        if stats["empty"]:
            empty = [numbers[i] for i in stats["empty"]]
            notes.append(empty_bands_note(empty, numbers, explicit, self.path))
            numbers = [b for b in numbers if b not in set(empty)]
            stats = self._stats(numbers, monitor.sub(0.9, 1.0))
        self.divisor = unit_max_divisor(stats["vmin"], stats["vmax"], stats["n_valid"] > 0, self.path)
        if scan_with is not None:
            scan_with.finish(self.divisor)
        self._numbers = numbers
        self._pixel_notes(stats, notes)

        all_wavelengths, units = find_wavelengths(ds, header, notes)
        wavelengths = None if all_wavelengths is None else all_wavelengths[[b - 1 for b in numbers]]
        geotransform, crs_wkt = _georeference(ds)
        first_nodata = next((v for v in self._nodata if v is not None), None)
        self.scene = Scene(
            data=None, valid=stats["valid"], wavelengths=wavelengths,
            wavelength_units=units if wavelengths is not None else None, band_indices=list(numbers),
            band_names=[(ds.GetRasterBand(b).GetDescription() or "").strip() or f"band {b}" for b in numbers],
            geotransform=geotransform, crs_wkt=crs_wkt,
            nodata=None if first_nodata is None else float(first_nodata),
            scaling=scaling_record(self._scales, self._offsets, self.divisor), source=self.path, notes=notes)
        monitor.progress(1.0, "image scanned")

    def _band_setup(self, numbers: Sequence[int]) -> None:
        self._bands = [self._ds.GetRasterBand(b) for b in numbers]
        self._scales, self._offsets, self._nodata = [], [], []
        for band in self._bands:
            scale, offset = band.GetScale(), band.GetOffset()
            self._scales.append(1.0 if scale is None else float(scale))
            self._offsets.append(0.0 if offset is None else float(offset))
            self._nodata.append(band.GetNoDataValue())
        first = self._bands[0]
        flags = first.GetMaskFlags()
        per_dataset = flags & gdal.GMF_PER_DATASET and not flags & gdal.GMF_ALL_VALID
        self._mask_band = first.GetMaskBand() if per_dataset else None

    def _raw_window(self, numbers, row0, col0, rows, cols):
        """Scaled-by-GDAL values (float32, invalid 0), nodata hits, NaN/Inf hits, mask, per-band validity."""
        cube = np.empty((len(numbers), rows, cols), dtype=np.float32)
        nodata = np.zeros((rows, cols), dtype=bool)
        nonfinite = np.zeros((rows, cols), dtype=bool)
        band_has_valid = np.zeros(len(numbers), dtype=bool)
        for i, (band, number) in enumerate(zip(self._bands, numbers)):
            values, hits, bad = read_band_window(band, self.path, number, self._scales[i], self._offsets[i],
                                                 self._nodata[i], col0, row0, cols, rows)
            cube[i] = values
            nodata |= hits
            nonfinite |= bad
            band_has_valid[i] = not np.all(hits | bad)
        masked = None
        if self._mask_band is not None:
            block = self._mask_band.ReadAsArray(col0, row0, cols, rows)
            masked = None if block is None else block == 0
        return cube, nodata, nonfinite, masked, band_has_valid

    def _stats(self, numbers: Sequence[int], monitor: Monitor) -> dict:
        self._band_setup(numbers)
        height, width = self._ds.RasterYSize, self._ds.RasterXSize
        valid = np.zeros((height, width), dtype=bool)
        has_valid = np.zeros(len(numbers), dtype=bool)
        counts = {"nodata": 0, "nonfinite": 0, "masked": 0, "negative": 0}
        vmin, vmax, low = np.inf, -np.inf, 0.0
        step = max(1, (height * width) // _SAMPLE_PIXELS)
        sample, offset = [], 0
        total = sum(1 for _ in windows(height, width))
        if self._scan_with is not None:
            self._scan_with.start(len(numbers))
        for k, (row0, col0, rows, cols) in enumerate(windows(height, width)):
            monitor.check()
            cube, nodata, nonfinite, masked, band_has_valid = self._raw_window(numbers, row0, col0, rows, cols)
            has_valid |= band_has_valid
            ok = ~(nodata | nonfinite)
            counts["nodata"] += int(nodata.sum())
            counts["nonfinite"] += int((nonfinite & ~nodata).sum())
            if masked is not None:
                counts["masked"] += int(masked.sum())
                ok &= ~masked
            valid[row0:row0 + rows, col0:col0 + cols] = ok
            if ok.any():
                values = cube[:, ok]
                if self._scan_with is not None:
                    self._scan_with.update(values)
                vmin, vmax = min(vmin, float(values.min())), max(vmax, float(values.max()))
                negative = values < 0
                if negative.any():
                    counts["negative"] += int(negative.sum())
                    low = min(low, float(values[negative].min()))
                picks = np.arange((-offset) % step, values.shape[1], step)
                sample.append(values[:, picks])
                offset += values.shape[1]
            monitor.progress((k + 1) / total, f"scanning the image ({k + 1} of {total} windows)")
        empty = [i for i in range(len(numbers)) if not has_valid[i]]
        n_valid = int(valid.sum())
        return {"valid": valid, "empty": empty, "vmin": vmin, "vmax": vmax, "n_valid": n_valid,
                "counts": counts, "low": low,
                "sample": np.concatenate(sample, axis=1) if sample else np.zeros((len(numbers), 0), np.float32)}

    def _pixel_notes(self, stats: dict, notes: List[str]) -> None:
        counts = stats["counts"]
        first_nodata = next((v for v in self._nodata if v is not None), None)
        notes += invalid_pixel_notes(stats["valid"].size, counts["nodata"], counts["nonfinite"],
                                     counts["masked"] or None, first_nodata)
        sample = stats["sample"] / np.float32(self.divisor)
        for note in (extreme_values_note(sample[:, None, :], np.ones((1, sample.shape[1]), bool), self.path),
                     negatives_note(counts["negative"], stats["low"] / self.divisor)):
            if note:
                notes.append(note)

    def read(self, row0: int, col0: int, rows: int, cols: int) -> Tuple[np.ndarray, np.ndarray]:
        cube = self._raw_window(self._numbers, row0, col0, rows, cols)[0]
        valid = self.scene.valid[row0:row0 + rows, col0:col0 + cols].copy()
        cube /= np.float32(self.divisor)
        cube[:, ~valid] = 0.0
        return cube, valid

    def close(self) -> None:
        self._ds = None
        self._bands = []
        self._mask_band = None
