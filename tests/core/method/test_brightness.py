"""Endmembers at the data's brightness: known endmembers at a known brightness give known fractions."""
import numpy as np
import pytest

from dffn_qgis.core.method.abundance_lsq import nnls
from dffn_qgis.core.method.brightness import fit_brightness
from dffn_qgis.core.run.result import sum_to_one


def mixture(L=80, P=4, N=3000, seed=0, illumination=0.0, noise=0.0):
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, L)[:, None]
    M = 0.05 + 0.5 * np.abs(np.sin(3 * x * rng.uniform(1, 4, P) + rng.uniform(0, 3, P)))
    A = rng.dirichlet(np.full(P, 0.8), N).T
    s = 1.0 + illumination * rng.uniform(-1, 1, N)
    Y = M @ A * s + noise * rng.standard_normal((L, N))
    return Y, M, A


def fractions(Y, E):
    E_fit, _ = fit_brightness(Y, E)
    return E_fit, sum_to_one(nnls(Y, E_fit))[0]


@pytest.mark.parametrize("illumination", [0.0, 0.3])
def test_wrong_brightness_is_undone(illumination):
    Y, M, A = mixture(illumination=illumination)
    wrong = M * np.array([3.0, 0.2, 1.0, 7.5])           # shapes right, brightness arbitrary (as DFFN's)
    E_fit, A_hat = fractions(Y, wrong)
    # with illumination the fit sees brightness and mixture together: exact only in expectation
    np.testing.assert_allclose(A_hat, A, atol=1e-6 if illumination == 0 else 0.01)
    np.testing.assert_allclose(E_fit, M, rtol=1e-6 if illumination == 0 else 0.05)


def test_plain_normalisation_is_biased_by_brightness():
    """What the fit fixes: NNLS on endmembers at the wrong brightness, scaled to sum to one."""
    Y, M, A = mixture()
    wrong = M * np.array([3.0, 0.2, 1.0, 7.5])
    plain = sum_to_one(nnls(Y, wrong))[0]
    assert np.sqrt(np.mean((plain - A) ** 2)) > 0.05


def test_illumination_does_not_bias_fractions_under_noise():
    Y, M, A = mixture(illumination=0.25, noise=0.003, seed=1)
    _, A_hat = fractions(Y, M / M.max(axis=0))
    assert np.sqrt(np.mean((A_hat - A) ** 2)) < 0.03
    # FCLS with the true endmembers, which forces the brightness into the fractions, does worse
    from dffn_qgis.core.method.abundance_lsq import fcls
    assert np.sqrt(np.mean((fcls(Y, M) - A) ** 2)) > 2 * np.sqrt(np.mean((A_hat - A) ** 2))


def test_an_unused_endmember_keeps_a_finite_brightness():
    Y, M, A = mixture(P=3)
    extra = np.concatenate([M, -M[:, :1]], axis=1)          # no pixel has a positive share of it
    E_fit, factors = fit_brightness(Y, extra)
    assert np.isfinite(factors).all() and (factors > 0).all()
    assert E_fit.shape == extra.shape
