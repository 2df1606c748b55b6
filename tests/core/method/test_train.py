"""Training: determinism, best state kept, starts, early stop, progress and cancel."""
from dataclasses import replace

import numpy as np
import pytest

from dffn_qgis.core.run.config import params_for
from dffn_qgis.core.errors import Cancelled, InputError
from dffn_qgis.core.run.progress import Monitor
from dffn_qgis.core.eval.synthetic import make_scene
from dffn_qgis.core.method.train import train

TINY = dict(n_endmembers=3, device="cpu", precision="float32", threads=1)


@pytest.fixture(scope="module")
def tiny():
    s = make_scene(12, 10, 16, 3, seed=3, snr_db=40)
    L = s.cube.shape[0]
    return s.cube.astype(np.float32), s.cube.reshape(L, -1).astype(np.float32)


def _train(tiny, monitor=None, valid=None, judge=None, **kw):
    image, Y = tiny
    params = params_for("paper", **{**TINY, **kw})
    return train(image, Y if valid is None else Y[:, valid], valid, params, monitor, judge=judge)


def test_same_seed_same_output_on_cpu(tiny):
    a = _train(tiny, epochs=6, seed=7)
    b = _train(tiny, epochs=6, seed=7)
    np.testing.assert_array_equal(a.abundances, b.abundances)
    np.testing.assert_array_equal(a.endmembers, b.endmembers)
    assert a.history == b.history
    c = _train(tiny, epochs=6, seed=8)
    assert not np.array_equal(a.endmembers, c.endmembers)


def test_outputs_shapes_ranges_and_best_loss(tiny):
    out = _train(tiny, epochs=8)
    assert out.abundances.shape == (3, 120) and out.endmembers.shape == (16, 3)
    assert (out.abundances >= 0).all()
    assert ((out.endmembers > 0) & (out.endmembers < 1)).all()
    assert out.loss == pytest.approx(min(out.history))
    assert out.epochs_run == 8 and len(out.history) == 8
    assert out.device == "cpu"


def test_several_starts_keep_the_lowest_loss(tiny):
    out = _train(tiny, epochs=10, starts=3, start_epochs=4)
    assert len(out.start_losses) == 3
    assert out.chosen_start == int(np.argmin(out.start_losses))
    assert out.epochs_run == 3 * 4 + (10 - 4)
    assert len(out.history) == 10


def test_whole_starts_keep_the_lowest_loss_run(tiny):
    # start_epochs 0: every start trains the whole schedule and the lowest-loss one is kept as it is
    out = _train(tiny, epochs=6, starts=2, start_epochs=0, seed=5)
    assert len(out.start_losses) == 2 and out.start_losses[0] != out.start_losses[1]
    assert out.chosen_start == int(np.argmin(out.start_losses))
    assert out.loss == min(out.start_losses) and out.epochs_run == 2 * 6 and len(out.history) == 6
    # the kept run is the one a single start of that initialisation trains: start 1 is the seed's run
    single = _train(tiny, epochs=6, seed=5)
    assert (out.history == single.history) == (out.chosen_start == 0)
    assert out.start_losses[0] == single.loss


def test_patience_stops_once_the_loss_stalls(tiny):
    # a huge min_delta makes every epoch count as "no improvement"
    out = _train(tiny, epochs=50, patience=3, min_delta=0.9)
    assert out.stopped_early and out.epochs_run == 4 and out.start_losses == [out.loss]


def test_patience_without_min_delta_stops_when_the_loss_does_not_improve_at_all(tiny, monkeypatch):
    _scripted_losses(monkeypatch, [[0.5, 0.4, 0.3] + [0.35] * 40])
    out = _train(tiny, epochs=30, patience=4)
    assert out.stopped_early and out.epochs_run == 7


def test_valid_subset_trains_on_valid_pixels_only(tiny):
    valid = np.arange(0, 120, 2)
    out = _train(tiny, epochs=3, valid=valid)
    assert out.abundances.shape == (3, 60)


def test_progress_every_epoch_and_cancel(tiny):
    seen = []
    _train(tiny, monitor=Monitor(progress=lambda f, m: seen.append((f, m))), epochs=5)
    epochs = [m for _, m in seen if "epoch" in m]
    assert len(epochs) == 5 and seen[-1][0] == pytest.approx(1.0)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)
    calls = {"n": 0}

    def cancel_on_third():
        calls["n"] += 1
        return calls["n"] >= 3

    with pytest.raises(Cancelled):
        _train(tiny, monitor=Monitor(is_cancelled=cancel_on_third), epochs=50)
    assert calls["n"] == 3


def test_log_names_device_and_precision(tiny):
    lines = []
    _train(tiny, monitor=Monitor(info=lines.append), epochs=2)
    assert any("device cpu" in line and "float32" in line and "torch" in line for line in lines)


