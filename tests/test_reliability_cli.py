"""Bad input and faults on the command line: one line on stderr, exit code 2 (1 for a fault of
the program), no traceback, no hang, nothing written; awkward but usable input runs with a note.

Most cases call ``cli.main`` in this process (fast); a few start ``python -m dffn_qgis`` to check
the real exit code and stderr. Everything is tiny: 16 x 16 pixels, 8 bands, 2 epochs.
"""
import errno
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dffn_qgis import cli
from dffn_qgis.core.io import outputs
from dffn_qgis.core.run import driver, pipeline

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reliability_cases as cases  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--preset", "paper", "--epochs", "2", "--device", "cpu", "--threads", "1"]


def run(capfd, *args):
    try:
        rc = cli.main([str(a) for a in args])
    except SystemExit as exc:                      # argparse's errors exit by themselves
        rc = exc.code
    out, err = capfd.readouterr()
    return rc, out, err


def assert_one_line_error(err, fragment, prefix="dffn: error:"):
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    errors = [line for line in lines if line.startswith("dffn: ")]
    # progress lines may come first; the error is one line, the last one
    assert errors == [lines[-1]], err
    assert lines[-1].startswith(prefix) and fragment in lines[-1], err


@pytest.fixture
def good_tif(tmp_path):
    return cases.ok(tmp_path / "good.tif")


# ---------------------------------------------------------------------------------------------
# bad input files and parameters

@pytest.mark.parametrize("name", sorted(cases.BAD_INPUTS))
def test_bad_input(name, tmp_path, capfd):
    build, endmembers, fragment = cases.BAD_INPUTS[name]
    path = build(tmp_path / "input.tif")
    out = tmp_path / "out"
    rc, _, err = run(capfd, "unmix", path, "-p", endmembers, "-o", out, *FAST)
    assert rc == 2
    assert_one_line_error(err, fragment)
    assert not out.exists()


@pytest.mark.parametrize("args,fragment", [
    (["--bands", "1-3,999"], "band 999 does not exist"),
    (["--bands", "0,1,2,3"], "band 0 does not exist"),
    (["--bands", "1,1,2,3"], "listed twice"),
    (["--bands", "1-2"], "need at least 4 bands; 2 were chosen"),
    (["--bands", "a-b"], "not a band list"),
    (["--preset", "turbo"], "invalid choice"),
    (["--device", "tpu"], "unknown device"),
    (["--device", "cuda:x"], "unknown device"),
    (["--precision", "float8"], "invalid choice"),
    (["--epochs", "0"], "epochs must be at least 1"),
    (["--lr", "-1"], "lr must be at least 1e-08"),
    (["--kernel", "4"], "kernel size must be an odd number"),
    (["--w", "2"], "w must be at most 1"),
    (["--starts", "0"], "starts must be at least 1"),
    (["--lr", "nan"], "lr must be a finite number"),
    (["--lr", "inf"], "lr must be a finite number"),
    (["--a", "nan"], "a must be a finite number"),
    (["--w", "nan"], "w must be a finite number"),
    (["--lr-step", "0"], "lr_step must be at least 1"),
    (["--schedule", "linear"], "invalid choice"),
    (["--seed", str(2 ** 70)], "seed must be at most 2147483647"),
    (["--patience", "-1"], "patience must be at least 0"),
    (["--endmembers", "three"], "invalid int value"),
])
def test_bad_parameter(args, fragment, good_tif, tmp_path, capfd):
    out = tmp_path / "out"
    argv = ["unmix", good_tif, "-p", "3", "-o", out, *FAST, *args]
    if args[0] == "--endmembers":
        argv = ["unmix", good_tif, "-o", out, *FAST, *args]
    rc, _, err = run(capfd, *argv)
    assert rc == 2
    assert_one_line_error(err, fragment)
    assert not out.exists()


def test_cuda_without_a_gpu_is_a_clear_error(good_tif, tmp_path, capfd):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    out = tmp_path / "out"
    rc, _, err = run(capfd, "unmix", good_tif, "-p", 3, "-o", out, "--preset", "paper",
                     "--epochs", 2, "--device", "cuda")
    assert rc == 2
    assert_one_line_error(err, "torch sees no CUDA device")
    assert not out.exists()


