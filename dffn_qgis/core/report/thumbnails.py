"""Small pictures of a run's maps for the report: one map with its colour bar, as PNG bytes.

Drawn with matplotlib's object API on an Agg canvas (worker threads, no pyplot), like the plot.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure

from .plotting import figure_to_png_bytes

MAX_SIDE = 240              # pixels of the map kept along its longer side (every n-th row and column)
NODATA_COLOUR = "#d9d9d9"   # nodata pixels: light grey, apart from the white of a zero fraction


def reduced(values: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """``values`` (rows, cols) with every n-th row and column, so that no side exceeds ``max_side``."""
    step = max(1, math.ceil(max(values.shape) / max_side))
    return values[::step, ::step]


def ramp_colourmap(stops: Sequence) -> LinearSegmentedColormap:
    """A colour map through ``stops`` (RGB tuples of 0-1 values) with nodata in :data:`NODATA_COLOUR`."""
    cmap = LinearSegmentedColormap.from_list("ramp", list(stops))
    cmap.set_bad(NODATA_COLOUR)
    return cmap


def named_colourmap(name: str):
    """matplotlib's colour map ``name`` ("magma") with nodata in :data:`NODATA_COLOUR`."""
    from matplotlib import colormaps

    cmap = colormaps[name].copy()
    cmap.set_bad(NODATA_COLOUR)
    return cmap


def map_png(values: np.ndarray, cmap, vmin: float, vmax: float, label: str) -> bytes:
    """One map (NaN: nodata) as a PNG of about 3 x 2.4 inches at 100 dpi, with a colour bar titled ``label``."""
    fig = Figure(figsize=(3.0, 2.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(np.asarray(reduced(values), dtype=np.float64)), cmap=cmap,
                      vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])                    # a frame, no ticks: a zero fraction is white like the page
    ax.set_yticks([])
    bar = fig.colorbar(image, ax=ax, shrink=0.9)
    bar.set_label(label, fontsize="small")
    bar.ax.tick_params(labelsize="small")
    return figure_to_png_bytes(fig)
