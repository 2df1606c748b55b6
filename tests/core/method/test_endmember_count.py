"""Endmember count: the noise edge, HySime and HFC on generated scenes of known size, the noise estimate,
sampling."""
import json

import numpy as np
import pytest

from dffn_qgis.core.errors import InputError
from dffn_qgis.core.eval import synthetic
from dffn_qgis.core.io.raster_source import ArraySource
from dffn_qgis.core.io.scene import Scene
from dffn_qgis.core.method.endmember_count import (CountEstimate, count_endmembers, count_source, estimate_noise,
                                                   hfc, hysime, noise_edge_count, regression_noise_power,
                                                   sample_pixels)


def _scene(P, snr_db=35.0, seed=0, size=60, bands=80):
    s = synthetic.make_scene(size, size, bands, P, seed=seed, snr_db=snr_db)
    cube = (s.cube / s.cube.max()).astype(np.float32)
    return Scene(data=cube, valid=np.ones(cube.shape[1:], bool), wavelengths=s.wavelengths, wavelength_units="nm",
                 band_indices=list(range(1, bands + 1)), band_names=[f"b{i}" for i in range(bands)], source="s")


@pytest.mark.parametrize("P", [3, 4, 6])
def test_the_noise_edge_and_hysime_find_the_number_of_materials(P):
    scene = _scene(P, seed=P)
    estimate = count_source(ArraySource(scene))
    assert estimate.rmt == P and estimate.hysime == P and estimate.recommended == P
    assert estimate.recommended_by == "rmt"
    assert estimate.hysime_spatial is not None and abs(estimate.hysime_spatial - P) <= 1
    assert 1 <= estimate.hfc <= P + 1                  # HFC undercounts correlated spectra


def test_regression_noise_estimate_matches_white_noise():
    rng = np.random.default_rng(1)
    s = synthetic.make_scene(50, 50, 60, 4, seed=1, snr_db=None)
    Y = s.cube.reshape(60, -1).astype(np.float64)
    sigma = 0.01 * Y.mean()
    noise = estimate_noise(Y + sigma * rng.standard_normal(Y.shape))
    assert np.median(noise.std(axis=1)) == pytest.approx(sigma, rel=0.2)


def test_the_regression_noise_is_taken_over_the_residual_degrees_of_freedom():
    # 40 bands of white noise on 200 pixels: the residuals' plain mean square is about (200 - 39) / 200
    # of the variance; over the degrees of freedom it is the variance
    rng = np.random.default_rng(4)
    sigma = 0.3
    Y = sigma * rng.standard_normal((40, 200))
    plain = np.mean(estimate_noise(Y) ** 2, axis=1)
    assert np.mean(plain) < 0.85 * sigma ** 2
    assert np.mean(regression_noise_power(Y)) == pytest.approx(sigma ** 2, rel=0.05)


def _spiked(variances, bands=30, pixels=20000, seed=5):
    """White noise of unit variance plus one signal component of each given variance (orthogonal)."""
    rng = np.random.default_rng(seed)
    directions, _ = np.linalg.qr(rng.standard_normal((bands, len(variances))))
    signal = directions @ (np.sqrt(variances)[:, None] * rng.standard_normal((len(variances), pixels)))
    return signal + rng.standard_normal((bands, pixels))


def test_pure_noise_stays_below_the_noise_edge():
    Y = _spiked([])
    count, eigenvalues, edge = noise_edge_count(Y, np.ones(30))
    assert count == 0 and edge == pytest.approx((1 + np.sqrt(30 / 20000)) ** 2)
    assert eigenvalues[0] < edge and eigenvalues[0] > 0.95 * edge     # the largest noise eigenvalue nears the edge


def test_the_noise_edge_counts_a_material_weaker_than_the_noise_which_hysime_misses():
    # a component with 0.6 of the noise's variance: above the Marchenko-Pastur edge for 20000 pixels,
    # below HySime's "more signal than noise power"
    Y = _spiked([100.0, 20.0, 0.6])
    assert noise_edge_count(Y, np.ones(30))[0] == 3
    assert hysime(Y, np.ones(30))[0] == 2


def test_a_band_the_others_predict_exactly_is_not_a_dimension_of_its_own():
    Y = _spiked([100.0, 20.0])
    Y = np.vstack([Y, 0.5 * (Y[:1] + Y[1:2])])          # a band filled by interpolating two others
    noise = np.append(np.ones(30), 1e-9)
    assert noise_edge_count(Y, noise)[0] == 2


def test_pure_noise_has_no_signal_dimension_in_hfc():
    rng = np.random.default_rng(2)
    Y = rng.standard_normal((30, 5000))              # zero mean: correlation == covariance
    assert hfc(Y, 1e-3)[0] == 0


def test_a_smaller_false_alarm_rate_never_counts_more():
    Y = _scene(5, snr_db=25, seed=3).data.reshape(80, -1)
    assert hfc(Y, 1e-6)[0] <= hfc(Y, 1e-2)[0]


def test_the_neighbour_noise_count_is_recommended_only_when_the_noise_edge_more_than_doubles_it():
    def estimate(regression, neighbour):
        empty = np.zeros(3)
        return CountEstimate(regression, regression, neighbour, 4, 1e-3, 100, empty, empty, empty, empty, empty, 1.1)

    assert (estimate(78, 5).recommended, estimate(78, 5).recommended_by) == (5, "hysime-spatial")
    assert (estimate(8, 5).recommended, estimate(8, 5).recommended_by) == (8, "rmt")
    assert estimate(6, None).recommended == 6
    assert estimate(1, 1).recommended == 2                 # never fewer than two


def test_sampling_keeps_at_most_about_the_limit_and_skips_nodata():
    scene = _scene(3, seed=5, size=64)
    scene.valid[:10] = False
    scene.data[:, ~scene.valid] = 0
    Y, noise = sample_pixels(ArraySource(scene), max_pixels=500)
    assert 450 <= Y.shape[1] <= 500 and noise is not None and (noise > 0).all()
    assert not (Y == 0).all(axis=0).any()              # no nodata pixel (held as 0) among them


def test_too_few_pixels_or_bands_are_clear_errors():
    with pytest.raises(InputError, match="at least 3 bands"):
        count_endmembers(np.ones((2, 100)))
    with pytest.raises(InputError, match="valid pixels"):
        count_endmembers(np.random.default_rng(0).random((20, 10)))
    with pytest.raises(InputError, match="false-alarm rate"):
        hfc(np.random.default_rng(0).random((5, 100)), 0.7)


def test_the_estimate_is_json_ready():
    estimate = count_source(ArraySource(_scene(3, seed=6)))
    data = json.loads(json.dumps(estimate.to_dict()))
    assert data["recommended"] == estimate.recommended and data["recommended_by"] in ("rmt", "hysime-spatial")
    assert data["rmt"] == estimate.rmt and data["noise_edge"] > 1
    assert "recommended" in estimate.describe()
