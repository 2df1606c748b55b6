"""Many scenes on a dask cluster (core/run/batch.py): the scene list, atomic and resumable scene
folders, and real LocalCluster runs (equal to single-process runs, a bad file among good ones, a
rerun, a worker killed in the middle of a scene)."""
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from dffn_qgis.core.errors import InputError
from dffn_qgis.core.eval import synthetic
from dffn_qgis.core.io.outputs import plan_outputs
from dffn_qgis.core.run import batch, service
from dffn_qgis.core.run.config import params_for

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (scripts/setup.sh)")

PARAMS = params_for("fast", n_endmembers=3, epochs=40, patience=0, restarts=0, threads=1, precision="float32")


def _scene(path, seed, size=24, bands=18):
    s = synthetic.make_scene(size, size + 2, bands, 3, seed=seed, snr_db=40)
    return Path(synthetic.write_geotiff(s, path, scale=10000)["image"])


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenes")
    good = [_scene(d / f"tile_{i}.tif", seed=i) for i in range(3)]
    bad = d / "broken.tif"
    bad.write_bytes(b"II*\x00 this is not a GeoTIFF")
    return good, bad


@pytest.fixture(scope="module")
def client():
    with batch.local_cluster(2, 1) as c:
        yield c


def _arrays(folder: Path, name: str) -> np.ndarray:
    ds = gdal.Open(str(folder / f"{name}_abundances.tif"))
    return ds.ReadAsArray()


def _single_process(tmp_path, path: Path, params=PARAMS) -> np.ndarray:
    out = tmp_path / "single"
    service.run(service.RunRequest.make(path, params, plan_outputs(out, path.stem), library="none"))
    return _arrays(out, path.stem)


# --- the scene list -----------------------------------------------------------------------------

def test_inputs_from_globs_lists_and_files(tmp_path):
    for name in ("a.tif", "b.tif", "c.bsq", "c.hdr", "a.tif.aux.xml"):
        (tmp_path / name).write_bytes(b"x")
    listing = tmp_path / "more.txt"
    listing.write_text("# tiles of the east\nc.bsq\n\n/elsewhere/d.tif  # absolute\n", encoding="utf-8")
    paths = batch.expand_inputs([str(tmp_path / "*.tif"), str(listing), str(tmp_path / "a.tif")])
    assert paths == [str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), str(tmp_path / "c.bsq"), "/elsewhere/d.tif"]
    assert batch.expand_inputs([str(tmp_path / "c*")]) == [str(tmp_path / "c.bsq")]   # no ENVI header
    with pytest.raises(InputError, match="no raster matches"):
        batch.expand_inputs([str(tmp_path / "*.nc")])


def test_scene_names_are_unique_and_stable():
    names = batch.scene_names(["/d/east/tile.tif", "/d/west/tile.tif", "/d/x.tif", "/e/east/tile.tif"])
    assert names[2] == "x"
    assert names[1] == "west_tile"
    assert len(set(names)) == 4 and names[0].startswith("east_tile") and names[3].startswith("east_tile")
    assert names == batch.scene_names(["/d/east/tile.tif", "/d/west/tile.tif", "/d/x.tif", "/e/east/tile.tif"])


def test_workers_share_the_cores():
    assert batch.plan_workers(10, cores=2, memory_bytes=64 * 2 ** 30) == (2, 1)
    assert batch.plan_workers(1, cores=8, memory_bytes=64 * 2 ** 30) == (1, 8)
    assert batch.plan_workers(10, cores=16, memory_bytes=7 * 2 ** 30) == (2, 8)     # 3 GB a scene
    assert batch.plan_workers(10, workers=3, cores=2) == (3, 1)


def test_plan_refuses_both_or_neither_mode(tmp_path, scenes):
    good, _ = scenes
    with pytest.raises(InputError, match="one of the two"):
        batch.plan_jobs([str(good[0])], tmp_path)
    with pytest.raises(InputError, match="spectra file not found"):
        batch.plan_jobs([str(good[0])], tmp_path, spectra=str(tmp_path / "none.csv"))