def test_cuda_without_gpu_is_a_clear_error(tiny):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(InputError, match="no CUDA device"):
        _train(tiny, epochs=1, device="cuda")


def test_the_spike_limit_scales_a_gradient_far_above_its_recent_median(tiny):
    import torch
    from dffn_qgis.core.method.train import _Run
    image, Y = tiny
    run = _Run(params_for("paper", **TINY), Y.shape[0], Y.shape[1], torch.device("cpu"))
    group = run.optimizer.param_groups[0]["params"]

    def gradient(scale):
        for p in group:
            p.grad = torch.full_like(p, scale)
        run.optimizer.param_groups[1]["params"][0].grad = None      # the other group: no gradient
        return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in group])))

    steady = [gradient(1.0 + 0.01 * i) for i in range(_Run.SPIKE_WINDOW)]
    for i in range(_Run.SPIKE_WINDOW):
        gradient(1.0 + 0.01 * i)
        run._limit_spikes(3.0)
    assert run.spikes_limited == 0                                    # ordinary steps pass untouched
    spike = gradient(10.0)
    run._limit_spikes(3.0)
    after = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in group])))
    assert run.spikes_limited == 1 and spike > 3 * np.median(steady)
    assert after == pytest.approx(3.0 * np.median(steady), rel=1e-4)      # float32 norms
    assert run.grad_norms[0][-1] == pytest.approx(spike, rel=1e-6)   # the history keeps the norm as computed


def test_the_spike_limit_is_off_by_default_and_leaves_training_unchanged_when_never_reached(tiny):
    plain = _train(tiny, epochs=30, seed=3)
    limited = _train(tiny, epochs=30, seed=3, grad_clip=1000.0)
    assert params_for("paper").grad_clip == 0
    np.testing.assert_array_equal(plain.endmembers, limited.endmembers)


def _scripted_losses(monkeypatch, sequences):
    """Make each new run's epochs report the losses of the next sequence (then its last value)."""
    from dffn_qgis.core.method import train as train_module
    real_init, real_epoch = train_module._Run.__init__, train_module._Run.epoch
    queue = list(sequences)

    def init(self, *a, **k):
        real_init(self, *a, **k)
        self.script = queue.pop(0)

    def epoch(self, x, Y, valid, params, dtype, y_norm=None):
        real_epoch(self, x, Y, valid, params, dtype, y_norm)         # the network still trains
        value = self.script[min(len(self.history) - 1, len(self.script) - 1)]
        self.history[-1] = value
        if value < self.best_loss or len(self.history) == 1:
            self.best_loss, self.best_epoch = value, len(self.history) - 1
            self.best_state = {k: v.clone() for k, v in self.model.state_dict().items()}
        return value

    monkeypatch.setattr(train_module._Run, "__init__", init)
    monkeypatch.setattr(train_module._Run, "epoch", epoch)


def test_a_run_stuck_in_the_first_half_is_restarted_and_the_lowest_loss_kept(tiny, monkeypatch):
    stuck = [0.5, 0.3, 0.2] + [0.9] * 40              # no new low after epoch 3
    healthy = [0.5 - 0.015 * i for i in range(30)]    # improves to the end: 0.065
    _scripted_losses(monkeypatch, [stuck, healthy])
    infos = []
    out = _train(tiny, monitor=Monitor(info=infos.append), epochs=30, patience=5, restarts=2)
    assert out.restarts == 1 and out.loss == pytest.approx(0.065)
    assert out.epochs_run == 8 + 30 and len(out.history) == 30 and not out.stopped_early
    assert any("starting again from a new initialisation (restart 1 of at most 2)" in m for m in infos)


def test_restarts_are_bounded_and_keep_the_lowest_loss(tiny, monkeypatch):
    worse = [0.5, 0.4] + [0.95] * 40
    better = [0.5, 0.25] + [0.9] * 40
    _scripted_losses(monkeypatch, [worse, better, worse])
    infos = []
    out = _train(tiny, monitor=Monitor(info=infos.append), epochs=20, patience=4, restarts=2)
    assert out.restarts == 2 and out.loss == pytest.approx(0.25) and out.stopped_early is False
    assert out.epochs_run == 6 + 6 + 6
    assert any("a run given up earlier reached the lowest loss (0.25000): keeping it" in m for m in infos)


def test_a_stall_in_the_second_half_stops_without_restart(tiny, monkeypatch):
    late = [0.5 - 0.02 * i for i in range(12)] + [0.2] * 40     # improves for 12 of 20 epochs
    _scripted_losses(monkeypatch, [late])
    out = _train(tiny, epochs=20, patience=4, restarts=2)
    assert out.restarts == 0 and out.stopped_early and out.epochs_run == 17


