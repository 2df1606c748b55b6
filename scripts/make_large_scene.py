"""Write a LARGE synthetic hyperspectral GeoTIFF with known truth, strip by strip.

The whole cube is never held in memory: abundances, mixed spectra and noise are made for one
strip of rows at a time (``--strip-rows``, default 128) and written straight to the file, so the
working memory is about one strip plus one row of 256 x 256 tiles in GDAL's block cache, whatever
the height: 1000 x 1000 x 224 took 14.5 s and 0.5 GB peak (resident) on a 2-core machine.

    python scripts/make_large_scene.py OUT.tif --size 1000 --bands 224 --endmembers 4 --seed 1
    python scripts/make_large_scene.py OUT.tif --size 1000 --bands 224 --tile-vrt 4

Outputs, beside OUT.tif (the same truth layout as ``python -m dffn_qgis.core.eval.synthetic``):

* ``OUT.tif``: float32 reflectance, tiled 256 x 256, INTERLEAVE=BAND, uncompressed by default,
  UTM 33N with 30 m pixels, nodata -9999 in a corner rectangle and an irregular blob, band
  descriptions ``band N (WL Nanometers)`` and ``wavelength``/``wavelength_units`` metadata;
* ``OUT_truth_abundances.tif``: one float32 band per material (named), NaN where the image is
  nodata, summing to one elsewhere;
* ``OUT_truth_endmembers.csv``: ``wavelength`` then one column per material;
* with ``--tile-vrt N``: ``OUT_xN.vrt``, the image repeated N x N times side by side with
  consecutive geotransforms (no extra disk), and ``OUT_xN_truth_abundances.vrt`` for its truth
  (its endmembers are those of ``OUT_truth_endmembers.csv``).

Score an unmixing of it with::

    python -m dffn_qgis evaluate RUN_DIR --truth OUT_truth_abundances.tif
    python -m dffn_qgis evaluate RUN_DIR --truth OUT_x4_truth_abundances.vrt \\
        --truth-endmembers OUT_truth_endmembers.csv

(evaluate finds ``*_truth_endmembers.csv`` beside a ``*_truth_abundances.tif`` or in a folder,
not beside a VRT, hence ``--truth-endmembers``; it reads whole rasters as float64, so scoring a
4000 x 4000 mosaic takes several GB of memory.)

Why INTERLEAVE=BAND (measured with GDAL 3.6 on a 512 x 512 x 224 float32 file in the page
cache, reading the whole image in windows of all bands): uncompressed band-interleaved tiles are
256 KB blocks that GDAL copies straight into the caller's array, while a pixel-interleaved tile
(256 x 256 x 224 = 59 MB) must be de-interleaved into 224 per-band cache blocks first. Dataset
reads of all bands, per 256 x 256 tile or per 256-row strip: BAND 0.2 / 0.1 s, PIXEL 0.5 / 0.6 s;
band by band per 256 x 256 window (how dffn's windowed reader, raster_source.py, reads):
BAND 0.14 s, PIXEL 0.8 s; band by band over full-width strips (how raster_io.read_scene reads):
BAND 0.12 s, PIXEL 9.3 s (GDAL keeps one de-interleaved tile, so every band re-reads the 59 MB
tiles); through a 2 x 2 mosaic VRT likewise. PIXEL would only
win on high-latency storage (a cloud object read by HTTP ranges: one request per tile instead of
one per band and tile); ``--interleave PIXEL`` writes it.

The abundances: one smooth Gaussian random field per material is made at low resolution for the
whole image (spacing a quarter of the correlation length, an eighth of the image size) and
upsampled per strip with Catmull-Rom cubic interpolation, each output row depending only on its
row number, so the strips join exactly: the file is the same whatever ``--strip-rows`` is, and
the same as :meth:`LargeScene.cube_rows` over all rows at once. As in ``synthetic.make_abundances``
the fields plus one Gaussian bump per material (its near-pure region) go through a softmax.
Noise is Gaussian at ``--snr`` dB over the whole cube, drawn per row from ``(seed, row)``.
Same arguments, same bytes.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dffn_qgis.core.eval import synthetic as syn  # noqa: E402
from dffn_qgis.core.errors import InputError  # noqa: E402

TILE = 256                      # GeoTIFF block size (rows and columns)
STRIP_ROWS = 128                # rows generated and written at a time
TRUTH_COMPRESS = True           # the truth rasters are small: DEFLATE, like synthetic.py
COMPRESSIONS = ("NONE", "ZSTD", "LZW", "DEFLATE")


# ---------------------------------------------------------------------------------------------
# the scene, row by row


def _catmull_rom(frac: np.ndarray) -> np.ndarray:
    """Weights (n, 4) of the samples at -1, 0, 1, 2 for positions ``frac`` in [0, 1)."""
    f = frac[:, None]
    f2, f3 = f * f, f * f * f
    return np.concatenate([(-f3 + 2 * f2 - f) / 2, (3 * f3 - 5 * f2 + 2) / 2,
                           (-3 * f3 + 4 * f2 + f) / 2, (f3 - f2) / 2], axis=1)


class LargeScene:
    """A synthetic scene of any size whose rows can be made in any order, a strip at a time.

    ``abundance_rows``, ``mask_rows`` and ``cube_rows`` give rows ``row0:row1`` of the truth
    abundances (P, n, W), the nodata mask (n, W) and the cube (n, W, L: pixel-interleaved); every
    row depends only on its number, never on the strip it is made in.
    """

    def __init__(self, height: int, width: int, n_bands: int, n_endmembers: int, seed: int = 0,
                 snr_db: Optional[float] = 30.0, pure_pixels: bool = True, max_abundance: float = 0.8,
                 nodata_region: bool = True, wl_range: Tuple[float, float] = (400, 2500)):
        syn._check_sizes(height, width, n_bands, n_endmembers, wl_range)
        if not 1.0 / n_endmembers < max_abundance <= 1.0:
            raise InputError(f"max_abundance must lie in (1/{n_endmembers}, 1] (got {max_abundance})")
        self.height, self.width, self.n_bands, self.n_endmembers = height, width, n_bands, n_endmembers
        self.seed, self.snr_db, self.pure_pixels = seed, snr_db, pure_pixels
        self.max_abundance, self.nodata_region = max_abundance, nodata_region
        self.names = list(syn.MATERIALS)[:n_endmembers]
        self.wavelengths = np.round(np.linspace(wl_range[0], wl_range[1], n_bands), 2)
        self.endmembers = syn.endmember_spectra(self.wavelengths, self.names)     # (L, P) float64
        self._e32 = np.ascontiguousarray(self.endmembers.T.astype(np.float32))   # (P, L)

        # low-resolution random fields covering the image plus a margin (the FFT field wraps
        # around; the margin keeps opposite edges of the image uncorrelated)
        correlation = max(1.0, max(height, width) / 8.0)       # as synthetic.make_abundances
        self.step = max(1.0, correlation / 4.0)                # image pixels per coarse cell
        coarse_corr = correlation / self.step
        self._margin = int(math.ceil(2 * coarse_corr)) + 2
        coarse_h = int(math.ceil((height - 1) / self.step)) + 2 * self._margin + 3
        coarse_w = int(math.ceil((width - 1) / self.step)) + 2 * self._margin + 3
        rng = np.random.default_rng([seed, 11])
        self._coarse = np.stack([syn.gaussian_random_field(coarse_h, coarse_w, coarse_corr, rng)
                                 for _ in range(n_endmembers)])
        self._col_index, self._col_weight = self._stencil(np.arange(width))
        self._centres = syn._blob_centres(height, width, n_endmembers, rng)
        self._radius = syn._blob_radius(height, width)
        self._cap = self._cap_mix() if not pure_pixels else 0.0
        self._sigma: Optional[float] = None

    def _stencil(self, pixels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Coarse indices (n, 4) and cubic weights (n, 4) for image rows or columns ``pixels``."""
        pos = self._margin + pixels.astype(np.float64) / self.step
        first = np.floor(pos).astype(np.int64)
        return first[:, None] + np.arange(-1, 3)[None, :], _catmull_rom(pos - first)

    def field_rows(self, row0: int, row1: int) -> np.ndarray:
        """The smooth random fields (P, n, W) at rows row0:row1, float64."""
        rows, weights = self._stencil(np.arange(row0, row1))
        out = np.empty((self.n_endmembers, row1 - row0, self.width))
        for p, coarse in enumerate(self._coarse):
            across = sum(weights[:, k, None] * coarse[rows[:, k]] for k in range(4))   # (n, Wc)
            out[p] = sum(self._col_weight[None, :, k] * across[:, self._col_index[:, k]]
                         for k in range(4))
        return out

    def _mixture_rows(self, row0: int, row1: int) -> np.ndarray:
        """Softmax abundances (P, n, W) before any cap, float64 (as synthetic.make_abundances)."""
        fields = self.field_rows(row0, row1)
        if self.pure_pixels:
            blobs = syn._blobs_at(self._centres, self._radius, np.arange(row0, row1),
                                  np.arange(self.width))
            return syn._softmax(4.0 * (fields + 5.0 * blobs))
        return syn._softmax(1.5 * fields)

    def _cap_mix(self) -> float:
        """Without pure pixels: how far to mix towards uniform so no abundance exceeds the cap."""
        top = max(float(self._mixture_rows(r, min(self.height, r + TILE)).max())
                  for r in range(0, self.height, TILE))
        if top <= self.max_abundance:
            return 0.0
        return (top - self.max_abundance) / (top - 1.0 / self.n_endmembers)

    def abundance_rows(self, row0: int, row1: int) -> np.ndarray:
        """Truth abundances (P, n, W) float32 at rows row0:row1, summing to one (no nodata)."""
        a = self._mixture_rows(row0, row1)
        if self._cap:
            a = (1.0 - self._cap) * a + self._cap / self.n_endmembers
        return a.astype(np.float32)

    def mask_rows(self, row0: int, row1: int) -> np.ndarray:
        """Nodata mask (n, W) at rows row0:row1 (all False without a nodata region)."""
        if not self.nodata_region:
            return np.zeros((row1 - row0, self.width), dtype=bool)
        return syn.nodata_mask(self.height, self.width, self.seed, rows=(row0, row1))

    @property
    def noise_sigma(self) -> float:
        """Noise standard deviation for ``snr_db`` over the whole clean cube (one pass over the
        abundances: the mean square of E a is a' (E'E) a / L)."""
        if self._sigma is None:
            self._sigma = 0.0
            if self.snr_db is not None and math.isfinite(self.snr_db):
                gram = self._e32.astype(np.float64) @ self._e32.T.astype(np.float64)   # (P, P)
                total = 0.0
                for r in range(0, self.height, TILE):
                    a = self.abundance_rows(r, min(self.height, r + TILE))
                    a = a.reshape(self.n_endmembers, -1).astype(np.float64)
                    total += float(np.einsum("pn,pn->", gram @ a, a))
                power = total / (self.n_bands * self.height * self.width)
                self._sigma = math.sqrt(power / 10.0 ** (self.snr_db / 10.0))
        return self._sigma

    def cube_rows(self, row0: int, row1: int, abundances: Optional[np.ndarray] = None) -> np.ndarray:
        """The image (n, W, L) float32 at rows row0:row1: ``endmembers @ abundances`` + noise,
        without nodata. ``abundances``: those rows' :meth:`abundance_rows`, if already made."""
        a = self.abundance_rows(row0, row1) if abundances is None else abundances
        sigma = np.float32(self.noise_sigma)
        out = np.empty((row1 - row0, self.width, self.n_bands), dtype=np.float32)
        term = np.empty((self.width, self.n_bands), dtype=np.float32)
        for i in range(row1 - row0):             # row by row: small temporaries, same order always
            row = out[i]
            np.multiply(a[0, i, :, None], self._e32[0], out=row)
            for p in range(1, self.n_endmembers):
                row += np.multiply(a[p, i, :, None], self._e32[p], out=term)
            if sigma:
                rng = np.random.default_rng([self.seed, 12, row0 + i])
                noise = rng.standard_normal((self.width, self.n_bands), dtype=np.float32)
                row += np.multiply(noise, sigma, out=noise)
        return out


