"""Training DFFN on one image, optionally from several starts (the lowest-loss one kept, or trained on).

With ``starts=1`` and ``patience=0`` this is the reference procedure: Adam + StepLR for a fixed
number of epochs, the state of the lowest-loss epoch kept (in memory) and evaluated in eval mode.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch

from ..run.config import DFFNParams
from ..run.device import Hardware, resolve_hardware
from .model import DFFN, dffn_loss
from ..run.progress import Monitor, as_monitor


@dataclass
class TrainOutcome:
    abundances: np.ndarray          # P x N_valid, float32
    endmembers: np.ndarray          # L x P, float32
    loss: float                     # lowest training loss (the kept state's)
    history: List[float]            # loss per epoch of the kept start
    epochs_run: int                 # epochs over all starts
    start_losses: List[float] = field(default_factory=list)
    chosen_start: int = 0
    device: str = "cpu"
    device_reason: str = ""
    precision: str = "float32"
    precision_reason: str = ""
    stopped_early: bool = False
    restarts: int = 0               # fresh starts after a run got stuck (docs/METHOD.md)
    restart_reasons: List[str] = field(default_factory=list)   # "stalled" or "poor fit", per restart
    restart_notes: List[str] = field(default_factory=list)     # why, in words (the log's line), per restart
    spikes_limited: int = 0         # epochs of the kept run whose gradient the spike limit scaled down
    input_components: dict = field(default_factory=dict)   # what the first convolution worked on
    model: Optional[DFFN] = None    # the kept state, in eval mode (for tiled inference)


def gradient_norm(parameters) -> float:
    """The Euclidean norm of the gradients of ``parameters`` together (0 when none has one)."""
    grads = [torch.linalg.vector_norm(p.grad) for p in parameters if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(grads))) if grads else 0.0


class _Run:
    """One start: a network, its optimiser and scheduler, and the best state seen so far."""

    def __init__(self, params: DFFNParams, n_bands: int, n_pixels: int, device: torch.device,
                 projection: Optional[torch.Tensor] = None):
        self.model = DFFN(n_bands, params.n_endmembers, n_pixels, params.kernel, params.padding,
                          projection).to(device)
        m = self.model
        groups = [{"params": [*m.aem.parameters(), *m.decoder.parameters()]},
                  {"params": m.eem.parameters(), "lr": params.eem_lr or params.lr}]
        self.optimizer = torch.optim.Adam(groups, lr=params.lr, weight_decay=params.weight_decay)
        if params.schedule == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, params.epochs)
        else:
            self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, params.lr_step, params.lr_gamma)
        self.best_loss = math.inf
        self.best_state = None
        self.best_epoch = -1
        self.history: List[float] = []
        self.stopped = False        # by the patience rule
        self.gain_level = math.inf  # the loss at the last improvement by ``min_delta`` (relative) ...
        self.gain_epoch = 0         # ... and the epoch it came at (for the progress estimate)
        self.grad_norms: List[List[float]] = [[] for _ in self.optimizer.param_groups]
        self.spikes_limited = 0     # epochs whose gradient the spike limit scaled down

    def epoch(self, x, Y, valid, params: DFFNParams, autocast_dtype, y_norm=None) -> float:
        self.model.train()
        use_autocast = autocast_dtype != torch.float32
        with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=use_autocast):
            A, Y1, E = self.model(x, valid)
        loss = dffn_loss(Y, A, Y1, E, params.a, params.b, params.c, y_norm)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError("training loss is not finite")
        if value < self.best_loss:
            # the state that produced this loss, before the step changes it
            self.best_loss, self.best_epoch = value, len(self.history)
            self.best_state = copy.deepcopy(self.model.state_dict())
        if value < self.gain_level * (1.0 - params.min_delta):
            self.gain_level, self.gain_epoch = value, len(self.history)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if params.grad_clip > 0:
            self._limit_spikes(params.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.history.append(value)
        return value

    SPIKE_WINDOW = 20   # gradient norms the spike limit's median is taken over

    def _limit_spikes(self, factor: float) -> None:
        """Scale each parameter group's gradient down to at most ``factor`` times the median of its
        last ``SPIKE_WINDOW`` norms (the norms as computed, before any scaling)."""
        for group, norms in zip(self.optimizer.param_groups, self.grad_norms):
            grads = [p.grad for p in group["params"] if p.grad is not None]
            if not grads:
                continue
            norm = gradient_norm(group["params"])
            if len(norms) >= self.SPIKE_WINDOW:
                limit = factor * float(np.median(norms[-self.SPIKE_WINDOW:]))
                if norm > limit > 0:
                    for g in grads:
                        g.mul_(limit / norm)
                    self.spikes_limited += 1
            norms.append(norm)

    def stall_share(self, params: DFFNParams) -> float:
        """How much of ``patience`` has passed since the last improvement by ``min_delta``
        (1: the patience rule stops the run now; 0 without the rule)."""
        if params.patience <= 0 or not self.history:
            return 0.0
        return min(1.0, (len(self.history) - 1 - self.gain_epoch) / params.patience)

    def stalled(self, params: DFFNParams) -> bool:
        """The lowest loss has not improved by ``min_delta`` (relative) in the last ``patience`` epochs."""
        if params.patience <= 0 or len(self.history) <= params.patience:
            return False
        before = min(self.history[:-params.patience])
        return self.best_loss >= before * (1.0 - params.min_delta)


RANK_TOLERANCE = 1e-6    # singular values below this share of the largest do not count in the rank


def input_projection(image: np.ndarray, valid_index: Optional[np.ndarray], k: int
                     ) -> Tuple[Optional[torch.Tensor], float]:
    """K x L: leading eigenvectors (as rows) of the uncentred band Gram matrix of the valid pixels of
    ``image`` (L x H x W, or B x L x h x w windows), for the first convolution (:class:`DFFN`), and
    the share of the pixels' norm (root of the energy) that lies outside their span.

    ``k`` 0: the image's numerical rank K (singular values above ``RANK_TOLERANCE`` of the largest),
    so that what is left out is rounding; None when it has full rank. ``k`` between 1 and L - 1: the
    ``k`` leading ones. ``k`` at least L: None (the bands). Each eigenvector's sign is fixed (largest
    entry positive) so that the projection does not depend on the eigen-solver's choice.
    """
    n_bands = image.shape[-3]
    if k >= n_bands:
        return None, 0.0
    pixels = np.moveaxis(np.asarray(image), -3, 0).reshape(n_bands, -1)
    if valid_index is not None:
        pixels = pixels[:, valid_index]
    # by torch, whose thread count the run sets (numpy's BLAS may run another number of threads in
    # another process, a Dask worker, and round otherwise: the same seed must give the same bytes)
    pixels = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float64))
    values, vectors = (t.numpy() for t in torch.linalg.eigh(pixels @ pixels.T))
    order = np.argsort(values)[::-1]
    if k == 0:
        k = int((values > values.max() * RANK_TOLERANCE ** 2).sum())
        if k >= n_bands or k == 0:
            return None, 0.0
    outside = math.sqrt(float(values[order[k:]].clip(min=0).sum()) / max(float(values.sum()), 1e-300))
    leading = vectors[:, order[:k]]
    signs = np.sign(leading[np.argmax(np.abs(leading), axis=0), np.arange(k)])
    return torch.from_numpy((leading * np.where(signs == 0, 1.0, signs)).T.astype(np.float32)), outside


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))


# A judge of a finished run's endmembers (L x P): None when they will do, else why a fresh start is due.
EndmemberJudge = Callable[[np.ndarray], Optional[str]]


def _kept_outputs(run: "_Run", x: torch.Tensor, valid: Optional[torch.Tensor]) -> Tuple[np.ndarray, np.ndarray]:
    """The abundances (P x n) and endmembers (L x P) of ``run``'s best state, with the network in eval
    mode (BatchNorm running statistics), as the outcome reports them; the model keeps that state."""
    run.model.load_state_dict(run.best_state)
    run.model.eval()
    with torch.no_grad():
        A, _, E = run.model(x, valid)
    return A.float().cpu().numpy(), E.float().cpu().numpy()


def train(image: np.ndarray, Y: np.ndarray, valid_index: Optional[np.ndarray], params: DFFNParams,
          monitor: Optional[Monitor] = None, hardware: Optional[Hardware] = None,
          judge: Optional[EndmemberJudge] = None) -> TrainOutcome:
    """Train DFFN on ``image`` (the enhanced image, L x H x W, or B x L x h x w training windows)
    against ``Y`` (L x n valid pixels).

    ``judge``: asked once about the endmembers of the run that finished; when it gives a reason and a
    restart is left (``params.restarts``), that run is given up for a fresh one (docs/METHOD.md,
    "Stuck training and restarts"). The run kept: among those that trained to their end, the lowest-loss
    one the judge accepts (the lowest-loss one when it accepts none); a start given up for a stall only
    with a lower loss still and, when the judge judged, its consent.

    ``valid_index`` holds the flat indices (image, row, column order) of the valid pixels, or None
    when all are. ``hardware``: the device and precision the run resolved (resolved here when not
    given). Torch's thread count is the caller's (:class:`~dffn_qgis.core.run.context.RunContext`
    sets it from ``params.threads`` for a run).
    """
    monitor = as_monitor(monitor)
    params.validate()
    hardware = hardware or resolve_hardware(params.device, params.precision)
    device, device_reason = hardware.device, hardware.device_reason
    autocast_dtype, precision_reason = hardware.dtype, hardware.precision_reason
    monitor.info(f"device {device} ({device_reason}); precision {str(autocast_dtype).replace('torch.', '')} "
                 f"({precision_reason}); torch {torch.__version__}")

    _seed_everything(params.seed)
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    x = (x[None] if x.ndim == 3 else x).to(device)
    Yt = torch.from_numpy(np.ascontiguousarray(Y, dtype=np.float32)).to(device)
    valid = None if valid_index is None else torch.from_numpy(np.asarray(valid_index, dtype=np.int64)).to(device)
    n_pixels = Yt.shape[1]
    y_norm = torch.linalg.vector_norm(Yt, dim=0)       # the loss's target does not change
    projection, outside = input_projection(image, valid_index, params.input_components)
    input_components = {"components": 0 if projection is None else projection.shape[0],
                        "bands": int(Yt.shape[0]), "share_outside": outside}
    if projection is not None:
        which = "as many as its rank" if params.input_components == 0 else "its leading ones"
        monitor.info(f"the first convolution works on {projection.shape[0]} components of the enhanced image "
                     f"({which}; what lies outside them: {outside:.1e} of its norm) instead of its "
                     f"{Yt.shape[0]} bands")

    # several starts: each trains ``start_epochs`` before the lowest-loss one is trained on to the end of
    # the schedule; a start that trained the whole schedule is kept as it is
    picking = params.epochs_per_start > 0
    start_epochs = params.epochs_per_start or params.epochs
    whole_starts = picking and start_epochs == params.epochs
    planned = params.starts * start_epochs + (params.epochs - start_epochs) if picking else params.epochs
    done = 0
    shown = 0.0                    # the bar never moves back (a restart pauses it)
    t0 = time.perf_counter()

    def step(run: _Run, label: str, last_phase: bool = False) -> None:
        """One epoch. The bar: epochs done over epochs planned, and in the last phase moved towards
        the end by the square of the share of ``patience`` the loss has stalled for: when the
        patience rule stops the training early the bar gets there steadily instead of jumping."""
        nonlocal done, shown
        monitor.check()
        value = run.epoch(x, Yt, valid, params, autocast_dtype, y_norm)
        done += 1
        fraction = done / planned
        if last_phase:
            stall = run.stall_share(params)
            fraction += (1.0 - fraction) * stall * stall
        shown = max(shown, min(1.0, fraction))
        monitor.progress(shown, f"{label}: epoch {len(run.history)}, loss {value:.5f}")

    given_up: List[_Run] = []      # runs that got stuck, replaced by a fresh start
    reasons: List[str] = []        # why each was given up
    notes: List[str] = []          # the same in words

    def give_up(run: _Run, reason: str, why: str) -> _Run:
        nonlocal planned
        monitor.info(f"{why}: starting again from a new initialisation "
                     f"(restart {len(given_up) + 1} of at most {params.restarts})")
        run.optimizer = run.scheduler = None
        given_up.append(run)
        reasons.append(reason)
        notes.append(why)
        planned += params.epochs
        return _Run(params, Yt.shape[0], n_pixels, device, projection)

    def finish(run: _Run) -> _Run:
        """Train ``run`` to the end of the schedule or the patience stop. A run that stalls in
        the first half of the schedule, while the learning rate is still high, got stuck
        rather than converged (docs/METHOD.md): while restarts are left it is replaced by a
        fresh start."""
        while len(run.history) < params.epochs:
            step(run, "training", last_phase=True)
            if not run.stalled(params):
                continue
            # the stall began when the loss last improved: ``patience`` epochs before it is seen
            if len(given_up) < params.restarts and len(run.history) - params.patience <= params.epochs // 2:
                run = give_up(run, "stalled", f"the loss stopped improving in the first half of the schedule "
                                              f"(lowest {run.best_loss:.5f} at epoch {run.best_epoch + 1})")
            else:
                run.stopped = True
                break
        return run

    runs = []
    for s in range(params.starts if picking else 1):
        run = _Run(params, Yt.shape[0], n_pixels, device, projection)
        if picking:
            for _ in range(start_epochs):
                step(run, f"start {s + 1}/{params.starts}")
            monitor.info(f"start {s + 1}/{params.starts}: lowest loss {run.best_loss:.5f} "
                         f"after {start_epochs} epochs")
            if whole_starts:     # a whole run: only its best state is needed now
                run.optimizer = run.scheduler = None
                run.model.zero_grad(set_to_none=True)
        runs.append(run)
    start_losses = [r.best_loss for r in runs]
    chosen = int(np.argmin(start_losses))
    run = runs[chosen]
    del runs
    if picking:
        monitor.info(f"keeping start {chosen + 1} of {params.starts} (lowest loss)" if whole_starts
                     else f"training on with start {chosen + 1} (lowest loss)")
    run = finish(run)
    rejected: List[_Run] = []      # runs whose endmembers the judge found poor
    judged = judge is not None and len(given_up) < params.restarts
    if judged:
        why = judge(_kept_outputs(run, x, valid)[1])
        if why:
            rejected.append(run)
            run = finish(give_up(run, "poor fit", why))
            again = judge(_kept_outputs(run, x, valid)[1])
            if again:
                monitor.info(f"after the restart too, {again}")
                rejected.append(run)
    # among the runs that trained to their end (the last one and any given up for a poor fit), the lowest-loss
    # one the judge accepts, or the lowest-loss one when it accepts none; then a run given up for a stall
    # only if its loss is lower still and the judge (when it judges) accepts it: a start stalled at a high
    # loss is never kept because it was not judged, or because the pixels would replace it anyway
    finished = [run] + [r for r, why in zip(given_up, reasons) if why == "poor fit"]
    accepted = [r for r in finished if all(r is not q for q in rejected)]
    kept = min(accepted or finished, key=lambda r: r.best_loss)
    for stalled in sorted((r for r, why in zip(given_up, reasons) if why == "stalled"), key=lambda r: r.best_loss):
        if stalled.best_loss >= kept.best_loss:
            break
        if not judged or not judge(_kept_outputs(stalled, x, valid)[1]):
            kept = stalled
            break
    if kept is not run:
        run = kept
        monitor.info(f"a run given up earlier reached the lowest loss ({run.best_loss:.5f}): keeping it")
    if not picking:
        start_losses = [run.best_loss]
    stopped_early = run.stopped
    if stopped_early:
        monitor.info(f"stopped after {len(run.history)} epochs: the loss improved by less than "
                     f"{params.min_delta:g} (relative) in the last {params.patience} epochs")
    epochs_run = done
    if params.grad_clip > 0:
        monitor.info(f"gradient spikes limited in {run.spikes_limited} of the kept run's epochs")
    monitor.info(f"lowest loss {run.best_loss:.5f} at epoch {run.best_epoch + 1}; "
                 f"{epochs_run} epochs in {time.perf_counter() - t0:.1f} s")

    abundances, endmembers = _kept_outputs(run, x, valid)
    monitor.progress(1.0, "training done")
    return TrainOutcome(
        abundances=abundances, endmembers=endmembers,
        loss=run.best_loss, history=run.history, epochs_run=epochs_run,
        start_losses=start_losses, chosen_start=chosen, device=str(device), device_reason=device_reason,
        precision=str(autocast_dtype).replace("torch.", ""), precision_reason=precision_reason,
        stopped_early=stopped_early, restarts=len(given_up), restart_reasons=reasons,
        restart_notes=notes,
        spikes_limited=run.spikes_limited, input_components=input_components, model=run.model)


def train_with_cpu_fallback(image: np.ndarray, Y: np.ndarray, valid_index: Optional[np.ndarray],
                            params: DFFNParams, monitor: Optional[Monitor] = None,
                            hardware: Optional[Hardware] = None,
                            judge: Optional[EndmemberJudge] = None) -> Tuple[TrainOutcome, DFFNParams]:
    """:func:`train`; on a GPU that runs out of memory, say so and train on the CPU instead.

    Returns the outcome and the parameters that produced it (``device="cpu"`` after a fallback).
    """
    monitor = as_monitor(monitor)
    hardware = hardware or resolve_hardware(params.device, params.precision)
    try:
        return train(image, Y, valid_index, params, monitor, hardware, judge), params
    except torch.OutOfMemoryError:
        if hardware.device.type == "cpu":
            raise
        torch.cuda.empty_cache()
        monitor.info(f"out of memory on {hardware.device} while training: training on the CPU instead")
        params = replace(params, device="cpu")
        return train(image, Y, valid_index, params, monitor, judge=judge), params
