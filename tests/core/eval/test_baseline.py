"""VCA + FCLS baseline: synthetic mixtures with pure pixels, exactness, Samson (speed: make bench)."""
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import nnls

from small_scenes import mixture
from dffn_qgis.core.eval.baseline import estimate_snr, fcls, vca, vca_fcls
from dffn_qgis.core.errors import InputError
from dffn_qgis.core.eval.metrics import evaluate, format_report, match_hungarian, sad_matrix

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"
SAMSON = SHARED / "samson" / "Samson.mat"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vca_finds_pure_pixels(seed):
    Y, E, A = mixture(seed=seed)
    E_hat, idx = vca(Y, 4, seed=seed)
    assert E_hat.shape == (60, 4)
    assert sorted(idx.tolist()) == [0, 1, 2, 3]
    sad = sad_matrix(E_hat, E)
    assert sad[np.arange(4), match_hungarian(sad)].max() < 0.05


def test_vca_low_snr_branch():
    Y, E, A = mixture(noise=0.15, N=3000)
    assert estimate_snr(Y, 4) < 15 + 10 * np.log10(4)          # takes the low-SNR projection
    E_hat, _ = vca(Y, 4, seed=0)
    sad = sad_matrix(E_hat, E)
    assert sad[np.arange(4), match_hungarian(sad)].mean() < 0.12


def test_snr_estimate_falls_with_noise():
    clean = estimate_snr(mixture()[0], 4)
    noisy = [estimate_snr(mixture(noise=s)[0], 4) for s in (0.001, 0.01, 0.05)]
    assert clean == np.inf and noisy[0] > noisy[1] > noisy[2]


def test_fcls_recovers_abundances_noise_free():
    Y, E, A = mixture()
    A_hat = fcls(Y, E)
    assert np.sqrt(np.mean((A_hat - A) ** 2)) < 0.02
    np.testing.assert_allclose(A_hat, A, atol=1e-6)


def test_vca_fcls_noise_free():
    Y, E, A = mixture()
    E_hat, A_hat = vca_fcls(Y, 4, seed=3)
    scores = evaluate(E_hat, A_hat, E, A)
    assert scores["mean_sad_rad"] < 0.05 and scores["mean_rmse"] < 0.02


def test_fcls_constraints_and_optimality_on_noisy_data():
    Y, E, _ = mixture(noise=0.05, seed=4)
    Y[:, 10] = -Y[:, 10]                      # a pixel far outside the simplex
    A_hat = fcls(Y, E)
    assert A_hat.min() >= 0
    np.testing.assert_allclose(A_hat.sum(axis=0), 1.0, atol=1e-12)
    # the classic augmented-matrix NNLS with a large sum-to-one weight, pixel by pixel
    delta = 1e4
    E_aug = np.vstack([np.full((1, 4), delta), E])
    for n in range(40):
        ref, _ = nnls(E_aug, np.concatenate([[delta], Y[:, n]]))
        np.testing.assert_allclose(A_hat[:, n], ref, atol=1e-6)


def test_fcls_with_collinear_endmembers_stays_feasible():
    Y, E, _ = mixture()
    E2 = np.hstack([E, E[:, :1]])             # a duplicated endmember
    A_hat = fcls(Y, E2)
    assert np.isfinite(A_hat).all() and A_hat.min() >= 0
    np.testing.assert_allclose(A_hat.sum(axis=0), 1.0, atol=1e-9)
    np.testing.assert_allclose(E2 @ A_hat, Y, atol=1e-6)


def test_bad_input():
    Y, _, _ = mixture()
    with pytest.raises(InputError):
        vca(Y, 1)
    with pytest.raises(InputError):
        vca(Y[:, :3], 4)
    Y[0, 0] = np.nan
    with pytest.raises(InputError):
        vca(Y, 3)
    with pytest.raises(InputError):
        fcls(np.ones((5, 4)), np.ones((6, 2)))


@pytest.mark.skipif(not SAMSON.is_file(), reason=f"shared Samson data not found at {SAMSON}")
def test_vca_fcls_on_samson():
    """VCA + FCLS over 10 seeds; DFFN_METHOD.md reports 0.081 rad / 0.263 (reference matching)
    and 4.6 deg / 27.1 (x100) one-to-one."""
    from scipy.io import loadmat
    mat = loadmat(str(SAMSON))
    one, ref = [], []
    for seed in range(1, 11):
        E, A = vca_fcls(mat["Y"], 3, seed=seed)
        d = evaluate(E, A, mat["M"], mat["A"])
        one.append((d["one_to_one"]["mean_sad_rad"], d["one_to_one"]["mean_rmse"]))
        ref.append((d["reference"]["mean_sad_rad"], d["reference"]["mean_rmse"]))
    one, ref = np.mean(one, axis=0), np.mean(ref, axis=0)
    print(f"\nSamson VCA+FCLS, 10 seeds: reference matching SAD {ref[0]:.3f} rad, RMSE {ref[1]:.3f}; "
          f"one-to-one SAD {np.degrees(one[0]):.2f} deg, RMSE x100 {100 * one[1]:.1f}")
    print(format_report(d))
    assert one[0] < 0.15 and one[1] < 0.4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nfindr_finds_the_pure_pixels(seed):
    from dffn_qgis.core.eval.baseline import nfindr
    Y, E, A = mixture(seed=seed)
    E_hat, idx = nfindr(Y, 4, seed=seed)
    assert sorted(idx.tolist()) == [0, 1, 2, 3]
    np.testing.assert_allclose(E_hat[:, np.argsort(idx)], E, atol=1e-12)


def test_nfindr_grows_the_simplex_from_a_poor_start():
    """Noisy pixels make VCA's pick uncertain; N-FINDR's swaps never shrink the simplex volume."""
    from dffn_qgis.core.eval.baseline import _top_subspace, nfindr

    Y, E, A = mixture(noise=0.02, N=2000, seed=3)

    def volume(idx):
        mean = Y.mean(axis=1, keepdims=True)
        U = _top_subspace((Y - mean) @ (Y - mean).T / Y.shape[1], 3)
        Z = np.vstack([np.ones((1, Y.shape[1])), U.T @ (Y - mean)])
        return abs(np.linalg.det(Z[:, idx]))

    _, start = vca(Y, 4, seed=0)
    _, found = nfindr(Y, 4, seed=0)
    assert volume(found) >= volume(start)
    sad = sad_matrix(Y[:, found], E)
    assert sad[np.arange(4), match_hungarian(sad)].max() < 0.05