def test_auto_device_without_a_gpu_uses_the_cpu_and_says_so(good_tif, tmp_path, capfd):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    rc, _, err = run(capfd, "unmix", good_tif, "-p", 3, "-o", tmp_path / "out", "--preset",
                     "paper", "--epochs", 2, "--device", "auto", "--threads", 1)
    assert rc == 0, err
    assert "no CUDA device visible to torch, using the CPU" in err


def test_too_many_endmembers_are_refused_before_the_image_is_read(good_tif, tmp_path, capfd,
                                                                  monkeypatch):
    def no_reading(*args, **kwargs):
        raise AssertionError("the image was read")

    monkeypatch.setattr(pipeline, "read_scene", no_reading)
    rc, _, err = run(capfd, "unmix", good_tif, "-p", 20, "-o", tmp_path / "out", *FAST)
    assert rc == 2
    assert_one_line_error(err, "20 endmembers need at least 21 bands; the image has 8")


# ---------------------------------------------------------------------------------------------
# awkward but usable input

@pytest.mark.parametrize("name", sorted(cases.GOOD_INPUTS))
def test_awkward_input_runs(name, tmp_path, capfd):
    build, note = cases.GOOD_INPUTS[name]
    path = build(tmp_path / "input.tif")
    out = tmp_path / "out"
    rc, _, err = run(capfd, "unmix", path, "-p", 3, "-o", out, *FAST)
    assert rc == 0, err
    from osgeo import gdal
    ds = gdal.Open(str(out / "input_abundances.tif"))
    data = ds.ReadAsArray()
    nodata = ds.GetRasterBand(1).GetNoDataValue()
    ds = None
    values = data[data != nodata]
    assert values.size and np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1
    if note is not None:
        assert note in err, err
    if name == "nan_and_inf_in_places":       # the masked pixels are nodata in the output
        assert (data[:, 2:4, 2:6] == nodata).all() and (data[:, 10, 10] == nodata).all()


# ---------------------------------------------------------------------------------------------
# output folders and file systems

def test_output_folder_is_a_file(good_tif, tmp_path, capfd):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    rc, _, err = run(capfd, "unmix", good_tif, "-p", 3, "-o", blocker / "out", *FAST)
    assert rc == 2
    assert_one_line_error(err, "cannot write to the output folder")
    assert blocker.read_text() == "x"


def test_read_only_output_folder(good_tif, tmp_path, capfd):
    target = tmp_path / "ro"
    with cases.tmpfs(target, "1m", read_only=True) as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        rc, _, err = run(capfd, "unmix", good_tif, "-p", 3, "-o", target, *FAST)
        assert rc == 2
        assert_one_line_error(err, "cannot write to the output folder")
        assert cases.files_in(target) == []


@pytest.mark.parametrize("size", ["8k", "40k"])   # full inside GDAL / full while plotting
def test_disk_full_while_writing(size, good_tif, tmp_path, capfd):
    target = tmp_path / "small"
    with cases.tmpfs(target, size) as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        rc, _, err = run(capfd, "unmix", good_tif, "-p", 3, "-o", target, *FAST)
        assert rc == 2
        assert_one_line_error(err, "No space left on device")
        assert cases.files_in(target) == []          # partial files removed


def test_existing_outputs_are_kept_when_the_new_run_fails(good_tif, tmp_path, capfd, monkeypatch):
    out = tmp_path / "out"
    assert run(capfd, "unmix", good_tif, "-p", 3, "-o", out, *FAST)[0] == 0
    before = {name: (out / name).read_bytes() for name in cases.files_in(out)}

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs, "write_endmember_csv", full)
    rc, _, err = run(capfd, "unmix", good_tif, "-p", 3, "-o", out, *FAST, "--seed", 7)
    assert rc == 2
    assert_one_line_error(err, "No space left on device")
    assert {name: (out / name).read_bytes() for name in cases.files_in(out)} == before


