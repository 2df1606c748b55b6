"""``denoise="subspace"``: the signal subspace the fusion and the training see."""
import numpy as np
import pytest
import torch

from dffn_qgis.core.method.signal_subspace import signal_subspace
from dffn_qgis.core.run.config import params_for
from dffn_qgis.core.run.pipeline import unmix_scene

from small_scenes import mixture, scalable_scene


def _noisy(L=60, P=4, N=3000, sigma=0.01, seed=0):
    Y_clean, E, A = mixture(L=L, P=P, N=N, seed=seed)
    noise = sigma * np.random.default_rng(seed + 1).standard_normal(Y_clean.shape)
    return Y_clean, noise


def test_the_subspace_keeps_the_signal_and_removes_most_of_the_noise():
    Y_clean, noise = _noisy()
    subspace = signal_subspace(Y_clean + noise, n_endmembers=4)
    assert subspace.components == subspace.noise_edge == 4
    # the mixtures lie in it: projected, they do not move (beyond the noise the basis was estimated with)
    kept = subspace.project(Y_clean)
    assert np.linalg.norm(kept - Y_clean) / np.linalg.norm(Y_clean) < 2e-3
    # white noise keeps about k / L of its power
    left = np.linalg.norm(subspace.project(noise)) ** 2 / np.linalg.norm(noise) ** 2
    assert left < 2 * 4 / 60
    # the estimated SNR is the mixture's
    true_snr = 10 * np.log10((Y_clean ** 2).sum() / (noise ** 2).sum())
    assert abs(subspace.snr_db - true_snr) < 1.0
    assert subspace.mean_angle > 0


def test_the_projection_is_the_same_on_arrays_tensors_and_gram_matrices():
    Y_clean, noise = _noisy(N=2000)
    Y = (Y_clean + noise).astype(np.float32)
    subspace = signal_subspace(Y, n_endmembers=4)
    projected = subspace.project(Y)
    assert projected.dtype == np.float32
    np.testing.assert_allclose(subspace.project(torch.from_numpy(Y)).numpy(), projected, rtol=1e-4, atol=1e-5)
    gram = Y.astype(np.float64) @ Y.T.astype(np.float64)
    expected = projected.astype(np.float64) @ projected.T.astype(np.float64)
    np.testing.assert_allclose(subspace.project_gram(gram), expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


def test_at_least_one_component_per_endmember_and_none_where_it_cannot_be_estimated():
    Y_clean, noise = _noisy()
    assert signal_subspace(Y_clean + noise, n_endmembers=6).components == 6
    assert signal_subspace((Y_clean + noise)[:, :50], n_endmembers=4) is None      # fewer pixels than bands
    assert signal_subspace((Y_clean + noise)[:, :3000], n_endmembers=60) is None    # every band kept


def test_a_large_image_is_estimated_on_an_even_sample_of_its_pixels():
    from dffn_qgis.core.method.abundance_lsq import even_columns
    from dffn_qgis.core.method.signal_subspace import MAX_PIXELS

    Y_clean, noise = _noisy(N=MAX_PIXELS + 2000)
    Y = Y_clean + noise
    whole, sample = signal_subspace(Y, 4), signal_subspace(even_columns(Y, MAX_PIXELS), 4)
    np.testing.assert_array_equal(whole.left, sample.left)
    np.testing.assert_array_equal(whole.right, sample.right)


@pytest.mark.parametrize("method", ["exact", "scalable"])
def test_a_denoised_run_records_its_subspace_and_fits_the_data_as_read(method):
    from dffn_qgis.core.method.abundance_lsq import nnls
    from dffn_qgis.core.run.result import sum_to_one

    scene = scalable_scene()
    quick = dict(n_endmembers=3, epochs=8, device="cpu", threads=1, method=method, window=16, train_windows=4)
    on = unmix_scene(scene, params_for("fast", denoise="subspace", **quick))
    off = unmix_scene(scene, params_for("fast", denoise="off", **quick))
    assert "denoise" not in off.record
    record = on.record["denoise"]
    assert record["components"] == 3 and record["bands"] == scene.n_bands
    assert on.loss != off.loss                        # the network saw other pixels
    # the enhanced image of 3 components has rank at most 2 x 3 + 1 (docs/METHOD.md), on both paths
    # (the scalable one's spatial term projected again after the Nystroem factor's rounding)
    used = on.record["input_components"]
    assert 0 < used["components"] <= 7 and used["share_outside"] < 1e-6, used
    assert off.record["input_components"]["components"] == 0      # noisy: full rank
    # the abundances are the fit of the data as read, not of the projected data
    Y = scene.data[:, scene.valid]
    weight = on.record["pixel_brightness"]["sum_weight"]
    expected = sum_to_one(nnls(Y, on.endmembers, sum_weight=weight).astype(np.float32))[0]
    np.testing.assert_allclose(on.abundances[:, scene.valid], expected, atol=1e-4)
