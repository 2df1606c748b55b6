"""Non-negative least squares abundances (the refinement's solver) against SciPy, pixel by pixel."""
import numpy as np
import pytest
from scipy.optimize import nnls as scipy_nnls

from dffn_qgis.core.method.abundance_lsq import nnls
from dffn_qgis.core.errors import InputError
from dffn_qgis.core.method.model import spectral_angle

from small_scenes import mixture


@pytest.mark.parametrize("P", [3, 6])
def test_nnls_equals_scipy_on_noisy_scaled_pixels(P):
    Y, E, _ = mixture(P=P, noise=0.05, seed=P)
    Y = Y * np.random.default_rng(1).uniform(0.2, 3.0, Y.shape[1])    # brightness varies per pixel
    Y[:, 5] = -Y[:, 5]                                                 # no positive fit at all
    A = nnls(Y, E)
    assert A.shape == (P, Y.shape[1]) and A.min() >= 0
    for n in range(60):
        ref, _ = scipy_nnls(E, Y[:, n])
        np.testing.assert_allclose(A[:, n], ref, atol=1e-8)
    assert not A[:, 5].any()


def test_nnls_noise_free_recovers_scaled_abundances():
    Y, E, A_true = mixture()
    scale = np.linspace(0.5, 2.0, Y.shape[1])
    np.testing.assert_allclose(nnls(Y * scale, E), A_true * scale, atol=1e-7)


def test_nnls_gives_the_smallest_spectral_angle():
    """E a of the NNLS solution is at a smaller angle from the pixel than any other a >= 0."""
    import torch
    Y, E, _ = mixture(noise=0.08, seed=7)
    A = nnls(Y, E)
    best = spectral_angle(torch.from_numpy(Y), torch.from_numpy(E @ A)).numpy()
    rng = np.random.default_rng(0)
    for _ in range(20):
        other = np.maximum(A + 0.05 * rng.standard_normal(A.shape), 0.0)
        angle = spectral_angle(torch.from_numpy(Y), torch.from_numpy(E @ other)).numpy()
        assert np.all(best <= angle + 1e-9)


def test_nnls_with_a_duplicated_endmember_stays_exact():
    Y, E, _ = mixture()
    E2 = np.hstack([E, E[:, :1]])
    A = nnls(Y, E2)
    assert np.isfinite(A).all() and A.min() >= 0
    np.testing.assert_allclose(E2 @ A, Y, atol=1e-6)


def test_nnls_bad_shapes():
    with pytest.raises(InputError, match="nnls needs"):
        nnls(np.ones((5, 4)), np.ones((6, 2)))
