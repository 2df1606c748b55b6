"""Endmembers from the image's own pixels: taken on an exact simplex, left alone where there is noise."""
import numpy as np
import pytest

from dffn_qgis.core.eval import synthetic
from dffn_qgis.core.eval.metrics import sad_matrix
from dffn_qgis.core.io.scene import Scene
from dffn_qgis.core.method.pixel_simplex import (TAIL_RATIO, ImagePixels, SimplexCheck, check_pixel_simplex,
                                                 fit_measures, seen_shortfall, shortfall)
from dffn_qgis.core.method.signal_subspace import signal_subspace
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
    check = check_pixel_simplex(ImagePixels.of(Y, 4, seed=1), smeared(s.endmembers), ratio=0.25)
    assert check.use_pixels
    assert check.pixel_angle < 1e-4 < check.network_angle
    sad = sad_matrix(check.endmembers, s.endmembers)
    assert sad.min(axis=0).max() < 1e-4                       # every true endmember found exactly
    assert "own pixels" in check.note() and check.to_dict()["endmembers_from"].startswith("image pixels (")


@pytest.mark.parametrize("snr_db", [30, 40])
def test_noisy_pixels_leave_the_network_endmembers(snr_db):
    s, Y = pixels(snr_db=snr_db)
    network = smeared(s.endmembers, 0.03)
    check = check_pixel_simplex(ImagePixels.of(Y, 4, seed=1), network, ratio=0.25)
    assert not check.use_pixels
    assert check.endmembers is not None and np.allclose(check.endmembers, network)
    assert check.pixel_angle > 0.25 * check.network_angle
    assert "from the network" in check.note()


def test_the_mean_fit_angle_is_zero_on_the_simplex_and_grows_off_it():
    s, Y = pixels(snr_db=None)
    assert fit_measures(Y, s.endmembers)[0] < 1e-5
    assert fit_measures(Y, s.endmembers[:, :3])[0] > 1e-3


def test_the_run_takes_the_pixels_and_records_why():
    s, _ = pixels(snr_db=None)
    scene = Scene(data=s.cube, valid=np.ones(s.cube.shape[1:], bool))
    params = params_for("fast", n_endmembers=4, epochs=3, device="cpu", threads=1)
    result = unmix_scene(scene, params)
    assert result.record["pixel_simplex"]["endmembers_from"].startswith("image pixels (")
    assert sad_matrix(result.endmembers, s.endmembers).min(axis=0).max() < 1e-4
    A = result.abundances.reshape(4, -1)
    truth = s.abundances.reshape(4, -1)
    order = sad_matrix(result.endmembers, s.endmembers).argmin(axis=0)
    assert np.abs(A[order] - truth).max() < 1e-3            # fractions of the true endmembers
    assert result.record["pixel_simplex"]["reason"] == "exact simplex"
    short = unmix_scene(scene, params_for("fast", n_endmembers=4, epochs=3, device="cpu", threads=1,
                                          pixel_simplex=0.0))          # 3 epochs, then a restart: still short
    assert short.record["pixel_simplex"]["reason"] == "better fit"
    assert short.record["restart_reasons"] == ["poor fit"]
    off = unmix_scene(scene, params_for("fast", n_endmembers=4, epochs=3, device="cpu", threads=1,
                                        pixel_simplex=0.0, restarts=0))
    assert "pixel_simplex" not in off.record


def test_the_scalable_path_takes_them_from_its_training_windows():
    s, _ = pixels(snr_db=None)
    scene = Scene(data=s.cube, valid=np.ones(s.cube.shape[1:], bool))
    params = params_for("fast", n_endmembers=4, epochs=3, device="cpu", threads=1, method="scalable",
                        train_windows=6, window=12)
    result = unmix_scene(scene, params)
    assert result.record["method"] == "scalable"
    assert result.record["pixel_simplex"]["endmembers_from"].startswith("image pixels (")
    assert sad_matrix(result.endmembers, s.endmembers).min(axis=0).max() < 1e-4


