"""The HTML report of a run, a page an analyst keeps: what was unmixed and how, the endmembers (plot,
names, colours, figures), a thumbnail of every abundance map with its colour bar, the reconstruction
error's statistics, the parameters in words and every file written, as links.

One self-contained file: the pictures are embedded as data URIs, so the page can be moved, mailed or
archived without the files beside it, and it is written (all or nothing) with the other outputs.
"""
from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ..io.scene import Scene
from ..run.parameters import SCHEMA
from ..run.result import UnmixResult
from .plotting import abundance_ramp, hex_colour
from .summary import error_statistics
from .thumbnails import map_png, named_colourmap, ramp_colourmap

# The files of a run (the keys of ``write_outputs``'s paths), in words.
FILE_LABELS = {
    "stack": "Abundances, one band per endmember (GeoTIFF)",
    "endmembers_csv": "Endmember spectra (CSV)",
    "endmembers_sli": "Endmember spectra (ENVI spectral library, .hdr beside it)",
    "plot_png": "Endmember spectra plot (PNG)",
    "plot_svg": "Endmember spectra plot (SVG)",
    "report_html": "This report",
    "error": "Reconstruction error, spectral angle in radians (GeoTIFF)",
    "dominant": "Dominant endmember, one class per endmember (GeoTIFF)",
    "record_json": "Run record: every parameter, timing and version (JSON)",
}

# The steps the run record times (``timings``), in words.
STEP_LABELS = {"read": "reading", "ffm": "feature fusion", "training": "training", "tiles": "abundances tile by tile",
               "solve": "solving", "write": "writing", "total": "total"}

ERROR_RAMP = "magma"        # the reconstruction error layer's ramp in QGIS, 0 to the largest angle


def report_html(scene: Scene, result: UnmixResult, png_bytes: Optional[bytes], paths: dict) -> str:
    """The page of a run; ``paths`` are the final paths of the files written (``None``: not written)."""
    rec = result.record or {}
    source = _lookup(rec, "input", "source") or scene.source
    plot = _img(png_bytes, "endmember spectra") if png_bytes else ""
    return _PAGE.format(
        title=_esc(f"DFFN unmixing: {Path(str(source)).name or 'result'}"),
        summary=_rows(run_summary(scene, result, paths)), plot=plot,
        endmembers=_endmember_table(scene, result), maps=_abundance_maps(result),
        error=_error_section(result), parameters=_parameters(rec), files=_files(paths, result.endmember_names),
        notes=_notes(rec))


def run_summary(scene: Scene, result: UnmixResult, paths: Optional[dict] = None) -> List[Tuple[str, str]]:
    """(label, HTML) pairs describing the run, from ``result.record`` with the scene as fallback."""
    rec = result.record or {}
    loss = _lookup(rec, "final_loss")
    epochs = _lookup(rec, "epochs_run")
    if epochs is not None and rec.get("stopped_early"):
        epochs = f"{epochs} (stopped early: the loss no longer improved)"
    items = [
        ("Input", _link(_lookup(rec, "input", "source") or scene.source)),
        ("Size", _esc(f"{scene.height} x {scene.width} pixels ({scene.n_valid} valid)")),
        ("Bands used", _esc(scene.n_bands)),
        ("Endmembers", _esc(result.n_endmembers)),
        ("Spectra given", _link(rec.get("spectra"))),
        ("Solver", _esc_or_none(rec.get("solver"))),
        ("Band matching", _esc_or_none(rec.get("band_matching"))),
        ("Method", _esc_or_none(rec.get("method"))),
        ("Preset", _esc_or_none(_lookup(rec, "preset"))),
        ("Device", _esc_or_none(_lookup(rec, "device"))),
        ("Training precision", _esc_or_none(rec.get("precision"))),
        ("Epochs run", _esc_or_none(epochs)),
        ("Final loss", _esc(_number(loss if loss is not None else result.loss))),
        ("Time", _esc_or_none(_timings(_lookup(rec, "timings", "timing")))),
        ("Scaling", _esc_or_none(_lookup(rec, "scaling_rule") or _scaling_text(scene.scaling))),
        ("Created", _esc_or_none(rec.get("created"))),
    ]
    return [(k, v) for k, v in items if v]