# ---------------------------------------------------------------------------------------------
# writing


def _strips(height: int, strip_rows: int):
    for row0 in range(0, height, strip_rows):
        yield row0, min(height, row0 + strip_rows)


def write_large_scene(scene: LargeScene, path, strip_rows: int = STRIP_ROWS,
                      interleave: str = "BAND", compress: str = "NONE",
                      progress: Optional[Callable[[float, str], None]] = None) -> Dict[str, str]:
    """Write ``scene`` to ``path`` strip by strip, with its truth files beside it (names as
    ``synthetic.write_geotiff``). Returns the paths written."""
    from osgeo import gdal

    path = os.fspath(path)
    strip_rows = int(strip_rows)
    if strip_rows < 1:
        raise InputError(f"--strip-rows must be at least 1 (got {strip_rows})")
    interleave, compress = interleave.upper(), compress.upper()
    if interleave not in ("PIXEL", "BAND"):
        raise InputError(f"interleave must be PIXEL or BAND (got {interleave})")
    if compress not in COMPRESSIONS:
        raise InputError(f"compression must be one of {', '.join(COMPRESSIONS)} (got {compress})")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"the output folder does not exist: {folder}")
    report = progress or (lambda fraction, message: None)
    H, W, L, P = scene.height, scene.width, scene.n_bands, scene.n_endmembers
    abundance_path, endmember_path = syn._truth_paths(path)
    nodata = syn._nodata_for(np.float32)

    # a whole row of tiles stays in GDAL's cache until it is complete and flushed, so tiles are
    # written once, in order (same bytes whatever the machine's default cache)
    tile_row_bytes = int(math.ceil(W / TILE)) * TILE * TILE * L * 4
    old_cache = gdal.GetCacheMax()
    if old_cache < 1.25 * tile_row_bytes:
        gdal.SetCacheMax(int(1.25 * tile_row_bytes))
    try:
        syn.write_truth_endmembers(endmember_path, scene.wavelengths, scene.endmembers, scene.names)
        sigma = scene.noise_sigma                # one pass over the abundances
        truth = syn._create_truth_abundances(abundance_path, W, H, scene.names, TRUTH_COMPRESS)
        image = syn._create(path, W, H, L, np.dtype(np.float32), compress, interleave)
        for b in range(L):
            band = image.GetRasterBand(b + 1)
            syn._describe_band(band, b + 1, float(scene.wavelengths[b]))
            band.SetNoDataValue(nodata)
        for row0, row1 in _strips(H, strip_rows):
            n = row1 - row0
            a = scene.abundance_rows(row0, row1)
            mask = scene.mask_rows(row0, row1)
            shown = a.copy()
            shown[:, mask] = np.nan
            for p in range(P):
                truth.GetRasterBand(p + 1).WriteArray(shown[p], 0, row0)
            block = scene.cube_rows(row0, row1, abundances=a)
            block[mask] = nodata
            if image.WriteRaster(0, row0, W, n, block, buf_type=gdal.GDT_Float32,
                                 buf_pixel_space=4 * L, buf_line_space=4 * L * W,
                                 buf_band_space=4) != 0:
                raise OSError(f"{path}: GDAL could not write rows {row0}-{row1 - 1}")
            del block
            if row1 % TILE == 0 or row1 == H:
                image.FlushCache()
                truth.FlushCache()
            report(row1 / H, f"rows {row0}-{row1 - 1} of {H}")
        image.FlushCache()
        truth.FlushCache()
        image = truth = None
    finally:
        gdal.SetCacheMax(old_cache)
    return {"image": path, "abundances": abundance_path, "endmembers": endmember_path,
            "noise_sigma": f"{sigma:.6g}"}