def test_a_stall_that_began_in_the_first_half_restarts_though_it_is_seen_in_the_second(tiny, monkeypatch):
    # last new low at epoch 8 of 20: the patience rule (6 epochs) sees the stall at epoch 14, in the
    # second half, but the loss stopped improving in the first, while the learning rate was high
    early = [0.5 - 0.03 * i for i in range(8)] + [0.4] * 40
    healthy = [0.5 - 0.02 * i for i in range(20)]
    _scripted_losses(monkeypatch, [early, healthy])
    out = _train(tiny, epochs=20, patience=6, restarts=2)
    assert out.restarts == 1 and out.restart_reasons == ["stalled"]
    assert out.epochs_run == 14 + 20 and out.loss == pytest.approx(0.12)


def test_no_restart_when_none_is_allowed(tiny, monkeypatch):
    _scripted_losses(monkeypatch, [[0.5, 0.2] + [0.9] * 40])
    out = _train(tiny, epochs=12, patience=3, restarts=0)
    assert out.restarts == 0 and out.stopped_early and out.epochs_run == 5


def test_the_bar_reaches_the_end_steadily_when_training_stops_early(tiny):
    seen = []
    out = _train(tiny, monitor=Monitor(progress=lambda f, m: seen.append(f)), epochs=200, patience=10,
                 min_delta=0.9)
    assert out.stopped_early and out.epochs_run == 11
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    steps = np.diff(seen[:out.epochs_run])                  # the epochs' own reports
    assert seen[out.epochs_run - 1] == pytest.approx(1.0)   # the stopping epoch ends the bar ...
    assert steps.max() <= 0.2                               # ... without a jump (was 0.05 -> 1.0)