def test_network_abundances_give_way_to_fits_when_the_pixels_are_taken():
    s, _ = pixels(snr_db=None)
    scene = Scene(data=s.cube, valid=np.ones(s.cube.shape[1:], bool))
    messages = []
    from dffn_qgis.core.run.progress import Monitor
    monitor = Monitor(info=messages.append)
    result = unmix_scene(scene, params_for("fast", n_endmembers=4, epochs=3, device="cpu", threads=1,
                                           abundances="network"), monitor)
    assert result.record["pixel_simplex"]["endmembers_from"].startswith("image pixels (")
    assert result.record["params"]["abundances"] == "refined"
    assert any("own pixels span it exactly" in m for m in messages)
    assert any("least-squares fit on those endmembers" in m for m in messages)
    order = sad_matrix(result.endmembers, s.endmembers).argmin(axis=0)
    assert np.abs(result.abundances.reshape(4, -1)[order] - s.abundances.reshape(4, -1)).max() < 1e-3


def test_endmembers_that_miss_a_material_explain_the_image_worse_than_its_pixels():
    s, Y = pixels(snr_db=40)
    reference = ImagePixels.of(Y, 4, seed=1)
    assert check_pixel_simplex(reference, s.endmembers, 0.25).poorer_fit() is None     # the truth: no worse
    missed = s.endmembers.copy()
    missed[:, 0] = 0.5 * (missed[:, 1] + missed[:, 2])                      # one material lost
    why = check_pixel_simplex(reference, missed, 0.25).poorer_fit()
    assert why is not None and "worse than its own extreme pixels" in why
    assert f"{reference.angle:.3g} rad" in why and reference.fit(missed)[0] > reference.angle
    exact = check_pixel_simplex(reference, missed, ratio=0.99)              # pixels that replace them anyway
    assert exact.reason == "exact simplex" and exact.poorer_fit() is None


def test_a_material_left_out_shows_in_the_tail_of_the_residuals():
    """Noise sets the mean angle (dark pixels have the largest whatever the endmembers); a material left
    out leaves its own pixels' residuals far above the noise, which the tail of the residual norms shows."""
    s, Y = pixels(snr_db=30)
    reference = ImagePixels.of(Y, 4, seed=1)
    truth = check_pixel_simplex(reference, s.endmembers, 0.25)
    assert truth.network_tail < TAIL_RATIO * truth.pixel_tail and truth.poorer_fit() is None
    twice = s.endmembers.copy()
    twice[:, 0] = 0.97 * twice[:, 1] + 0.03 * twice[:, 2]                  # one material found twice, one lost
    check = check_pixel_simplex(reference, twice, 0.25, at_least_pixels=True)
    assert check.network_tail > TAIL_RATIO * check.pixel_tail
    assert check.poorer_fit() is not None and check.use_pixels
    assert "residual norm of the worst" in check.note()
    record = check.to_dict()
    assert record["network_residual_p95"] == check.network_tail and record["pixel_residual_p95"] == check.pixel_tail


def left_out_scene(seed=0):
    """Vegetation, soil, water and concrete (a tenth of the pixels) at 60 bands, pure or 70 % pure, with
    white noise that makes the dark water pixels the worst fitted by any endmembers."""
    wl = np.linspace(400, 2500, 60)
    E = np.stack([synthetic.vegetation(wl), synthetic.soil(wl), synthetic.water(wl), synthetic.concrete(wl)], 1)
    rng = np.random.default_rng(seed)
    n = 2000
    A = np.zeros((4, n))
    A[rng.choice(4, n, p=[0.35, 0.25, 0.3, 0.1]), np.arange(n)] = 1
    mixed = rng.random(n) < 0.5
    A[:, mixed] = 0.7 * A[:, mixed] + 0.3 * rng.dirichlet(np.full(4, 0.5), n)[mixed].T
    return E, E @ A + rng.normal(0, 0.01, (60, n))