def _mosaic_paths(path: str, copies: int) -> Tuple[str, str]:
    stem = os.path.splitext(path)[0] + f"_x{copies}"
    return stem + ".vrt", stem + "_truth_abundances.vrt"


def _nodata_text(value: float) -> str:
    return "nan" if math.isnan(value) else repr(float(value))


def write_mosaic_vrt(source, vrt_path, copies: int) -> str:
    """A VRT repeating the raster ``source`` ``copies`` x ``copies`` times, side by side.

    Copy (i, j) (row i, column j) lies at ``j * width`` pixels right and ``i * height`` pixels
    down of the source's own place, so the copies' geotransforms follow on from each other. The
    band descriptions, metadata and nodata of ``source`` are kept, and the source is named
    relative to the VRT.
    """
    from osgeo import gdal

    source, vrt_path = os.fspath(source), os.fspath(vrt_path)
    if copies < 1:
        raise InputError(f"the mosaic needs at least 1 copy per side (got {copies})")
    ds = gdal.Open(source)
    if ds is None:
        raise InputError(f"cannot open {source}")
    W, H = ds.RasterXSize, ds.RasterYSize
    root = ET.Element("VRTDataset", rasterXSize=str(W * copies), rasterYSize=str(H * copies))
    if ds.GetProjection():
        ET.SubElement(root, "SRS", dataAxisToSRSAxisMapping="1,2").text = ds.GetProjection()
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(float(v)) for v in ds.GetGeoTransform())
    relative = os.path.relpath(os.path.abspath(source), os.path.dirname(os.path.abspath(vrt_path)))
    for b in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(b)
        type_name = gdal.GetDataTypeName(band.DataType)
        block_x, block_y = band.GetBlockSize()
        node = ET.SubElement(root, "VRTRasterBand", dataType=type_name, band=str(b))
        metadata = band.GetMetadata()
        if metadata:
            md = ET.SubElement(node, "Metadata")
            for key, value in metadata.items():
                ET.SubElement(md, "MDI", key=key).text = value
        if band.GetDescription():
            ET.SubElement(node, "Description").text = band.GetDescription()
        if band.GetNoDataValue() is not None:
            ET.SubElement(node, "NoDataValue").text = _nodata_text(band.GetNoDataValue())
        for i in range(copies):
            for j in range(copies):
                src = ET.SubElement(node, "SimpleSource")
                ET.SubElement(src, "SourceFilename", relativeToVRT="1").text = relative
                ET.SubElement(src, "SourceBand").text = str(b)
                ET.SubElement(src, "SourceProperties", RasterXSize=str(W), RasterYSize=str(H),
                              DataType=type_name, BlockXSize=str(block_x), BlockYSize=str(block_y))
                ET.SubElement(src, "SrcRect", xOff="0", yOff="0", xSize=str(W), ySize=str(H))
                ET.SubElement(src, "DstRect", xOff=str(j * W), yOff=str(i * H),
                              xSize=str(W), ySize=str(H))
    ds = None
    ET.indent(root, space=" ")
    ET.ElementTree(root).write(vrt_path, encoding="utf-8", xml_declaration=False)
    return vrt_path