# --------------------------------------------------------------------------------------- sections

def _endmember_table(scene: Scene, result: UnmixResult) -> str:
    E = np.asarray(result.endmembers, dtype=np.float64)
    A = result.abundances
    key, axis = scene.spectral_axis(E.shape[0])
    unit = f" ({scene.wavelength_units})" if key == "wavelength" and scene.wavelength_units else ""
    head = (f"<tr><th>colour</th><th>endmember</th><th>mean abundance</th><th>dominant in (pixels)</th>"
            f"<th>dominant area (km²)</th><th>mean error where dominant (rad)</th><th>peak value</th>"
            f"<th>{_esc(key + unit)} of peak</th></tr>")
    summary = result.record.get("endmember_summary") or [{} for _ in result.endmember_names]
    count = len(result.endmember_names)
    lines = []
    for i, name in enumerate(result.endmember_names):
        maps = A[i][np.isfinite(A[i])]
        mean = f"{maps.mean(dtype=np.float64):.4f}" if maps.size else "n/a"
        peak = int(np.argmax(E[:, i]))
        row = summary[i]
        area = row.get("dominant_area_m2")
        fit = row.get("mean_error_where_dominant_rad")
        lines.append(f"<tr><td>{_swatch(i, count)}</td><td>{_esc(name)}</td><td>{mean}</td>"
                     f"<td>{row.get('dominant_pixels', 'n/a')}</td>"
                     f"<td>{'n/a' if area is None else f'{area / 1e6:.4g}'}</td>"
                     f"<td>{'n/a' if fit is None else f'{fit:.4f}'}</td><td>{E[peak, i]:.4f}</td>"
                     f"<td>{axis[peak]:.10g}</td></tr>")
    return f"<table>{head}\n" + "\n".join(lines) + "</table>"


def _abundance_maps(result: UnmixResult) -> str:
    A = result.abundances
    count = len(result.endmember_names)
    figures = []
    for i, name in enumerate(result.endmember_names):
        png = map_png(A[i], ramp_colourmap(abundance_ramp(i, count)), 0.0, 1.0, "fraction")
        figures.append(f'<figure>{_img(png, "abundance of " + name)}'
                       f"<figcaption>{_swatch(i, count)} {_esc(name)}</figcaption></figure>")
    return '<div class="maps">' + "".join(figures) + "</div>"


def _error_section(result: UnmixResult) -> str:
    stats = error_statistics(result.error)
    if stats is None:
        return "<p>No valid pixel has a reconstruction error.</p>"
    rows = "".join(f"<tr><th>{label}</th><td>{stats[key]:.4f}</td><td>{math.degrees(stats[key]):.2f}</td></tr>"
                   for label, key in (("mean", "mean_rad"), ("median", "median_rad"),
                                      ("95th percentile", "p95_rad"), ("maximum", "max_rad")))
    top = stats["max_rad"] if stats["max_rad"] > 0 else 1.0
    png = map_png(result.error, named_colourmap(ERROR_RAMP), 0.0, top, "angle (rad)")
    return (f"<p>The spectral angle between each pixel and its reconstruction from the endmembers and "
            f"abundances, over {stats['pixels']} valid pixels: small means well explained.</p>"
            f"<div class=\"maps\"><table><tr><th></th><th>radians</th><th>degrees</th></tr>{rows}</table>"
            f"<figure>{_img(png, 'reconstruction error')}<figcaption>reconstruction error</figcaption></figure>"
            f"</div>")


