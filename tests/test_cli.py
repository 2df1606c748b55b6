"""The command line: help, clear one-line errors with exit code 2, a real run and evaluate."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dffn_qgis.core.eval import synthetic

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "dffn_qgis", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_tif(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    s = synthetic.make_scene(16, 16, 20, 3, seed=11, snr_db=40)
    return Path(synthetic.write_geotiff(s, d / "tiny.tif")["image"])


def test_help_explains_every_option():
    out = cli("unmix", "--help").stdout
    for option in ("--endmembers", "--output-dir", "--preset", "--device", "--seed", "--epochs", "--bands",
                   "--lr", "--starts", "--w", "--kernel", "--precision", "--threads"):
        assert option in out
    assert "evaluate" in cli("--help").stdout


@pytest.mark.parametrize("args,message", [
    (["unmix", "missing.tif", "-p", "3", "-o", "x"], "not found"),
    (["unmix", "{tif}", "-p", "1", "-o", "x"], "at least 2"),
    (["unmix", "{tif}", "-p", "3", "-o", "x", "--device", "tpu"], "unknown device"),
    (["unmix", "{tif}", "-p", "3", "-o", "x", "--bands", "1,999"], "999"),
    (["unmix", "{tif}", "-p", "3", "-o", "x", "--w", "2"], "w must be at most 1"),
    (["unmix", "{tif}", "-p", "30", "-o", "x"], "bands"),
    (["evaluate", "nowhere", "--truth", "t.mat"], "not found"),
])
def test_bad_input_is_one_line_and_exit_2(tiny_tif, tmp_path, args, message):
    args = [a.replace("{tif}", str(tiny_tif)) if isinstance(a, str) else a for a in args]
    args = [str(tmp_path / "out") if a == "x" else a for a in args]
    res = cli(*args)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("dffn: error:")]
    # progress lines may come first; the error itself is one line, the last one
    assert errors == [lines[-1]] and message in lines[-1], res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_preset_is_rejected_by_argparse(tiny_tif, tmp_path):
    res = cli("unmix", tiny_tif, "-p", "3", "-o", tmp_path, "--preset", "turbo")
    assert res.returncode == 2 and "invalid choice" in res.stderr


def test_unmix_then_evaluate(tiny_tif, tmp_path):
    out = tmp_path / "out"
    res = cli("unmix", tiny_tif, "-p", "3", "-o", out, "--preset", "paper", "--epochs", "5", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    assert (out / "tiny_abundances.tif").exists() and (out / "tiny_report.html").exists()
    truth = tiny_tif.with_name("tiny_truth_abundances.tif")
    ev = cli("evaluate", out, "--truth", truth)
    assert ev.returncode == 0, ev.stderr
    assert "mean SAD" in ev.stdout and "rad (" in ev.stdout and "mean RMSE" in ev.stdout
    js = json.loads(cli("evaluate", out, "--truth", truth, "--json").stdout)
    assert 0 <= js["mean_sad_rad"] < 1.6 and js["one_to_one"]["sad_deg"]


def test_count_prints_the_estimates_and_writes_its_report(tmp_path):
    s = synthetic.make_scene(40, 40, 60, 4, seed=12, snr_db=35)
    tif = Path(synthetic.write_geotiff(s, tmp_path / "four.tif")["image"])
    res = cli("count", tif, "--json", "--report", tmp_path / "rep" / "count.html")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["recommended"] == 4 and data["rmt"] == 4 and data["hysime"] == 4 and data["pixels_used"] > 1000
    assert (tmp_path / "rep" / "count.html").exists() and (tmp_path / "rep" / "count.png").stat().st_size > 1000
    assert "recommended 4" in cli("count", tif).stdout


def test_auto_endmembers_uses_the_estimate_and_records_it(tmp_path):
    s = synthetic.make_scene(24, 24, 40, 3, seed=13, snr_db=40)
    tif = Path(synthetic.write_geotiff(s, tmp_path / "three.tif")["image"])
    out = tmp_path / "out"
    res = cli("unmix", tif, "-p", "auto", "-o", out, "--preset", "paper", "--epochs", "3", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    assert "unmixing with 3 endmembers" in res.stderr
    record = json.loads((out / "three_abundances.json").read_text())
    assert record["params"]["n_endmembers"] == 3 and record["endmember_count"]["recommended"] == 3
    assert cli("unmix", tif, "-p", "many", "-o", out).returncode == 2


def test_water_vapour_bands_are_left_out_unless_kept(tmp_path):
    s = synthetic.make_scene(16, 16, 40, 3, seed=14, snr_db=40)
    tif = Path(synthetic.write_geotiff(s, tmp_path / "w.tif")["image"])
    common = ["-p", "3", "--preset", "paper", "--epochs", "2", "--device", "cpu", "--library", "none"]
    assert cli("unmix", tif, "-o", tmp_path / "a", *common).returncode == 0
    assert cli("unmix", tif, "-o", tmp_path / "b", *common, "--keep-bad-bands").returncode == 0
    dropped = json.loads((tmp_path / "a" / "w_abundances.json").read_text())["bands_used"]
    kept = json.loads((tmp_path / "b" / "w_abundances.json").read_text())["bands_used"]
    assert kept == list(range(1, 41)) and len(dropped) < 40 and set(dropped) < set(kept)