def test_fingerprint_follows_what_decides_the_result(tmp_path, scenes):
    good, _ = scenes
    job = batch.plan_jobs([str(good[0])], tmp_path, PARAMS, library="none")[0]
    same = batch.plan_jobs([str(good[0])], tmp_path, params_for("fast", n_endmembers=3, epochs=40, patience=0,
                                                                 restarts=0, threads=2, precision="float32"),
                           library="none")[0]
    other = batch.plan_jobs([str(good[0])], tmp_path, params_for("fast", n_endmembers=4, epochs=40, patience=0,
                                                                  restarts=0, threads=1, precision="float32"),
                            library="none")[0]
    assert job.fingerprint() == same.fingerprint()            # threads: speed, not result
    assert job.fingerprint() != other.fingerprint()


# --- one scene, in this process --------------------------------------------------------------------

def test_a_scene_is_written_whole_or_not_at_all(tmp_path, scenes):
    good, bad = scenes
    ok, broken = batch.plan_jobs([str(good[0]), str(bad)], tmp_path / "out", PARAMS, library="none")
    result = batch.run_scene(ok)
    assert result.status == "done" and result.endmembers == 3
    assert batch.is_complete(ok)
    assert (ok.folder / f"{ok.name}_abundances.tif").exists()
    failed = batch.run_scene(broken)
    assert failed.status == "failed" and "broken.tif" in failed.reason and "\n" not in failed.reason
    assert not broken.folder.exists()
    assert not any((tmp_path / "out" / batch.PARTIAL).glob("*"))       # nothing left behind


def test_a_folder_the_batch_did_not_write_is_left_alone(tmp_path, scenes):
    good, _ = scenes
    job = batch.plan_jobs([str(good[1])], tmp_path, PARAMS, library="none")[0]
    job.folder.mkdir()
    (job.folder / "notes.txt").write_text("mine", encoding="utf-8")
    result = batch.run_scene(job)
    assert result.status == "failed" and "not written by a batch run" in result.reason
    assert (job.folder / "notes.txt").read_text(encoding="utf-8") == "mine"


# --- on a real LocalCluster -----------------------------------------------------------------------

def test_cluster_results_equal_single_process_runs_and_a_bad_file_fails_alone(tmp_path, scenes, client):
    good, bad = scenes
    out = tmp_path / "out"
    jobs = batch.plan_jobs([str(p) for p in good] + [str(bad)], out, PARAMS, library="none")
    seen = []
    outcome = batch.run_batch(jobs, client, out, lambda done, total, r: seen.append((done, total, r.status)))
    status = {r.scene: r.status for r in outcome.results}
    assert status == {"tile_0": "done", "tile_1": "done", "tile_2": "done", "broken": "failed"}
    assert [s[0] for s in seen] == [1, 2, 3, 4] and all(s[1] == 4 for s in seen)
    for path in good:
        np.testing.assert_array_equal(_arrays(out / path.stem, path.stem), _single_process(tmp_path / path.stem, path))
    rows = (out / batch.SUMMARY).read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("scene,input,status,reason") and len(rows) == 5
    assert any(r.startswith("broken,") and ",failed," in r for r in rows)
    assert not (out / batch.PARTIAL).exists()

    # a rerun skips the complete scenes and redoes only the failed one
    before = {p.stem: (out / p.stem / batch.RECORD).stat().st_mtime_ns for p in good}
    again = batch.run_batch(jobs, client, out)
    assert {r.scene: r.status for r in again.results} == status | {f"tile_{i}": "skipped" for i in range(3)}
    assert before == {p.stem: (out / p.stem / batch.RECORD).stat().st_mtime_ns for p in good}

    # changed parameters: the scenes are redone and replaced
    changed = batch.plan_jobs([str(good[0])], out, params_for("fast", n_endmembers=4, epochs=40, patience=0,
                                                              restarts=0, threads=1, precision="float32"),
                              library="none")
    redo = batch.run_batch(changed, client, out)
    assert redo.results[0].status == "done" and redo.results[0].endmembers == 4
    assert _arrays(out / "tile_0", "tile_0").shape[0] == 4


