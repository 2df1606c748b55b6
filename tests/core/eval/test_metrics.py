"""Scoring: SAD/RMSE matrices, matchings, the paper's protocol, scoring an output folder."""
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from dffn_qgis.core.errors import InputError
from dffn_qgis.core.eval.metrics import (evaluate, evaluate_output_dir, format_report, match_hungarian, matched_sad,
                                    match_reference, rmse_matrix, sad_matrix)
from dffn_qgis.core.io.outputs import OutputPlan, write_outputs
from dffn_qgis.core.run.result import UnmixResult
from dffn_qgis.core.io.scene import Scene

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"
SAMSON = SHARED / "samson" / "Samson.mat"
needs_samson = pytest.mark.skipif(not SAMSON.is_file(), reason=f"shared Samson data not found at {SAMSON}")


# ---------------------------------------------------------------------------------------------
# matrices and matchings

def test_sad_hand_values():
    E_est = np.array([[1.0, 1.0, 2.0], [0.0, 1.0, 0.0]])      # x axis, 45 degrees, 2 * x axis
    E_true = np.array([[1.0, 0.0], [0.0, 1.0]])                # x axis, y axis
    sad = sad_matrix(E_est, E_true)
    np.testing.assert_allclose(sad, [[0, math.pi / 2], [math.pi / 4, math.pi / 4], [0, math.pi / 2]],
                               atol=1e-12)


def test_sad_clips_rounding_and_zero_spectrum():
    v = np.array([[0.1], [0.2], [0.3]])
    assert sad_matrix(v * 3, v)[0, 0] == pytest.approx(0.0, abs=1e-7)
    assert sad_matrix(np.zeros((3, 1)), v)[0, 0] == pytest.approx(math.pi / 2)


def test_rmse_hand_values_ignore_nan():
    A_est = np.array([[0.0, 1.0, np.nan, 0.5]])
    A_true = np.array([[0.0, 0.0, 0.3, 0.5], [1.0, 1.0, 0.7, 0.5]])
    np.testing.assert_allclose(rmse_matrix(A_est, A_true), [[math.sqrt(1 / 3), math.sqrt(1 / 3)]])


def test_hungarian_undoes_permutation():
    cost = np.array([[5.0, 1.0, 9.0], [0.5, 8.0, 7.0], [9.0, 9.0, 0.1]])
    np.testing.assert_array_equal(match_hungarian(cost), [1, 0, 2])


def test_reference_matching_can_double_match():
    cost = np.array([[0.1, 0.2], [0.15, 0.9]])
    np.testing.assert_array_equal(match_reference(cost), [0, 0])
    np.testing.assert_array_equal(match_hungarian(cost), [1, 0])


def test_hungarian_rectangular():
    tall = np.array([[0.1, 0.9], [0.2, 0.8], [0.9, 0.1]])       # 3 estimates, 2 truths
    np.testing.assert_array_equal(match_hungarian(tall), [0, -1, 1])
    np.testing.assert_array_equal(match_hungarian(tall.T), [0, 2])


# ---------------------------------------------------------------------------------------------
# the protocol

def _truth(L=30, P=3, N=200, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 1.0, (L, P)), rng.dirichlet(np.ones(P), N).T


def test_permuted_scaled_estimate_scores_zero():
    E, A = _truth()
    perm = [2, 0, 1]
    d = evaluate(E[:, perm] * [3.0, 0.5, 7.0], A[perm] * 2.5, E, A)   # scale does not matter
    assert d["one_to_one"]["sad_match"] == perm
    assert d["one_to_one"]["rmse_match"] == perm
    assert d["mean_sad_rad"] == pytest.approx(0, abs=1e-7)
    assert d["mean_rmse"] == pytest.approx(0, abs=1e-12)
    assert d["reference"]["mean_rmse"] == pytest.approx(0, abs=1e-12)


def test_zero_sum_pixels_are_guarded():
    E, A = _truth()
    A_est = A.copy()
    A_est[:, 0] = 0.0
    d = evaluate(E, A_est, E, A)
    assert all(math.isfinite(v) for v in d["one_to_one"]["rmse"])


def test_nan_pixels_are_skipped_and_3d_maps_accepted():
    E, A = _truth(N=20)
    A_est = A.copy().reshape(3, 4, 5)
    A_est[:, 1, 2] = np.nan
    d = evaluate(E, A_est, E, A)
    assert d["n_pixels"] == 19 and d["mean_rmse"] == pytest.approx(0, abs=1e-12)


def test_reference_and_one_to_one_differ_when_double_matched():
    E, A = _truth()
    E_est = np.stack([E[:, 0], E[:, 0] * 0.9 + 0.1 * E[:, 1], E[:, 2]], axis=1)
    d = evaluate(E_est, A, E, A)
    assert d["reference"]["sad_match"] == [0, 0, 2]
    assert d["one_to_one"]["sad_match"] == [0, 1, 2]
    assert d["reference"]["mean_sad_rad"] < d["one_to_one"]["mean_sad_rad"]