def write_mosaics(paths: Dict[str, str], copies: int) -> Dict[str, str]:
    """The image's and the truth abundances' N x N mosaic VRTs (see :func:`write_mosaic_vrt`)."""
    image_vrt, truth_vrt = _mosaic_paths(paths["image"], copies)
    write_mosaic_vrt(paths["image"], image_vrt, copies)
    write_mosaic_vrt(paths["abundances"], truth_vrt, copies)
    return {"mosaic": image_vrt, "mosaic_abundances": truth_vrt}


# ---------------------------------------------------------------------------------------------
# command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python scripts/make_large_scene.py",
        description="Write a large synthetic hyperspectral GeoTIFF (float32, tiled 256 x 256) "
                    "strip by strip, with truth abundances and endmembers beside it.")
    parser.add_argument("output", help="GeoTIFF to write, e.g. /data/large.tif")
    parser.add_argument("--size", nargs="+", type=int, default=[1000], metavar="N",
                        help="image size: SIZE (square) or HEIGHT WIDTH (default 1000)")
    parser.add_argument("--bands", type=int, default=224, help="number of bands (default 224)")
    parser.add_argument("--endmembers", type=int, default=4,
                        help=f"number of materials, 2 to {len(syn.MATERIALS)} (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--snr", type=float, default=30.0,
                        help="signal-to-noise ratio in dB (default 30; inf: no noise)")
    parser.add_argument("--no-pure", action="store_true",
                        help="no pure pixels: every abundance stays below 0.8")
    parser.add_argument("--no-nodata", action="store_true", help="do not blank a nodata region")
    parser.add_argument("--strip-rows", type=int, default=STRIP_ROWS,
                        help=f"rows made and written at a time (default {STRIP_ROWS}); the "
                             f"result does not depend on it")
    parser.add_argument("--interleave", choices=["BAND", "PIXEL"], default="BAND", type=str.upper,
                        help="GeoTIFF interleave (default BAND: the fastest reads from local disk)")
    parser.add_argument("--compress", choices=COMPRESSIONS, default="NONE", type=str.upper,
                        help="GeoTIFF compression of the image (default NONE)")
    parser.add_argument("--tile-vrt", type=int, default=None, metavar="N",
                        help="also write OUT_xN.vrt (and OUT_xN_truth_abundances.vrt): the image "
                             "repeated N x N times, without extra disk")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    t0 = time.perf_counter()

    def progress(fraction: float, message: str) -> None:
        if not args.quiet:
            print(f"{100 * fraction:5.1f}% {time.perf_counter() - t0:7.1f}s {message}",
                  file=sys.stderr, flush=True)

    try:
        if len(args.size) not in (1, 2):
            raise InputError(f"--size takes SIZE or HEIGHT WIDTH (got {len(args.size)} numbers)")
        height, width = (args.size * 2)[:2]
        if args.tile_vrt is not None and args.tile_vrt < 2:
            raise InputError(f"--tile-vrt must be at least 2 (got {args.tile_vrt})")
        scene = LargeScene(height, width, args.bands, args.endmembers, seed=args.seed,
                           snr_db=args.snr, pure_pixels=not args.no_pure,
                           nodata_region=not args.no_nodata)
        paths = write_large_scene(scene, args.output, strip_rows=args.strip_rows,
                                  interleave=args.interleave, compress=args.compress,
                                  progress=progress)
        if args.tile_vrt:
            paths.update(write_mosaics(paths, args.tile_vrt))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for kind, written in paths.items():
        print(f"{kind}: {written}")
    if not args.quiet:
        print(f"done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
