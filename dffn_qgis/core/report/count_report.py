"""The report of an endmember count: the noise-edge, HySime and HFC curves and the estimates in words."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..method.endmember_count import CountEstimate
from .plotting import DPI, figure_to_png_bytes

SHOWN = 30          # components shown on the curves


def count_figure(estimate: CountEstimate, source_name: str = "") -> Figure:
    """Left: the noise-whitened eigenvalues against the noise edge; middle: HySime's projected signal
    power against twice the noise power per eigenvector; right: HFC's correlation minus covariance
    eigenvalues. Log scales; the counts marked."""
    fig = Figure(figsize=(13.0, 3.8), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    k = np.arange(1, min(SHOWN, len(estimate.hysime_signal_power)) + 1)
    edge, left, right = fig.subplots(1, 3)
    edge.semilogy(k, np.abs(estimate.eigen_whitened[:len(k)]), "o-", ms=3, label="whitened eigenvalue")
    edge.axhline(estimate.noise_edge, color="C3", ls="--", lw=1, label="noise edge")
    if estimate.rmt < len(k):
        edge.axvline(estimate.rmt + 0.5, color="0.4", lw=1)
    edge.set_title(f"Noise edge (RMT): {estimate.rmt}", fontsize="medium")
    edge.set_xlabel("eigenvalue")
    edge.legend(fontsize="small")
    left.semilogy(k, np.abs(estimate.hysime_signal_power[:len(k)]), "o-", ms=3, label="signal power")
    left.semilogy(k, 2 * np.abs(estimate.hysime_noise_power[:len(k)]), "s--", ms=3, label="2 x noise power")
    if estimate.hysime < len(k):
        left.axvline(estimate.hysime + 0.5, color="0.4", lw=1)
    spatial = "" if estimate.hysime_spatial is None else f"; neighbour noise: {estimate.hysime_spatial}"
    left.set_title(f"HySime, noise by regression: {estimate.hysime}{spatial}", fontsize="medium")
    left.set_xlabel("eigenvector")
    left.legend(fontsize="small")
    difference = (estimate.eigen_correlation - estimate.eigen_covariance)[:len(k)]
    right.semilogy(k, np.maximum(np.abs(difference), 1e-30), "o-", ms=3, label="|correlation - covariance|")
    if estimate.hfc < len(k):
        right.axvline(estimate.hfc + 0.5, color="0.4", lw=1)
    right.set_title(f"HFC (false-alarm rate {estimate.far:g}): {estimate.hfc}", fontsize="medium")
    right.set_xlabel("eigenvalue")
    right.legend(fontsize="small")
    fig.suptitle(f"Number of endmembers{': ' + source_name if source_name else ''}: recommended "
                 f"{estimate.recommended}")
    return fig


def count_html(estimate: CountEstimate, source: str) -> str:
    """A self-contained HTML page (the figure embedded)."""
    png = base64.b64encode(figure_to_png_bytes(count_figure(estimate, Path(source).name))).decode("ascii")
    rows = [("input", source), ("recommended", str(estimate.recommended)),
            ("noise edge, random matrix theory (noise by regression across bands)", str(estimate.rmt)),
            ("HySime (noise by regression across bands)", str(estimate.hysime)),
            ("HySime (noise from neighbouring pixels)", "-" if estimate.hysime_spatial is None
             else str(estimate.hysime_spatial)),
            (f"HFC virtual dimensionality (false-alarm rate {estimate.far:g})", str(estimate.hfc)),
            ("pixels used", str(estimate.n_pixels))]
    table = "".join(f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td></tr>" for a, b in rows)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in estimate.notes)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>DFFN endmember count</title></head>"
            f"<body style='font-family:sans-serif'><h1>How many endmembers</h1>"
            f"<p>{html.escape(estimate.describe())}</p>"
            f"<img alt='count curves' src='data:image/png;base64,{png}'><table>{table}</table>"
            f"{'<ul>' + notes + '</ul>' if notes else ''}"
            f"<pre>{html.escape(json.dumps(estimate.to_dict(), indent=2))}</pre></body></html>")