def test_input_is_not_modified_nor_left_open(good_tif, tmp_path, capfd):
    digest = hashlib.sha256(Path(good_tif).read_bytes()).hexdigest()
    mtime = os.stat(good_tif).st_mtime_ns
    assert run(capfd, "unmix", good_tif, "-p", 3, "-o", tmp_path / "out", *FAST)[0] == 0
    assert hashlib.sha256(Path(good_tif).read_bytes()).hexdigest() == digest
    assert os.stat(good_tif).st_mtime_ns == mtime
    assert not [fd for fd in os.listdir("/proc/self/fd")
                if os.path.realpath(f"/proc/self/fd/{fd}") == os.path.realpath(good_tif)]
    assert not list(Path(good_tif).parent.glob("*.aux.xml"))   # no sidecar written beside it


# ---------------------------------------------------------------------------------------------
# faults inside the engine

def test_unexpected_exception_is_one_line_exit_1_and_the_next_run_works(good_tif, tmp_path, capfd,
                                                                       monkeypatch):
    threads = torch.get_num_threads()
    reference = run(capfd, "unmix", good_tif, "-p", 3, "-o", tmp_path / "a", *FAST)
    assert reference[0] == 0

    def broken(*args, **kwargs):
        raise RuntimeError("something broke\ninside the engine")

    monkeypatch.setattr(driver, "train_with_cpu_fallback", broken)
    rc, _, err = run(capfd, "unmix", good_tif, "-p", 3, "-o", tmp_path / "b", *FAST)
    assert rc == 1
    assert_one_line_error(err, "RuntimeError: something broke inside the engine",
                          prefix="dffn: internal error:")
    assert not (tmp_path / "b").exists()
    monkeypatch.undo()
    assert torch.get_num_threads() == threads
    assert run(capfd, "unmix", good_tif, "-p", 3, "-o", tmp_path / "c", *FAST)[0] == 0
    same = [(tmp_path / d / "good_abundances.tif").read_bytes() for d in ("a", "c")]
    assert same[0] == same[1]                      # no state left behind by the failed run


def test_non_finite_loss_is_a_clear_error(good_tif, tmp_path, capfd, monkeypatch):
    def diverged(*args, **kwargs):
        raise FloatingPointError("training loss is not finite")

    monkeypatch.setattr(driver, "train_with_cpu_fallback", diverged)
    rc, _, err = run(capfd, "unmix", good_tif, "-p", 3, "-o", tmp_path / "out", *FAST)
    assert rc == 2
    assert_one_line_error(err, "try a lower learning rate")


# ---------------------------------------------------------------------------------------------
# the real process

def cli_process(*args, env=None):
    return subprocess.run([sys.executable, "-m", "dffn_qgis", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)


def test_process_truncated_file_and_bad_argument(tmp_path):
    res = cli_process("unmix", cases.truncated(tmp_path / "t.tif"), "-p", 3, "-o", tmp_path / "o", *FAST)
    assert res.returncode == 2 and res.stdout == ""
    assert_one_line_error(res.stderr, "truncated or damaged")
    res = cli_process("unmix", "x.tif", "-p", 3, "-o", tmp_path / "o", "--preset", "turbo")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert_one_line_error(res.stderr, "invalid choice")
    assert not (tmp_path / "o").exists()


def test_process_internal_fault_hides_the_traceback_unless_asked(tmp_path):
    code = ("import sys; from dffn_qgis import cli; from dffn_qgis.core.run import driver\n"
            "def boom(*a, **k): raise KeyError('oops')\n"
            "driver.train_with_cpu_fallback = boom\n"
            "sys.exit(cli.main(sys.argv[1:]))\n")
    good = cases.ok(tmp_path / "g.tif")
    args = [sys.executable, "-c", code, "unmix", good, "-p", "3", "-o", str(tmp_path / "o"), *FAST]
    res = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert_one_line_error(res.stderr, "KeyError", prefix="dffn: internal error:")
    env = dict(os.environ, DFFN_DEBUG="1")
    res = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 1 and "Traceback" in res.stderr