def test_unequal_counts_and_json():
    E, A = _truth(P=4)
    d = evaluate(E[:, :3], A[:3], E, A, true_names=["a", "b", "c", "d"])
    assert d["n_estimated"] == 3 and d["n_true"] == 4
    assert d["one_to_one"]["sad_match_names"] == ["a", "b", "c"]
    d = evaluate(E, A, E[:, :3], A[:3])
    assert d["one_to_one"]["sad_match"].count(None) == 1
    assert sum(v is None for v in d["one_to_one"]["sad_rad"]) == 1
    assert d["mean_sad_rad"] == pytest.approx(0, abs=1e-7)
    json.dumps(d, allow_nan=False)
    assert "unmatched" in format_report(d)


def test_degrees_and_report_text():
    E_true = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    E_est = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.1]])
    A = np.array([[0.25, 1.0], [0.75, 0.0]])
    d = evaluate(E_est, A, E_true, A, true_names=["soil", "water"])
    assert d["one_to_one"]["sad_deg"][1] == pytest.approx(math.degrees(math.atan(0.1)))
    assert d["mean_sad_deg"] == pytest.approx(math.degrees(d["mean_sad_rad"]))
    text = format_report(d)
    assert f"mean SAD {d['mean_sad_rad']:.4f} rad ({d['mean_sad_deg']:.2f} deg)" in text
    assert "mean RMSE 0.0000" in text
    assert "endmember 2 -> water" in text


@needs_samson
def test_samson_truth_against_itself():
    from scipy.io import loadmat
    mat = loadmat(str(SAMSON))
    d = evaluate(mat["M"], mat["A"], mat["M"], mat["A"])
    assert d["mean_sad_rad"] == pytest.approx(0, abs=1e-7)
    assert d["mean_rmse"] == 0
    assert d["reference"]["mean_sad_rad"] == pytest.approx(0, abs=1e-7)


# ---------------------------------------------------------------------------------------------
# scoring an output folder

def _scene(H, W, L, wavelengths=None, band_indices=None):
    return Scene(data=np.zeros((L, H, W), np.float32), valid=np.ones((H, W), bool),
                 wavelengths=wavelengths, wavelength_units="nm" if wavelengths is not None else None,
                 band_indices=band_indices or list(range(1, L + 1)))


def _write_run(folder, E, A_maps, scene, prefix="run"):
    result = UnmixResult(abundances=A_maps.astype(np.float32), endmembers=E.astype(np.float32),
                         error=np.zeros(A_maps.shape[1:], np.float32), loss=0.0)
    plan = OutputPlan(stack=str(Path(folder) / f"{prefix}_abundances.tif"),
                      endmembers_csv=str(Path(folder) / f"{prefix}_endmembers.csv"))
    write_outputs(plan, scene, result)