def test_a_material_left_out_is_filled_in_from_the_pixels_and_the_rest_kept():
    """Vegetation learned twice, concrete missed, the others right (the generated 1000 x 1000 scene's
    failure): the mean angle, set by the noisy water pixels, passes it; the tail does not, and one pixel
    replaces one of the two copies while the other endmembers stay the network's (the water pixel
    picked is far noisier than the network's water)."""
    E, Y = left_out_scene()
    reference = ImagePixels.of(Y, 4, seed=1)
    network = E.copy()
    network[:, 3] = 0.97 * E[:, 0] + 0.03 * E[:, 1]                      # concrete lost, vegetation twice
    angle, tail = reference.fit(network)
    assert angle < reference.angle and tail > TAIL_RATIO * reference.tail
    check = check_pixel_simplex(reference, network, 0.25, at_least_pixels=True)
    assert check.reason == "material left out" and len(check.swapped) == 1
    swapped, pixel = check.swapped[0]
    assert swapped in (0, 3) and np.array_equal(check.endmembers[:, swapped], reference.endmembers[:, pixel])
    kept = [k for k in range(4) if k != swapped]
    assert np.array_equal(check.endmembers[:, kept], network[:, kept])
    assert sad_matrix(check.endmembers, E).min(axis=0).max() < 0.05            # every material found
    assert sad_matrix(reference.pixels, E).min(axis=0).max() > 0.3             # the pixels alone miss water
    assert reference.fit(check.endmembers)[1] <= TAIL_RATIO * reference.tail
    assert "fill in what they left out" in check.note()
    assert check.to_dict()["endmembers_from"].startswith("network and image pixels")
    assert check.to_dict()["swapped"] == [[swapped, pixel]]
    assert check_pixel_simplex(reference, network, 0.25).swapped == ()     # without restarts: judged only
    assert check_pixel_simplex(reference, E, 0.25, at_least_pixels=True).reason == ""   # the truth passes


def test_the_pixels_taken_are_their_denoised_spectra():
    """A picked pixel carries its noise; when the run denoises, the taken endmembers are the same pixels as
    the training saw them (clipped at zero), while the judge's measures stay those of the pixels as read."""
    s, Y = pixels(snr_db=30)
    clean = s.abundances.reshape(4, -1).T @ s.endmembers.T                # the noise-free pixels (n x L)
    clean = clean.T - 0.001                                                # a little below zero in places
    plain, denoised = ImagePixels.of(Y, 4, seed=1), ImagePixels.of(Y, 4, seed=1, clean=clean)
    assert denoised.angle == plain.angle and denoised.tail == plain.tail and np.array_equal(denoised.pixels,
                                                                                            plain.pixels)
    assert plain.endmembers is plain.pixels and denoised.endmembers.min() >= 0.0
    assert sad_matrix(denoised.endmembers, s.endmembers).min(axis=0).max() < \
        sad_matrix(plain.endmembers, s.endmembers).min(axis=0).max()
    twice = s.endmembers.copy()
    twice[:, 0] = 0.97 * twice[:, 1] + 0.03 * twice[:, 2]
    check = check_pixel_simplex(denoised, twice, 0.25, at_least_pixels=True)
    assert check.use_pixels and np.array_equal(check.endmembers, denoised.endmembers)


def test_two_materials_merged_show_more_clearly_on_the_denoised_pixels():
    """What the training saw (the pixels on their signal subspace) holds far less noise than the pixels as
    read: endmembers that merge two materials fit it worse than its extreme pixels do, the truth does not."""
    s, Y = pixels(snr_db=25)
    seen = ImagePixels.of(signal_subspace(Y, 4).project(Y), 4, seed=1)
    assert seen_shortfall(seen, s.endmembers) is None
    merged = s.endmembers.copy()
    merged[:, 0] = 0.5 * (merged[:, 0] + merged[:, 1])
    why = seen_shortfall(seen, merged)
    assert why is not None and "denoised" in why and f"{seen.angle:.3g} rad" in why
    as_read = ImagePixels.of(Y, 4, seed=1)
    assert seen.fit(merged)[0] / seen.angle > 1.5 > 1.0 > as_read.fit(merged)[0] / as_read.angle
    assert seen_shortfall(ImagePixels.of(Y[:, :2], 4), merged) is None       # no pixels to compare with


def test_either_measure_makes_a_poorer_fit():
    def check(network_angle, pixel_angle, network_tail, pixel_tail):
        return SimplexCheck(np.eye(3), False, network_angle, pixel_angle, 0.25, "N-FINDR", "", network_tail,
                            pixel_tail)
    assert shortfall(0.10, 0.11, 1.0, 1.0) == "" and check(0.10, 0.11, 1.0, 1.0).poorer_fit() is None
    assert shortfall(0.12, 0.11, 1.0, 1.0) == "angle"
    assert "mean reconstruction angle 0.12 rad" in check(0.12, 0.11, 1.0, 1.0).poorer_fit()
    assert shortfall(0.09, 0.11, 3.0, 1.0) == "tail"                          # better angle, a heavy tail
    left_out = check(0.09, 0.11, 3.0, 1.0).poorer_fit()
    assert "unexplained" in left_out and "3 times" in left_out and "N-FINDR" in left_out
    assert shortfall(0.09, 0.11, 1.9, 1.0) == ""
    assert shortfall(0.09, float("nan"), 3.0, float("nan")) == ""           # nothing to compare with