def test_input_projection_is_the_leading_directions_of_the_valid_pixels():
    from dffn_qgis.core.method.train import input_projection
    rng = np.random.default_rng(0)
    L, H, W = 10, 8, 9
    basis = np.linalg.qr(rng.standard_normal((L, 3)))[0]                    # three directions
    image = np.einsum("lk,khw->lhw", basis, rng.uniform(0.5, 1.0, (3, H, W)) * [[[4.0]], [[2.0]], [[1.0]]])
    valid_index = np.arange(0, H * W, 2)
    image.reshape(L, -1)[:, 1::2] = 100.0 + rng.uniform(0, 1, (L, H * W // 2))    # invalid pixels: ignored
    U = input_projection(image, valid_index, 2)[0].numpy()
    assert U.shape == (2, L)
    np.testing.assert_allclose(U @ U.T, np.eye(2), atol=1e-5)               # orthonormal rows
    assert np.all(U[np.arange(2), np.argmax(np.abs(U), axis=1)] > 0)       # signs fixed
    # 0: as many as the valid pixels' rank, whose span holds them
    U, outside = input_projection(image, valid_index, 0)
    U = U.numpy()
    assert U.shape == (3, L) and outside < 1e-6
    np.testing.assert_allclose(U.T @ U @ basis, basis, atol=1e-5)
    windows = np.stack([image, image])                                      # B x L x h x w: same answer
    np.testing.assert_allclose(input_projection(windows, valid_index, 0)[0].numpy(), U, atol=1e-6)
    assert input_projection(image, None, 0) == (None, 0.0)                  # with the invalid: full rank
    assert input_projection(image, valid_index, L) == (None, 0.0)           # the bands, as published
    assert 0.05 < input_projection(image, valid_index, 2)[1] < 0.5          # the third direction left out


def test_the_first_convolution_on_the_image_rank_trains_as_on_the_bands():
    """``input_components`` 0 on an image of low rank: the same training as on the bands (the same
    function and gradients; only the order of the sums differs), on fewer multiplications."""
    rng = np.random.default_rng(1)
    L, H, W = 16, 7, 8
    image = np.einsum("lk,khw->lhw", rng.uniform(0.1, 1.0, (L, 3)), rng.uniform(0.1, 1.0, (3, H, W)))
    image = (image / image.max()).astype(np.float32)
    runs = {}
    for components in (0, L):
        params = params_for("fast", n_endmembers=3, epochs=3, device="cpu", threads=1, patience=0,
                            input_components=components)
        runs[components] = train(image, image.reshape(L, -1), None, params)
    reduced, bands = runs[0], runs[L]
    assert reduced.input_components["components"] == 3 and bands.input_components["components"] == 0
    assert reduced.input_components["share_outside"] < 1e-6
    assert reduced.model.input_projection.shape == (3, L) and bands.model.input_projection is None
    np.testing.assert_allclose(reduced.history, bands.history, rtol=1e-4)
    np.testing.assert_allclose(reduced.endmembers, bands.endmembers, atol=1e-4)


def test_training_with_input_components_runs_on_the_projection():
    rng = np.random.default_rng(1)
    L, H, W = 16, 7, 8
    image = rng.uniform(0.1, 1.0, (L, H, W)).astype(np.float32)
    params = params_for("fast", n_endmembers=3, epochs=4, device="cpu", threads=1, input_components=5)
    outcome = train(image, image.reshape(L, -1), None, params)
    assert outcome.model.input_projection.shape == (5, L) and outcome.input_components["components"] == 5
    assert outcome.endmembers.shape == (L, 3) and np.isfinite(outcome.loss)
    full_rank = train(image, image.reshape(L, -1), None, replace(params, input_components=0))
    assert full_rank.model.input_projection is None and full_rank.input_components["components"] == 0


def test_a_run_the_judge_finds_poor_is_restarted_once_and_the_accepted_one_kept(tiny, monkeypatch):
    poor = [0.5 - 0.02 * i for i in range(10)]          # lower loss, but its endmembers are judged poor
    fresh = [0.6 - 0.02 * i for i in range(10)]
    _scripted_losses(monkeypatch, [poor, fresh])
    verdicts = iter(["worse than the pixels", None])
    seen, infos = [], []

    def judge(E):
        seen.append(E.shape)
        return next(verdicts)

    out = _train(tiny, monitor=Monitor(info=infos.append), epochs=10, patience=0, restarts=2, judge=judge)
    assert seen == [(tiny[1].shape[0], 3)] * 2
    assert out.restarts == 1 and out.restart_reasons == ["poor fit"] and out.epochs_run == 20
    assert out.loss == pytest.approx(0.42)              # the accepted run, though the rejected one's loss is lower
    assert any("worse than the pixels: starting again from a new initialisation (restart 1 of at most 2)" in m
               for m in infos)


def test_when_every_run_is_judged_poor_the_lowest_loss_is_kept(tiny, monkeypatch):
    _scripted_losses(monkeypatch, [[0.3] * 10, [0.4] * 10])
    infos = []
    out = _train(tiny, monitor=Monitor(info=infos.append), epochs=10, patience=0, restarts=2,
                 judge=lambda E: "poor")
    assert out.restarts == 1 and out.loss == pytest.approx(0.3)            # one restart for a poor fit, not two
    assert any("after the restart too, poor" in m for m in infos)
    assert any("a run given up earlier reached the lowest loss (0.30000): keeping it" in m for m in infos)


def test_a_run_given_up_for_a_stall_is_judged_before_it_is_kept(tiny, monkeypatch):
    """A stalled run is kept in place of the runs that trained to their end only with a lower loss than
    theirs and the judge's consent (here the judge rejects every run: the finished runs' lowest loss is
    kept, not the stalled run that had been kept unjudged before)."""
    falling = [[start - 0.005 * i for i in range(20)] for start in (0.2, 0.3)]
    _scripted_losses(monkeypatch, [[0.5, 0.3] + [0.9] * 40, *falling])
    calls = []
    out = _train(tiny, epochs=20, patience=4, restarts=2, judge=lambda E: calls.append(1) or "poor")
    assert out.restart_reasons == ["stalled", "poor fit"] and len(calls) == 2        # its loss is higher
    assert out.loss == pytest.approx(0.105)
    monkeypatch.undo()
    _scripted_losses(monkeypatch, [[0.5, 0.05] + [0.9] * 40, *falling])
    verdicts = iter(["poor", "poor", None])               # the stalled run, judged last, is accepted
    out = _train(tiny, epochs=20, patience=4, restarts=2, judge=lambda E: next(verdicts))
    assert out.loss == pytest.approx(0.05)


def test_no_judging_without_restarts_or_with_none_left(tiny, monkeypatch):
    calls = []
    _train(tiny, epochs=4, restarts=0, judge=lambda E: calls.append(1) or "poor")
    assert calls == []
    _scripted_losses(monkeypatch, [[0.5, 0.2] + [0.9] * 40, [0.5 - 0.01 * i for i in range(20)]])
    out = _train(tiny, epochs=20, patience=4, restarts=1, judge=lambda E: calls.append(1) or "poor")
    assert out.restarts == 1 and out.restart_reasons == ["stalled"] and calls == []


def test_training_under_bfloat16_autocast_runs_and_its_loss_is_float32():
    """Under bfloat16 autocast the endmember module gives bfloat16 endmembers; the loss, which never
    forms E @ A, takes them in float32 (it raised a dtype error before)."""
    rng = np.random.default_rng(3)
    L, H, W = 12, 6, 6
    image = rng.uniform(0.1, 1.0, (L, H, W)).astype(np.float32)
    params = params_for("fast", n_endmembers=3, epochs=2, device="cpu", threads=1, precision="bfloat16")
    outcome = train(image, image.reshape(L, -1), None, params)
    assert outcome.precision == "bfloat16" and np.isfinite(outcome.loss)
    assert outcome.endmembers.dtype == np.float32
