"""Endmembers from the image's own pixels: taken on an exact simplex, left alone where there is noise."""
import numpy as np
import pytest

from dffn_qgis.core.eval import synthetic
from dffn_qgis.core.eval.metrics import sad_matrix
from dffn_qgis.core.io.scene import Scene
from dffn_qgis.core.method.pixel_simplex import check_pixel_simplex, mean_fit_angle
from dffn_qgis.core.run.config import params_for
from dffn_qgis.core.run.pipeline import unmix_scene


def pixels(snr_db, seed=3):
    s = synthetic.make_scene(40, 40, 60, 4, seed=seed, snr_db=snr_db, pure_pixels=True)
    return s, s.cube.reshape(s.cube.shape[0], -1).astype(np.float64)


def smeared(E, share=0.15):
    """Endmembers a little inside the simplex, as a network that stops short of the vertices gives."""
    return (1 - share) * E + share * E.mean(axis=1, keepdims=True)


def test_noise_free_pure_pixels_are_taken_and_are_the_truth():
    s, Y = pixels(snr_db=None)
    check = check_pixel_simplex(Y, smeared(s.endmembers), ratio=0.25, seed=1)
    assert check.use_pixels
    assert check.pixel_angle < 1e-4 < check.network_angle
    sad = sad_matrix(check.endmembers, s.endmembers)
    assert sad.min(axis=0).max() < 1e-4                       # every true endmember found exactly
    assert "own pixels" in check.note() and check.to_dict()["endmembers_from"] == "image pixels (VCA)"


@pytest.mark.parametrize("snr_db", [30, 40])
def test_noisy_pixels_leave_the_network_endmembers(snr_db):
    s, Y = pixels(snr_db=snr_db)
    network = smeared(s.endmembers, 0.03)
    check = check_pixel_simplex(Y, network, ratio=0.25, seed=1)
    assert not check.use_pixels
    assert check.endmembers is not None and np.allclose(check.endmembers, network)
    assert check.pixel_angle > 0.25 * check.network_angle
    assert "from the network" in check.note()


def test_mean_fit_angle_is_zero_on_the_simplex_and_grows_off_it():
    s, Y = pixels(snr_db=None)
    assert mean_fit_angle(Y, s.endmembers) < 1e-5
    assert mean_fit_angle(Y, s.endmembers[:, :3]) > 1e-3


def test_the_run_takes_the_pixels_and_records_why():
    s, _ = pixels(snr_db=None)
    scene = Scene(data=s.cube, valid=np.ones(s.cube.shape[1:], bool))
    params = params_for("fast", n_endmembers=4, epochs=3, device="cpu", threads=1)
    result = unmix_scene(scene, params)
    assert result.record["pixel_simplex"]["endmembers_from"] == "image pixels (VCA)"
    assert sad_matrix(result.endmembers, s.endmembers).min(axis=0).max() < 1e-4
    A = result.abundances.reshape(4, -1)
    truth = s.abundances.reshape(4, -1)
    order = sad_matrix(result.endmembers, s.endmembers).argmin(axis=0)
    assert np.abs(A[order] - truth).max() < 1e-3            # fractions of the true endmembers
    off = unmix_scene(scene, params_for("fast", n_endmembers=4, epochs=3, device="cpu", threads=1,
                                        pixel_simplex=0.0))
    assert "pixel_simplex" not in off.record


def test_the_scalable_path_takes_them_from_its_training_windows():
    s, _ = pixels(snr_db=None)
    scene = Scene(data=s.cube, valid=np.ones(s.cube.shape[1:], bool))
    params = params_for("fast", n_endmembers=4, epochs=3, device="cpu", threads=1, method="scalable",
                        train_windows=6, window=12)
    result = unmix_scene(scene, params)
    assert result.record["method"] == "scalable"
    assert result.record["pixel_simplex"]["endmembers_from"] == "image pixels (VCA)"
    assert sad_matrix(result.endmembers, s.endmembers).min(axis=0).max() < 1e-4


def test_network_abundances_give_way_to_fits_when_the_pixels_are_taken():
    s, _ = pixels(snr_db=None)
    scene = Scene(data=s.cube, valid=np.ones(s.cube.shape[1:], bool))
    messages = []
    from dffn_qgis.core.run.progress import Monitor
    monitor = Monitor(info=messages.append)
    result = unmix_scene(scene, params_for("fast", n_endmembers=4, epochs=3, device="cpu", threads=1,
                                           abundances="network"), monitor)
    assert result.record["pixel_simplex"]["endmembers_from"] == "image pixels (VCA)"
    assert result.record["params"]["abundances"] == "refined"
    assert any("own pixels span it exactly" in m for m in messages)
    assert any("least-squares fit on those endmembers" in m for m in messages)
    order = sad_matrix(result.endmembers, s.endmembers).argmin(axis=0)
    assert np.abs(result.abundances.reshape(4, -1)[order] - s.abundances.reshape(4, -1)).max() < 1e-3
