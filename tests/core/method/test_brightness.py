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


def rmse(A_hat, A):
    return float(np.sqrt(np.mean((A_hat - A) ** 2)))


def test_soft_sum_weight_goes_from_nnls_to_fcls():
    from dffn_qgis.core.method.abundance_lsq import fcls
    Y, M, A = mixture(N=400, illumination=0.2, noise=0.01, seed=2)
    np.testing.assert_array_equal(nnls(Y, M, sum_weight=0.0), nnls(Y, M))
    np.testing.assert_allclose(nnls(Y, M, sum_weight=1e4), fcls(Y, M), atol=1e-4)
    gaps = [np.abs(nnls(Y, M, sum_weight=w).sum(0) - 1).mean() for w in (0.0, 0.1, 1.0, 10.0)]
    assert all(a > b for a, b in zip(gaps, gaps[1:]))          # the sums move towards one


def test_the_spread_is_chosen_by_what_the_image_shows():
    """Uniform illumination and strong noise: a tight spread, and fractions better than the free fit's;
    illumination of +-25 %: the free fit or a wide spread, and fractions no worse than the free fit's."""
    from dffn_qgis.core.method.brightness import brightness_spread
    Y, M, A = mixture(noise=0.03, seed=3)
    spread = brightness_spread(Y, M)
    assert spread.how == "chosen" and spread.spread <= 0.03
    assert spread.noise == pytest.approx(0.03, rel=0.1)
    soft = sum_to_one(nnls(Y, M, sum_weight=spread.sum_weight))[0]
    free = sum_to_one(nnls(Y, M))[0]
    from dffn_qgis.core.method.abundance_lsq import fcls
    assert rmse(soft, A) < 0.99 * rmse(free, A)               # the free brightness only adds noise here
    assert rmse(soft, A) <= 1.001 * rmse(fcls(Y, M), A)      # as good as the sum forced to one

    Y, M, A = mixture(illumination=0.25, noise=0.003, seed=4)
    spread = brightness_spread(Y, M)
    assert spread.spread >= 0.1
    soft = sum_to_one(nnls(Y, M, sum_weight=spread.sum_weight))[0]
    assert rmse(soft, A) <= 1.02 * rmse(sum_to_one(nnls(Y, M))[0], A)
    assert min(spread.held_out_error) == 1.0 and len(spread.held_out_error) == 7


def test_free_and_fixed_spreads_and_too_few_pixels():
    from dffn_qgis.core.method.brightness import brightness_spread
    Y, M, _ = mixture(N=500, noise=0.01)
    assert brightness_spread(Y, M, "free").sum_weight == 0.0
    fixed = brightness_spread(Y, M, "fixed")
    assert fixed.how == "fixed" and fixed.sum_weight == pytest.approx(fixed.noise / 0.003)
    few = brightness_spread(Y[:, :50], M)                   # fewer pixels than bands: no noise estimate
    assert few.sum_weight == 0.0 and few.how == "free"
