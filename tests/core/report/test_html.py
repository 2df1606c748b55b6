"""The HTML report: names and colours, a thumbnail per abundance map, error statistics, the parameters
in words, every file as a full-path link, no internal key."""
import base64
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from test_outputs import P, make_result, make_scene  # noqa: E402

from dffn_qgis.core.io.outputs import plan_outputs, write_outputs  # noqa: E402
from dffn_qgis.core.report.plotting import distinct_colours, hex_colour  # noqa: E402
from dffn_qgis.core.report.summary import error_statistics  # noqa: E402
from dffn_qgis.core.run.parameters import BY_NAME  # noqa: E402


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    scene = make_scene()
    result = make_result(scene)
    result.names = ["vegetation", "soil", "endmember 3 (unmatched, nearest: water, 0.30 rad)"]
    result.record.update({"params": {"n_endmembers": 3, "epochs": 600, "lr": 0.001, "schedule": "cosine"},
                          "timings": {"read_s": 0.5, "ffm_s": 1.5, "training_s": 20.25},
                          "notes": ["2 bands flagged bad were left out"]})
    paths = write_outputs(plan_outputs(tmp_path_factory.mktemp("out"), "run1"), scene, result)
    return result, paths, Path(paths["report_html"]).read_text(encoding="utf-8")


def _visible(page):
    """The page without the embedded pictures."""
    return re.sub(r"base64,[A-Za-z0-9+/=]+", "", page)


def test_a_thumbnail_with_its_colour_bar_per_abundance_map_and_the_error_map(report):
    result, paths, page = report
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    alts = [alt for alt, _ in images]
    assert alts == ["endmember spectra"] + ["abundance of " + n for n in result.endmember_names] + [
        "reconstruction error"]
    for _, data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "from white (none) to its colour" in page


def test_each_endmember_has_the_plots_colour(report):
    result, _, page = report
    colours = [hex_colour(c) for c in distinct_colours(P)]
    swatches = re.findall(r'class="swatch" style="background:(#[0-9a-f]{6})"', page)
    assert swatches == colours + colours          # the endmember table, then the maps' captions


def test_error_statistics_in_radians_and_degrees(report):
    result, paths, page = report
    valid = result.error[np.isfinite(result.error)].astype(np.float64)
    for label, value in (("mean", valid.mean()), ("median", np.median(valid)),
                         ("95th percentile", np.percentile(valid, 95))):
        assert f"<th>{label}</th><td>{value:.4f}</td><td>{math.degrees(value):.2f}</td>" in page, label
    stats = error_statistics(result.error)
    assert stats["pixels"] == valid.size and stats["p95_rad"] == pytest.approx(np.percentile(valid, 95))
    import json
    assert json.loads(Path(paths["record_json"]).read_text())["reconstruction_error"] == pytest.approx(stats)


def test_parameters_in_words(report):
    _, _, page = report
    for name, shown in (("n_endmembers", "3"), ("epochs", "600"), ("lr", "0.001"), ("schedule", "cosine")):
        assert f"<tr><th>{BY_NAME[name].label}</th><td>{shown}</td></tr>" in page, name


def test_every_file_as_a_full_path_link(report):
    _, paths, page = report
    files = [p for key, p in paths.items() if key != "abundances" and p] + paths["abundances"]
    for path in files:
        assert f'<a href="{Path(path).as_uri()}"><code>{path}</code></a>' in page, path
    assert "Abundance of vegetation (GeoTIFF)" in page and "Run record" in page


def test_no_internal_key_and_timings_in_words(report):
    _, paths, page = report
    text = _visible(page)
    keys = [key for key in paths if "_" in key]           # "stack", "error": plain words as well
    assert "record_json" in keys and "endmembers_sli" in keys
    for key in keys + ["ffm_s", "training_s", "read_s", "n_endmembers", "endmember_summary"]:
        assert not re.search(rf"\b{key}\b", text), key
    assert "reading 0.5 s, feature fusion 1.5 s, training 20.25 s" in text
    assert "2 bands flagged bad were left out" in text