def _write_truth(folder, E, A_maps, wavelengths, stem="scene"):
    folder = Path(folder)
    H, W = A_maps.shape[1:]
    ds = gdal.GetDriverByName("GTiff").Create(str(folder / f"{stem}_truth_abundances.tif"), W, H,
                                             A_maps.shape[0], gdal.GDT_Float32)
    for b in range(A_maps.shape[0]):
        ds.GetRasterBand(b + 1).WriteArray(A_maps[b])
    ds = None
    with open(folder / f"{stem}_truth_endmembers.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["wavelength"] + [f"class {j}" for j in range(E.shape[1])])
        for x, row in zip(wavelengths, E):
            w.writerow([x, *row])
    return folder / f"{stem}_truth_abundances.tif"


@pytest.fixture
def run_and_truth(tmp_path):
    rng = np.random.default_rng(3)
    H, W, L = 6, 7, 12
    wl = np.linspace(400, 900, L)
    E = rng.uniform(0.1, 1, (L, 3))
    A = rng.dirichlet(np.ones(3), H * W).T.reshape(3, H, W)
    run, truth = tmp_path / "run", tmp_path / "truth"
    run.mkdir()
    truth.mkdir()
    perm = [1, 2, 0]
    _write_run(run, E[:, perm] * 0.5, A[perm], _scene(H, W, L, wavelengths=wl))
    raster = _write_truth(truth, E, A, wl)
    return run, truth, raster, perm


def test_output_dir_against_truth_raster(run_and_truth):
    run, truth, raster, perm = run_and_truth
    for spec in (raster, truth):
        d = evaluate_output_dir(run, spec)
        assert d["mean_sad_rad"] == pytest.approx(0, abs=1e-5)
        assert d["mean_rmse"] == pytest.approx(0, abs=1e-6)
        assert d["one_to_one"]["sad_match"] == perm
        assert d["one_to_one"]["sad_match_names"] == [f"class {j}" for j in perm]
        assert "-> class 1" in format_report(d)


def test_output_dir_with_explicit_truth_endmembers(run_and_truth, tmp_path):
    run, truth, raster, perm = run_and_truth
    moved = tmp_path / "elsewhere.csv"
    (truth / "scene_truth_endmembers.csv").rename(moved)
    with pytest.raises(InputError, match="truth endmember CSV not found"):
        evaluate_output_dir(run, raster)
    d = evaluate_output_dir(run, raster, truth_endmembers=moved)
    assert d["mean_rmse"] == pytest.approx(0, abs=1e-6)


def test_output_dir_missing_or_ambiguous(run_and_truth, tmp_path):
    run, truth, raster, _ = run_and_truth
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no abundance raster"):
        evaluate_output_dir(empty, raster)
    (run / "other_abundances.tif").write_bytes((run / "run_abundances.tif").read_bytes())
    with pytest.raises(InputError, match="more than one abundance raster"):
        evaluate_output_dir(run, raster)


@needs_samson
def test_output_dir_against_samson_mat(tmp_path):
    """Outputs made from Samson's own truth (rearranged into a 95 x 95 image) score zero,
    which checks the column-major pixel order."""
    from scipy.io import loadmat
    mat = loadmat(str(SAMSON))
    A_maps = mat["A"].reshape(3, 95, 95, order="F")
    _write_run(tmp_path, mat["M"], A_maps, _scene(95, 95, 156))
    d = evaluate_output_dir(tmp_path, SAMSON)
    assert d["mean_sad_rad"] == pytest.approx(0, abs=1e-3)
    assert d["mean_rmse"] == pytest.approx(0, abs=1e-6)
    assert d["one_to_one"]["sad_match"] == [0, 1, 2]


@pytest.mark.skipif(not SAMSON.exists(), reason=f"Samson scene not present at {SAMSON}")
def test_samson_convention_rederives_its_truth(tmp_path):
    """Samson's truth is max-normalised NNLS of its endmembers: re-deriving it from the true
    endmembers gives it back (README: 0.002), whatever abundances the run wrote."""
    from scipy.io import loadmat
    mat = loadmat(str(SAMSON))
    A_maps = mat["A"].reshape(3, 95, 95, order="F")
    flat = np.full_like(A_maps, 1.0 / 3)                     # a run whose own abundances are useless
    _write_run(tmp_path, mat["M"] * [[2.0, 0.5, 7.0]], flat, _scene(95, 95, 156))
    own = evaluate_output_dir(tmp_path, SAMSON)
    rederived = evaluate_output_dir(tmp_path, SAMSON, convention="max-normalised-nnls")
    assert own["mean_rmse"] > 0.2
    assert rederived["mean_rmse"] < 0.005
    assert rederived["abundance_convention"] == "max-normalised-nnls"
    assert "truth's convention" in format_report(rederived)


def test_samson_convention_needs_the_image(run_and_truth):
    run, truth, _, _ = run_and_truth
    with pytest.raises(InputError, match="needs the image"):
        evaluate_output_dir(run, truth, convention="max-normalised-nnls")


def test_output_dir_against_synthetic_truth_files(tmp_path):
    """The truth files of :mod:`synthetic` (NaN holes, wavelength CSV) are read as written;
    an output holding a subset of the bands is scored on those bands."""
    from dffn_qgis.core.eval import synthetic
    syn = synthetic.make_scene(16, 18, 20, 3, seed=2, snr_db=None)
    truth = synthetic.write_geotiff(syn, tmp_path / "syn.tif")
    keep = np.arange(0, 20, 2)
    A = syn.abundances.copy()
    A[:, 3:5, 4:9] = np.nan
    run = tmp_path / "run"
    _write_run(run, syn.endmembers[keep], A, _scene(16, 18, len(keep), wavelengths=syn.wavelengths[keep]))
    d = evaluate_output_dir(run, truth["abundances"])
    assert d["mean_sad_rad"] == pytest.approx(0, abs=1e-4)
    assert d["mean_rmse"] == pytest.approx(0, abs=1e-6)
    assert d["true_names"] == syn.names


def test_matched_sad_gives_each_truth_the_angle_of_its_one_to_one_match():
    rng = np.random.default_rng(4)
    truth = rng.random((20, 3)) + 0.1
    estimates = truth[:, [2, 0, 1]] + 0.01 * rng.random((20, 3))         # shuffled, a little off
    angles = matched_sad(estimates, truth)
    report = evaluate(estimates, np.full((3, 5), 1 / 3), truth, np.full((3, 5), 1 / 3))["one_to_one"]
    assert angles.shape == (3,) and (angles < 0.05).all()
    assert sorted(angles) == pytest.approx(sorted(report["sad_rad"]))
    fewer = matched_sad(estimates[:, :2], truth)                          # one truth left unmatched
    assert np.isnan(fewer).sum() == 1 and np.nanmax(fewer) < 0.05
