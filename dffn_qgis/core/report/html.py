"""The HTML report of a run: the endmember plot, a summary in words, the endmembers and the record."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ..io.scene import Scene
from ..run.result import UnmixResult


def report_html(scene: Scene, result: UnmixResult, png_bytes: Optional[bytes], paths: dict) -> str:
    """A self-contained HTML page: summary, endmember plot (embedded PNG), endmember table."""
    rows = "\n".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>"
                     for k, v in run_summary(scene, result))
    img = ""
    if png_bytes:
        img = (f'<img alt="endmember spectra" src="data:image/png;base64,'
               f'{base64.b64encode(png_bytes).decode("ascii")}">')
    record = json.dumps(result.record, indent=2, default=str, allow_nan=True)
    source = _lookup(result.record or {}, "input", "source") or scene.source
    return _PAGE.format(
        title=_esc(f"DFFN unmixing: {Path(str(source)).name or 'result'}"),
        summary=rows, image=img, endmembers=_endmember_table(scene, result),
        outputs=_outputs_list(paths), record=_esc(record))


def run_summary(scene: Scene, result: UnmixResult) -> List[Tuple[str, str]]:
    """(label, text) pairs describing the run, from ``result.record`` with the scene as fallback."""
    rec = result.record or {}
    loss = _lookup(rec, "final_loss")
    items = [
        ("Input", _lookup(rec, "input", "source") or scene.source),
        ("Size", f"{scene.height} x {scene.width} pixels ({scene.n_valid} valid)"),
        ("Bands", scene.n_bands),
        ("Endmembers", result.n_endmembers),
        ("Preset", _lookup(rec, "preset")),
        ("Device", _lookup(rec, "device")),
        ("Seed", _lookup(rec, "seed")),
        ("Epochs run", _lookup(rec, "epochs_run")),
        ("Final loss", _number(loss if loss is not None else result.loss)),
        ("Timings", _timings(_lookup(rec, "timings", "timing"))),
        ("Scaling", _lookup(rec, "scaling_rule") or _scaling_text(scene.scaling)),
    ]
    return [(k, str(v)) for k, v in items if v is not None and v != ""]


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


def _timings(value) -> Optional[str]:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_number(v)} s" for k, v in value.items())
    return None if value is None else str(value)


def _scaling_text(scaling: dict) -> Optional[str]:
    if not scaling:
        return None
    if "rule" in scaling:
        return str(scaling["rule"])
    return ", ".join(f"{k}: {v}" for k, v in scaling.items())


def _endmember_table(scene: Scene, result: UnmixResult) -> str:
    E = np.asarray(result.endmembers, dtype=np.float64)
    A = np.asarray(result.abundances, dtype=np.float64)
    key, axis = scene.spectral_axis(E.shape[0])
    unit = f" ({scene.wavelength_units})" if key == "wavelength" and scene.wavelength_units else ""
    head = (f"<tr><th>endmember</th><th>mean abundance</th><th>dominant in (pixels)</th>"
            f"<th>dominant area (km²)</th><th>mean error where dominant (rad)</th><th>peak value</th>"
            f"<th>{_esc(key + unit)} of peak</th></tr>")
    summary = result.record.get("endmember_summary") or [{} for _ in result.endmember_names]
    lines = []
    for i, name in enumerate(result.endmember_names):
        maps = A[i][np.isfinite(A[i])]
        mean = f"{maps.mean():.4f}" if maps.size else "n/a"
        peak = int(np.argmax(E[:, i]))
        row = summary[i]
        area = row.get("dominant_area_m2")
        fit = row.get("mean_error_where_dominant_rad")
        lines.append(f"<tr><td>{_esc(name)}</td><td>{mean}</td><td>{row.get('dominant_pixels', 'n/a')}</td>"
                     f"<td>{'n/a' if area is None else f'{area / 1e6:.4g}'}</td>"
                     f"<td>{'n/a' if fit is None else f'{fit:.4f}'}</td><td>{E[peak, i]:.4f}</td>"
                     f"<td>{axis[peak]:.10g}</td></tr>")
    return f"<table>{head}\n" + "\n".join(lines) + "</table>"


def _outputs_list(paths: dict) -> str:
    items = []
    for key, value in paths.items():
        for p in (value if isinstance(value, list) else [value]):
            if p is not None:
                items.append(f"<li>{_esc(key)}: <code>{_esc(Path(p).name)}</code></li>")
    return "<ul>" + "".join(items) + "</ul>"


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
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }}
img {{ max-width: 100%; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
</style>
</head>
<body>
<h1>{title}</h1>
<h2>Run summary</h2>
<table>
{summary}
</table>
<h2>Endmember spectra</h2>
{image}
{endmembers}
<h2>Files</h2>
{outputs}
<details><summary>Full run record</summary><pre>{record}</pre></details>
</body>
</html>
"""