def test_too_few_distinct_pixels_judge_nothing():
    Y = np.random.default_rng(0).random((20, 2))                           # two pixels, three endmembers
    reference = ImagePixels.of(Y, 3, seed=1)
    assert reference.pixels is None and np.isnan(reference.angle)
    assert check_pixel_simplex(reference, np.random.default_rng(0).random((20, 3)), 0.25).poorer_fit() is None


def test_a_run_whose_endmembers_fit_worse_than_the_pixels_is_restarted(monkeypatch):
    """Wiring: the run's judge is the image's pixels; a poor fit costs one fresh start, recorded."""
    s, _ = pixels(snr_db=30)
    scene = Scene(data=s.cube, valid=np.ones(s.cube.shape[1:], bool))
    calls = []

    def poorer_fit(self):
        calls.append(self.endmembers.shape)
        return "scripted poor fit" if len(calls) == 1 else None

    monkeypatch.setattr(SimplexCheck, "poorer_fit", poorer_fit)
    messages = []
    from dffn_qgis.core.run.progress import Monitor
    params = params_for("fast", n_endmembers=4, epochs=4, patience=0, device="cpu", threads=1)
    result = unmix_scene(scene, params, Monitor(info=messages.append))
    assert calls == [(s.cube.shape[0], 4)] * 2
    assert result.record["restarts"] == 1 and result.record["restart_reasons"] == ["poor fit"]
    assert result.record["restart_notes"] == ["scripted poor fit"]
    assert result.record["epochs_run"] == 8
    assert any("scripted poor fit: starting again from a new initialisation" in m for m in messages)
    none = unmix_scene(scene, params_for("fast", n_endmembers=4, epochs=4, patience=0, device="cpu", threads=1,
                                         restarts=0))
    assert len(calls) == 2 and none is not None                            # no restarts: never judged


def test_a_run_that_fits_the_denoised_pixels_worse_is_restarted(monkeypatch):
    """Wiring: when the run denoises, the judge also compares on the pixels the training saw; a shortfall
    there costs one fresh start, recorded with its words. Without denoising that comparison is not made."""
    from dffn_qgis.core.run import driver
    s, _ = pixels(snr_db=30)
    scene = Scene(data=s.cube, valid=np.ones(s.cube.shape[1:], bool))
    seen = []

    def scripted(reference, endmembers):
        seen.append(reference.sample.shape)
        return "scripted denoised shortfall" if len(seen) == 1 else None

    monkeypatch.setattr(driver, "seen_shortfall", scripted)
    monkeypatch.setattr(SimplexCheck, "poorer_fit", lambda self: None)
    params = params_for("fast", n_endmembers=4, epochs=4, patience=0, device="cpu", threads=1)
    result = unmix_scene(scene, params)
    assert result.record["denoise"]["components"] < s.cube.shape[0] and len(seen) == 2
    assert result.record["restart_reasons"] == ["poor fit"]
    assert result.record["restart_notes"] == ["scripted denoised shortfall"]
    plain = unmix_scene(scene, params_for("fast", n_endmembers=4, epochs=4, patience=0, device="cpu", threads=1,
                                          denoise="off"))
    assert len(seen) == 2 and plain.record["restarts"] == 0


def test_the_run_kept_is_compared_with_the_pixels_once(monkeypatch):
    """The judge's verdict on the run kept and the final choice read one comparison (one NNLS fit)."""
    s, _ = pixels(snr_db=30)
    scene = Scene(data=s.cube, valid=np.ones(s.cube.shape[1:], bool))
    fitted = []

    def fit(self, endmembers):
        fitted.append(endmembers.shape)
        return 0.0, 0.0                              # the network's endmembers fit perfectly: accepted

    monkeypatch.setattr(ImagePixels, "fit", fit)
    params = params_for("fast", n_endmembers=4, epochs=4, patience=0, device="cpu", threads=1, denoise="off")
    result = unmix_scene(scene, params)
    assert fitted == [(s.cube.shape[0], 4)]
    assert result.record["restarts"] == 0 and result.record["pixel_simplex"]["endmembers_from"] == "network"
