"""Endmember count: HySime and HFC on generated scenes of known size, the noise estimate, sampling."""
import json

import numpy as np
import pytest

from dffn_qgis.core.errors import InputError
from dffn_qgis.core.eval import synthetic
from dffn_qgis.core.io.raster_source import ArraySource
from dffn_qgis.core.io.scene import Scene
from dffn_qgis.core.method.endmember_count import (CountEstimate, count_endmembers, count_source, estimate_noise,
                                                   hfc, sample_pixels)


def _scene(P, snr_db=35.0, seed=0, size=60, bands=80):
    s = synthetic.make_scene(size, size, bands, P, seed=seed, snr_db=snr_db)
    cube = (s.cube / s.cube.max()).astype(np.float32)
    return Scene(data=cube, valid=np.ones(cube.shape[1:], bool), wavelengths=s.wavelengths, wavelength_units="nm",
                 band_indices=list(range(1, bands + 1)), band_names=[f"b{i}" for i in range(bands)], source="s")


@pytest.mark.parametrize("P", [3, 4, 6])
def test_hysime_finds_the_number_of_materials(P):
    scene = _scene(P, seed=P)
    estimate = count_source(ArraySource(scene))
    assert estimate.hysime == P and estimate.recommended == P
    assert estimate.hysime_spatial is not None and abs(estimate.hysime_spatial - P) <= 1
    assert 1 <= estimate.hfc <= P + 1                  # HFC undercounts correlated spectra


def test_regression_noise_estimate_matches_white_noise():
    rng = np.random.default_rng(1)
    s = synthetic.make_scene(50, 50, 60, 4, seed=1, snr_db=None)
    Y = s.cube.reshape(60, -1).astype(np.float64)
    sigma = 0.01 * Y.mean()
    noise = estimate_noise(Y + sigma * rng.standard_normal(Y.shape))
    assert np.median(noise.std(axis=1)) == pytest.approx(sigma, rel=0.2)


def test_pure_noise_has_no_signal_dimension_in_hfc():
    rng = np.random.default_rng(2)
    Y = rng.standard_normal((30, 5000))              # zero mean: correlation == covariance
    assert hfc(Y, 1e-3)[0] == 0


def test_a_smaller_false_alarm_rate_never_counts_more():
    Y = _scene(5, snr_db=25, seed=3).data.reshape(80, -1)
    assert hfc(Y, 1e-6)[0] <= hfc(Y, 1e-2)[0]


def test_the_neighbour_noise_count_is_recommended_only_when_the_regression_more_than_doubles_it():
    def estimate(regression, neighbour):
        empty = np.zeros(3)
        return CountEstimate(regression, neighbour, 4, 1e-3, 100, empty, empty, empty, empty)

    assert (estimate(78, 5).recommended, estimate(78, 5).recommended_by) == (5, "hysime-spatial")
    assert (estimate(8, 5).recommended, estimate(8, 5).recommended_by) == (8, "hysime")
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
    assert data["recommended"] == estimate.recommended and data["recommended_by"] in ("hysime", "hysime-spatial")
    assert "recommended" in estimate.describe()