def _parameters(rec: dict) -> str:
    params = rec.get("params")
    if not isinstance(params, dict) or not params:
        return ""
    rows = [(p.label, params[p.name]) for p in SCHEMA if p.name in params]
    body = "".join(f"<tr><th>{_esc(label)}</th><td>{_esc(_plain(value))}</td></tr>" for label, value in rows)
    return f"<h2>Parameters</h2>\n<table>{body}</table>"


def _files(paths: dict, names: List[str]) -> str:
    items = []
    for key, value in paths.items():
        if key == "abundances":
            items += [(f"Abundance of {name} (GeoTIFF)", p) for name, p in zip(names, value or [])]
        elif value is not None:
            items.append((FILE_LABELS.get(key, key.replace("_", " ").capitalize()), value))
    return "<ul>" + "".join(f"<li>{_esc(label)}: {_link(path)}</li>" for label, path in items) + "</ul>"


def _notes(rec: dict) -> str:
    notes = [n for n in rec.get("notes") or [] if n]
    if not notes:
        return ""
    return "<h2>Notes</h2>\n<ul>" + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>"


# --------------------------------------------------------------------------------------- pieces

def _lookup(record: dict, *keys):
    """The first of ``keys`` found in ``record`` or one level below it (e.g. ``params.seed``)."""
    for key in keys:
        if key in record:
            return record[key]
    for key in keys:
        for value in record.values():
            if isinstance(value, dict) and key in value:
                return value[key]
    return None


def _number(value) -> str:
    try:
        return f"{float(value):.6g}"
    except (TypeError, ValueError):
        return str(value)


def _plain(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _timings(value) -> Optional[str]:
    """``"feature fusion 1.5 s, training 20.25 s"`` from the record's ``{"ffm_s": 1.5, ...}``."""
    if isinstance(value, dict):
        parts = []
        for key, seconds in value.items():
            step = key[:-2] if key.endswith("_s") else key
            parts.append(f"{STEP_LABELS.get(step, step.replace('_', ' '))} {_number(seconds)} s")
        return ", ".join(parts)
    return None if value is None else str(value)


def _scaling_text(scaling: dict) -> Optional[str]:
    if not scaling:
        return None
    if "rule" in scaling:
        return str(scaling["rule"])
    return ", ".join(f"{k}: {v}" for k, v in scaling.items())


def _swatch(index: int, count: int) -> str:
    colour = hex_colour(abundance_ramp(index, count)[1])
    return f'<span class="swatch" style="background:{colour}" title="{colour}"></span>'


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _link(path) -> str:
    """The full path as a ``file://`` link (empty for no path)."""
    if not path:
        return ""
    full = os.path.abspath(str(path))
    try:
        uri = Path(full).as_uri()
    except ValueError:                         # not a local path: shown as it is
        return _esc(path)
    return f'<a href="{_esc(uri)}"><code>{_esc(full)}</code></a>'


def _rows(items: List[Tuple[str, str]]) -> str:
    return "\n".join(f"<tr><th>{_esc(k)}</th><td>{v}</td></tr>" for k, v in items)


def _esc_or_none(value) -> str:
    return "" if value is None or value == "" else _esc(value)


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 70em; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }}
img {{ max-width: 100%; }}
.maps {{ display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }}
figure {{ margin: 0; }}
figcaption {{ text-align: center; }}
.swatch {{ display: inline-block; width: 1.6em; height: 0.9em; border: 1px solid #888; vertical-align: middle; }}
code {{ word-break: break-all; }}
</style>
</head>
<body>
<h1>{title}</h1>
<h2>Run summary</h2>
<table>
{summary}
</table>
<h2>Endmembers</h2>
{plot}
{endmembers}
<h2>Abundance maps</h2>
<p>Each endmember's fraction per pixel, from white (none) to its colour (all of it), as its layer in QGIS;
grey: nodata.</p>
{maps}
<h2>Reconstruction error</h2>
{error}
{parameters}
<h2>Files</h2>
{files}
{notes}
</body>
</html>
"""