def test_a_worker_killed_in_the_middle_of_a_scene_leaves_nothing_and_the_scene_is_retried(tmp_path, scenes, client):
    good, _ = scenes
    long_params = params_for("fast", n_endmembers=3, epochs=1500, patience=0, restarts=0, threads=1,
                             precision="float32")
    out = tmp_path / "out"
    job = batch.plan_jobs([str(good[2])], out, long_params, library="none")[0]
    outcome = []
    runner = threading.Thread(target=lambda: outcome.append(batch.run_batch([job], client, out)))
    runner.start()
    try:
        deadline = time.time() + 120
        address = None
        while time.time() < deadline and address is None:
            if list((out / batch.PARTIAL).glob(f"{job.name}-*")):
                address = next((w for w, keys in client.processing().items()
                                if any(str(k).startswith(f"dffn-scene-{job.name}-") for k in keys)), None)
            time.sleep(0.05)
        assert address is not None, "the scene never started"
        pid = client.run(os.getpid, workers=[address])[address]
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        assert not job.folder.exists()                     # the killed attempt left no output
    finally:
        runner.join(300)
    result = outcome[0].results[0]
    assert result.status == "done", result.reason
    np.testing.assert_array_equal(_arrays(job.folder, job.name), _single_process(tmp_path, good[2], long_params))
    record = json.loads((job.folder / batch.RECORD).read_text(encoding="utf-8"))
    assert record["status"] == "complete"
    assert not (out / batch.PARTIAL).exists()


def test_command_line_on_an_existing_scheduler(tmp_path, scenes, client, capsys):
    from dffn_qgis import cli

    good, _ = scenes
    listing = tmp_path / "tiles.txt"
    listing.write_text("\n".join(str(p) for p in good[:2]) + "\n", encoding="utf-8")
    argv = ["batch", str(listing), "-o", str(tmp_path / "out"), "-p", "3", "--epochs", "30", "--patience", "0",
            "--library", "none", "--scheduler", client.scheduler.address, "-q"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "tile_0" in out and "tile_1" in out and "done" in out
    assert batch.is_complete(batch.plan_jobs([str(good[0])], tmp_path / "out",
                                             params_for("fast", n_endmembers=3, epochs=30, patience=0),
                                             library="none")[0])
    assert cli.main(argv) == 0 and capsys.readouterr().out.count("skipped") == 2


def test_command_line_errors_are_one_line(tmp_path, scenes, capsys):
    from dffn_qgis import cli

    good, _ = scenes
    assert cli.main(["batch", str(good[0]), "-o", str(tmp_path)]) == 2
    assert "number of endmembers is required" in capsys.readouterr().err
    assert cli.main(["batch", str(tmp_path / "*.nothing"), "-o", str(tmp_path), "-p", "3"]) == 2
    assert "no raster matches" in capsys.readouterr().err
    with pytest.raises(InputError, match="cannot reach the dask scheduler"):
        batch.connect("tcp://127.0.0.1:9", timeout=1)


def test_a_batch_applies_given_spectra(tmp_path, scenes):
    good, _ = scenes
    first = batch.plan_jobs([str(good[0])], tmp_path / "learned", PARAMS, library="none")[0]
    assert batch.run_scene(first).status == "done"
    spectra = first.folder / f"{first.name}_endmembers.csv"
    jobs = batch.plan_jobs([str(p) for p in good[1:]], tmp_path / "applied", spectra=str(spectra))
    for job in jobs:
        result = batch.run_scene(job)
        assert result.status == "done" and result.endmembers == 3
        fractions = _arrays(job.folder, job.name)
        valid = fractions[0] != -9999.0
        np.testing.assert_allclose(fractions[:, valid].sum(axis=0), 1.0, atol=1e-4)   # FCLS: sum to one
    assert jobs[0].fingerprint()["solver"] == "fcls" and "params" not in jobs[0].fingerprint()
