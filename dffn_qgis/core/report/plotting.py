"""Endmember plots, drawn with matplotlib's object API only.

Runs in worker threads (QGIS tasks), so it never imports ``matplotlib.pyplot`` and never touches
a GUI backend: every figure is a :class:`matplotlib.figure.Figure` on an Agg canvas.
"""
from __future__ import annotations

import io
import textwrap
from typing import Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 120


# Legend entries are wrapped at this many characters. The legend is also kept out of the
# constrained layout: in it, a legend wider than the axes shrinks them (to a few pixels in
# QGIS's narrow spectra panel).
LEGEND_WIDTH = 24


def plot_order(x: np.ndarray) -> tuple:
    """Indices that sort ``x`` and the positions (in sorted order) before which the line breaks: where
    the spacing exceeds 2.5 times the median one (bands left out between, water-vapour windows)."""
    order = np.argsort(x, kind="stable")
    steps = np.diff(x[order])
    positive = steps[steps > 0]
    if positive.size == 0:
        return order, np.array([], dtype=int)
    breaks = np.flatnonzero(steps > 2.5 * np.median(positive)) + 1
    return order, breaks


def endmember_figure(endmembers: np.ndarray, wavelengths: Optional[Sequence[float]] = None,
                     units: Optional[str] = None, names: Optional[Sequence[str]] = None,
                     title: Optional[str] = None, ylabel: str = "reflectance (scaled)") -> Figure:
    """Line plot of the endmember spectra (bands L x P), one distinct colour each.

    The x axis is the wavelength (with ``units`` when known) or, without wavelengths, the band
    number (1-based). Bands are drawn in wavelength order (overlapping detectors, such as EnMAP's
    VNIR and SWIR, do not loop back) and the line breaks across gaps (bands left out).
    """
    E = np.asarray(endmembers, dtype=np.float64)
    if E.ndim != 2:
        raise ValueError(f"endmembers must be (bands, count); got shape {E.shape}")
    fig = Figure(figsize=(8.0, 4.5), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    draw_endmembers(ax, E, wavelengths, units, names, title or "Endmember spectra", ylabel)
    return fig


def spectral_axis(n_bands: int, wavelengths: Optional[Sequence[float]] = None,
                  units: Optional[str] = None) -> tuple:
    """The x values of ``n_bands`` bands and their label: the wavelengths (with ``units`` when
    known) or, without them, the band number (1-based)."""
    if wavelengths is not None and len(wavelengths) == n_bands:
        return (np.asarray(wavelengths, dtype=np.float64),
                f"wavelength ({units})" if units else "wavelength")
    return np.arange(1, n_bands + 1, dtype=np.float64), "band"


def broken_line(x: np.ndarray, y: np.ndarray) -> tuple:
    """``x`` and ``y`` in wavelength order with NaN where the line breaks (see :func:`plot_order`)."""
    x = np.asarray(x, dtype=np.float64)
    order, breaks = plot_order(x)
    return (np.insert(x[order], breaks, np.nan),
            np.insert(np.asarray(y, dtype=np.float64)[order], breaks, np.nan))


def draw_endmembers(ax, endmembers: np.ndarray, wavelengths: Optional[Sequence[float]] = None,
                    units: Optional[str] = None, names: Optional[Sequence[str]] = None,
                    title: Optional[str] = "Endmember spectra", ylabel: str = "reflectance (scaled)",
                    legend_size="small") -> list:
    """Draw the endmember spectra (bands L x P) on ``ax`` as :func:`endmember_figure` does (the
    report's plot and QGIS's spectra panel share it); returns the lines."""
    E = np.asarray(endmembers, dtype=np.float64)
    L, P = E.shape
    x, xlabel = spectral_axis(L, wavelengths, units)
    names = list(names) if names is not None else [f"endmember {i + 1}" for i in range(P)]
    lines = []
    for i, colour in enumerate(distinct_colours(P)):
        xs, ys = broken_line(x, E[:, i])
        lines += ax.plot(xs, ys, color=colour, linewidth=1.6, label=legend_label(names[i]))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    add_legend(ax, legend_size)
    return lines


def add_legend(ax, fontsize):
    """The plot's legend, where it hides the least, kept out of the constrained layout (see
    ``LEGEND_WIDTH``)."""
    legend = ax.legend(loc="best", fontsize=fontsize)
    legend.set_in_layout(False)
    return legend


def legend_label(name: str, width: int = LEGEND_WIDTH) -> str:
    """``name`` broken into lines of at most ``width`` characters (a long name such as
    "endmember 1 (unmatched, nearest: vegetation, 0.16 rad)" would make the legend wider than a
    narrow plot)."""
    return textwrap.fill(name, width, break_long_words=False) if len(name) > width else name


def distinct_colours(n: int) -> list:
    """``n`` clearly different colours: the tab10 / tab20 palettes, then evenly spaced hues."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["hsv"](i / n) for i in range(n)]


# An abundance map goes from white (none of the endmember) to the endmember's own colour (all of it):
# the QGIS layer, its legend entry and the report's thumbnail use the same two stops.
ABUNDANCE_LOW = (1.0, 1.0, 1.0)


def abundance_ramp(index: int, count: int) -> tuple:
    """The two RGB stops (0 to 1, for fractions 0 and 1) of endmember ``index`` of ``count``."""
    return ABUNDANCE_LOW, tuple(float(c) for c in distinct_colours(count)[index][:3])


def hex_colour(rgb) -> str:
    """``"#1f77b4"`` for an RGB(A) tuple of 0-1 values."""
    return "#" + "".join(f"{int(round(255 * float(c))):02x}" for c in tuple(rgb)[:3])


def save_figure(fig: Figure, path_png=None, path_svg=None) -> None:
    """Write ``fig`` as PNG and/or SVG; the format is set explicitly, so any file name works."""
    if path_png is not None:
        fig.savefig(str(path_png), format="png", dpi=DPI)
    if path_svg is not None:
        fig.savefig(str(path_svg), format="svg")


def figure_to_png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (e.g. to embed in an HTML report)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()
