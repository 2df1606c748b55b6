"""The feature fusion module: blocked spatial product, reference fixture, normalisation."""
from pathlib import Path

import numpy as np
import pytest
import torch

from dffn_qgis.core.errors import Cancelled
from dffn_qgis.core.method.ffm import fuse, minmax, spatial_product, spatial_product_dense, spectral_similarity
from dffn_qgis.core.run.progress import Monitor

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"
SAMSON = SHARED / "samson" / "Samson.mat"
FIXTURE = SHARED / "samson" / "samson_ffm_w0.5.npy"


def _random_image(bands=12, pixels=300, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.uniform(0, 0.3, (bands, pixels))).double()


@pytest.mark.parametrize("block", [1, 7, 64, 299, 300, 1000])
def test_blocked_spatial_product_equals_dense(block):
    Y = _random_image()
    np.testing.assert_allclose(spatial_product(Y, block).numpy(), spatial_product_dense(Y).numpy(),
                               rtol=1e-12, atol=1e-12)


def test_spectral_similarity_is_the_gaussian_kernel_of_band_distances():
    Y = _random_image(bands=5, pixels=40)
    S = spectral_similarity(Y).numpy()
    Yn = Y.numpy()
    for i in range(5):
        for j in range(5):
            assert S[i, j] == pytest.approx(np.exp(-np.sum((Yn[i] - Yn[j]) ** 2)), rel=1e-10)
    np.testing.assert_allclose(np.diag(S), 1.0)


def test_minmax_spans_zero_to_one_and_handles_constants():
    x = torch.tensor([[2.0, 4.0], [6.0, 10.0]])
    out = minmax(x)
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0
    assert torch.count_nonzero(minmax(torch.full((3, 3), 5.0))) == 0


@pytest.mark.parametrize("w", [0.0, 0.3, 1.0])
def test_fuse_is_min_max_normalised_mix(w):
    Y = _random_image()
    out = fuse(Y, w, block=50)
    spectral = minmax(spectral_similarity(Y) @ Y)
    spatial = minmax(spatial_product_dense(Y))
    expected = minmax(w * spectral + (1 - w) * spatial)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=1e-12)


def test_spatial_product_reports_progress_and_cancels():
    Y = _random_image(pixels=100)
    seen = []
    spatial_product(Y, 10, Monitor(progress=lambda f, m: seen.append(f)))
    assert len(seen) == 10 and seen[-1] == pytest.approx(1.0)
    calls = {"n": 0}

    def cancel_after_three():
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(Cancelled):
        spatial_product(Y, 10, Monitor(is_cancelled=cancel_after_three))


@pytest.mark.skipif(not FIXTURE.exists(), reason=f"shared Samson data not present ({FIXTURE.parent})")
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 5e-4)])
def test_ffm_matches_the_reference_on_samson(dtype, tol):
    from scipy.io import loadmat
    Y = loadmat(SAMSON)["Y"]
    reference = np.load(FIXTURE)
    out = fuse(torch.from_numpy(Y).to(dtype), 0.5, block=1500).numpy()
    assert np.abs(out - reference).max() < tol
