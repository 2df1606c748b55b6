"""Endmember plots: axes, legend, colours, file formats, no pyplot, worker threads."""
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from dffn_qgis.core.report.plotting import (LEGEND_WIDTH, distinct_colours, draw_endmembers, endmember_figure,
                                            figure_to_png_bytes, save_figure)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
E = np.random.default_rng(0).uniform(0, 1, (20, 4))


def test_axes_with_wavelengths():
    fig = endmember_figure(E, wavelengths=np.linspace(400, 1000, 20), units="nm",
                           names=["soil", "tree", "water", "road"], title="My title")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "wavelength (nm)"
    assert ax.get_ylabel() == "reflectance (scaled)"
    assert ax.get_title() == "My title"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["soil", "tree", "water", "road"]
    lines = ax.get_lines()
    assert len(lines) == 4
    np.testing.assert_allclose(lines[0].get_xdata(), np.linspace(400, 1000, 20))
    assert len({to_hex(line.get_color()) for line in lines}) == 4


def test_band_axis_without_wavelengths():
    ax = endmember_figure(E).axes[0]
    assert ax.get_xlabel() == "band"
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), np.arange(1, 21))
    assert ax.get_legend().get_texts()[0].get_text() == "endmember 1"


def test_long_names_neither_widen_the_legend_nor_shrink_a_narrow_plot():
    """Seen in QGIS 3.40's spectra panel: "endmember 1 (unmatched, nearest: vegetation, 0.16 rad)"
    in a constrained-layout legend squeezed the axes to a few pixels (and the toolbar zoom with them)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    long = "endmember 1 (unmatched, nearest: vegetation, 0.16 rad)"
    fig = Figure(figsize=(2.75, 1.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    draw_endmembers(ax, E[:, :2], names=[long, "soil"], title=None, legend_size=7)
    fig.canvas.draw()
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[1] == "soil" and texts[0].replace("\n", " ") == long
    assert max(len(line) for line in texts[0].splitlines()) <= LEGEND_WIDTH
    assert not ax.get_legend().get_in_layout()
    assert ax.get_window_extent().width > 0.6 * fig.bbox.width        # not squeezed by the legend


def test_distinct_colours_for_many():
    for n in (3, 12, 25):
        assert len({to_hex(c) for c in distinct_colours(n)}) == n


def test_save_with_any_file_name(tmp_path):
    fig = endmember_figure(E)
    png, svg = tmp_path / ".plot.png.part-1", tmp_path / ".plot.svg.part-1"
    save_figure(fig, png, svg)
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert "<svg" in svg.read_text()
    save_figure(fig, path_png=tmp_path / "only.png")
    assert (tmp_path / "only.png").is_file() and not (tmp_path / "only.svg").exists()


def test_png_bytes():
    assert figure_to_png_bytes(endmember_figure(E)).startswith(PNG_SIGNATURE)


def test_works_in_a_worker_thread():
    out = {}

    def work():
        out["png"] = figure_to_png_bytes(endmember_figure(E))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert out["png"].startswith(PNG_SIGNATURE)


def test_pyplot_never_imported():
    root = Path(__file__).resolve().parents[3]
    code = ("import sys; import dffn_qgis.core.report.plotting as p, dffn_qgis.core.io.outputs, numpy as np; "
            "p.figure_to_png_bytes(p.endmember_figure(np.ones((3, 2)))); "
            "assert 'matplotlib.pyplot' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def test_bands_are_drawn_in_wavelength_order_and_the_line_breaks_at_gaps():
    from dffn_qgis.core.report.plotting import plot_order

    x = np.array([400, 410, 420, 993, 902, 912, 922, 1300, 1310, 1500, 1510.0])   # EnMAP-like overlap
    order, breaks = plot_order(x)
    assert np.all(np.diff(x[order]) > 0)
    assert list(breaks) == [3, 6, 7, 9]
    fig = endmember_figure(np.ones((x.size, 2)), x, "nm", ["a", "b"], ylabel="reflectance")
    line = fig.axes[0].get_lines()[0]
    assert np.isnan(line.get_xdata()).sum() == 4 and fig.axes[0].get_ylabel() == "reflectance"
