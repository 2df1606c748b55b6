"""Endmembers from the image's own pixels: when they span the data exactly, or explain it better.

Where pure pixels are present and noise is negligible (a simulated scene, a laboratory cube), the
vertices of the pixels' simplex are the endmembers to the last digit and a geometric method finds
them; the network, trained through an angle loss, stops a little short of them and can miss a
material. :func:`check_pixel_simplex` compares how well two endmember sets explain the pixels: the
mean angle between each pixel and its non-negative least-squares fit, for the network's endmembers
and for the image's extreme pixels (:class:`ImagePixels`: those VCA or N-FINDR picks, whichever fit
better). When the pixels' angle is below ``ratio`` times the network's, the pixels are the
endmembers. Wherever there is noise, or the linear model is only approximate (every real scene), the
noise floor sets both angles and their ratio stays near one (docs/BENCHMARKS.md, "Endmembers from the
image's pixels"), so the network's endmembers are kept.

The same comparison tells a training run that ended in a poor state: endmembers that explain the
pixels *worse* than the image's own extreme pixels do (:meth:`SimplexCheck.poorer_fit`) are a reason
for a fresh start, and when a network's endmembers still fall short, the pixels are taken
(``at_least_pixels``; docs/METHOD.md, "Stuck training and restarts"). Worse means either of:

* a larger mean reconstruction angle (the pixels are then the endmembers);
* a material left out (the pixels then fill in what was left out, :meth:`ImagePixels.fill_in`): the
  pixels least well explained are much farther from the endmembers' cone than from the pixels' cone
  (the ``TAIL`` percentile of the residual norms ``||y - E c||`` of the non-negative fits, more than
  ``TAIL_RATIO`` times the pixels'). The mean angle misses this where
  noise sets it: dark pixels (water) have the largest angles whatever the endmembers, while a bright
  material left out leaves its pixels' residuals several times the noise (docs/BENCHMARKS.md,
  "2026-12-08").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ..errors import InputError
from ..eval.baseline import nfindr, vca
from .abundance_lsq import even_columns, fit_angles, nnls

MAX_PIXELS = 8192       # pixels the comparison fits (an even sample of larger images)
TAIL = 95               # percentile of the residual norms compared: the pixels least well explained
TAIL_RATIO = 2.0        # the endmembers' tail above this many times the pixels': a material left out


@dataclass
class SimplexCheck:
    """The outcome of :func:`check_pixel_simplex`: the endmembers to use (L x P), whether they are
    the image's pixels and why ("exact simplex" or "better fit"), which method picked those pixels,
    and the two mean reconstruction angles (rad) that decided it."""

    endmembers: np.ndarray
    use_pixels: bool
    network_angle: float
    pixel_angle: float
    ratio: float
    picker: str = "VCA"
    reason: str = ""
    network_tail: float = float("nan")
    pixel_tail: float = float("nan")
    swapped: Tuple[Tuple[int, int], ...] = ()    # "material left out": (network column, pixel column) swaps

    def note(self) -> str:
        if not np.isfinite(self.pixel_angle):
            return "endmembers from the network (too few distinct pixels to compare them with the image's own)"
        share = f"{self.pixel_angle / self.network_angle:.3g}" if self.network_angle > 0 else "n/a"
        angles = (f"mean reconstruction angle of the image's extreme pixels ({self.picker}) {self.pixel_angle:.3g} "
                  f"rad, of the network's endmembers {self.network_angle:.3g} rad (ratio {share}, threshold "
                  f"{self.ratio:g})")
        if np.isfinite(self.network_tail) and self.pixel_tail > 0:
            angles += (f"; residual norm of the worst {100 - TAIL} % of the pixels "
                       f"{self.network_tail / self.pixel_tail:.3g} times the pixels' (limit {TAIL_RATIO:g})")
        if self.reason == "exact simplex":
            return f"the image's own pixels span it exactly, so they are the endmembers: {angles}"
        if self.reason == "better fit":
            return (f"the network's endmembers explain the image worse than its own extreme pixels do, so those "
                    f"pixels are the endmembers: {angles}")
        if self.reason == "material left out":
            swaps = ", ".join(f"endmember {i + 1} by pixel {j + 1}" for i, j in self.swapped)
            return (f"the network's endmembers leave part of the image unexplained, so the image's own extreme "
                    f"pixels fill in what they left out ({swaps}): {angles}")
        return f"endmembers from the network: {angles}"

    def poorer_fit(self) -> Optional[str]:
        """Why the network's endmembers call for a fresh start: they explain the image worse than its own
        extreme pixels do (unless those pixels span it exactly, and so replace them anyway); None when they
        explain it at least as well, or there are no pixels to compare with."""
        if self.reason == "exact simplex":
            return None
        kind = shortfall(self.network_angle, self.pixel_angle, self.network_tail, self.pixel_tail)
        if kind == "angle":
            return (f"the endmembers explain the image worse than its own extreme pixels ({self.picker}) do: mean "
                    f"reconstruction angle {self.network_angle:.3g} rad against {self.pixel_angle:.3g} rad")
        if kind == "tail":
            return (f"the endmembers leave part of the image unexplained (a material left out?): {100 - TAIL} % "
                    f"of the pixels lie at least {self.network_tail / self.pixel_tail:.3g} times farther from "
                    f"their fits than from their fits on the image's own extreme pixels ({self.picker})")
        return None

    def to_dict(self) -> dict:
        source = "network"
        if self.use_pixels:
            source = f"{'network and ' if self.swapped else ''}image pixels ({self.picker})"
        return {"endmembers_from": source, "reason": self.reason, "swapped": [list(pair) for pair in self.swapped],
                "pixels_picked_by": self.picker,
                "network_angle_rad": self.network_angle, "pixel_angle_rad": self.pixel_angle,
                "threshold_ratio": self.ratio, f"network_residual_p{TAIL}": self.network_tail,
                f"pixel_residual_p{TAIL}": self.pixel_tail}


def shortfall(network_angle: float, pixel_angle: float, network_tail: float, pixel_tail: float) -> str:
    """How endmembers with these fit measures explain the image worse than its extreme pixels with theirs:
    "angle" (a larger mean angle), "tail" (residuals whose ``TAIL`` percentile is above ``TAIL_RATIO``
    times the pixels': a material left out) or "" (neither, or the pixels' measures are unknown)."""
    if network_angle > pixel_angle:
        return "angle"
    if network_tail > TAIL_RATIO * pixel_tail:
        return "tail"
    return ""


def seen_shortfall(seen: "ImagePixels", endmembers: np.ndarray) -> Optional[str]:
    """Why ``endmembers`` (L x P) call for a fresh start on the pixels as the training saw them: ``seen`` is
    :class:`ImagePixels` of the denoised pixels (the training's target), and the endmembers explain those
    worse than the extreme pixels picked there (a larger mean reconstruction angle); None otherwise.

    The noise that sets both angles on the pixels as read is mostly gone there, so a material the network
    merged with another, which the pixels as read hide, shows (docs/METHOD.md, "Stuck training and
    restarts"). Only a reason to train again: taking pixels stays the decision of the pixels as read."""
    if seen.pixels is None:
        return None
    angle = seen.fit(endmembers)[0]
    if angle > seen.angle:
        return (f"on the denoised pixels the training saw, the endmembers explain the image worse than its own "
                f"extreme pixels ({seen.picker}) there: mean reconstruction angle {angle:.3g} rad against "
                f"{seen.angle:.3g} rad")
    return None


def fit_residuals(Y: np.ndarray, E: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per pixel of ``Y`` (L x n): the angle (rad) to its non-negative fit on ``E`` (L x P) and the
    fit's residual norm ``||y - E c||``."""
    fit = E @ nnls(Y, E)
    return fit_angles(Y, fit), np.linalg.norm(Y - fit, axis=0)


def fit_measures(Y: np.ndarray, E: np.ndarray) -> Tuple[float, float]:
    """The mean of :func:`fit_residuals`' angles (rad) and the ``TAIL`` percentile of its residual norms."""
    angles, residuals = fit_residuals(Y, E)
    return float(np.mean(angles)), float(np.percentile(residuals, TAIL))


@dataclass
class ImagePixels:
    """The image's extreme pixels (L x P; None when there are too few distinct pixels), the method that
    picked them, and the even sample of pixels every endmember set is judged on, with the pixels' own
    fit measures (:func:`fit_measures`)."""

    pixels: Optional[np.ndarray]
    sample: np.ndarray
    angle: float                           # NaN without pixels
    picker: str = "VCA"
    tail: float = float("nan")             # the TAIL percentile of the residual norms; NaN without pixels
    taken: Optional[np.ndarray] = None     # the pixels denoised (``of``'s ``clean``): what is taken

    @classmethod
    def of(cls, Y: np.ndarray, n_endmembers: int, seed: int = 1, clean: Optional[np.ndarray] = None
           ) -> "ImagePixels":
        """Of VCA's and N-FINDR's ``n_endmembers`` pixels among ``Y`` (L x n; all of them: a pure one
        may be rare), those with the smaller mean fit angle (VCA's on a tie). ``clean``: the same pixels
        denoised (L x n, what the training saw); the pixels kept are then those columns of it, clipped to
        zero from below: a single pixel carries the noise of every band, and picked as an extreme it
        carries the noise that makes it extreme (a dark material's pixel at 30 dB is 0.5 rad from its
        material; the judge's measures stay those of the pixels as read)."""
        Y = np.asarray(Y, dtype=np.float64)
        sample = even_columns(Y, MAX_PIXELS)
        best, best_indices = cls(None, sample, float("nan")), None
        for picker, pick in (("VCA", vca), ("N-FINDR", nfindr)):
            try:
                _, indices = pick(Y, n_endmembers, seed=seed)
            except InputError:             # too few distinct pixels: nothing to compare with
                return best
            pixels = Y[:, indices]
            angle, tail = fit_measures(sample, pixels)
            if best.pixels is None or angle < best.angle:
                best, best_indices = cls(pixels, sample, angle, picker, tail), indices
        if clean is not None:
            best.taken = np.maximum(np.asarray(clean, dtype=np.float64)[:, best_indices], 0.0)
        return best

    @property
    def endmembers(self) -> Optional[np.ndarray]:
        """The endmembers the pixels give when taken: their denoised spectra when known, else as read."""
        return self.pixels if self.taken is None else self.taken

    def fit(self, endmembers: np.ndarray) -> Tuple[float, float]:
        """The sample's :func:`fit_measures` on ``endmembers``."""
        return fit_measures(self.sample, np.asarray(endmembers, dtype=np.float64))

    def fill_in(self, endmembers: np.ndarray) -> Tuple[np.ndarray, Tuple[Tuple[int, int], ...]]:
        """``endmembers`` (L x P) with the pixels swapped in for what they left out: while their tail of
        residuals is above ``TAIL_RATIO`` times the pixels', the one swap (an endmember replaced by one
        of the pixels, each at most once) that lowers it most, as long as one lowers it. The endmembers
        the swaps do not touch stay the network's (a dark material's pixel is far noisier than what the
        network learned for it). Returns the endmembers and the swaps (endmember column, pixel column)."""
        E = np.array(endmembers, dtype=np.float64)
        tail = self.fit(E)[1]
        swaps = []
        while tail > TAIL_RATIO * self.tail:
            best = None
            for i in set(range(E.shape[1])) - {i for i, _ in swaps}:
                for j in set(range(self.endmembers.shape[1])) - {j for _, j in swaps}:
                    trial = E.copy()
                    trial[:, i] = self.endmembers[:, j]
                    trial_tail = self.fit(trial)[1]
                    if best is None or trial_tail < best[0]:
                        best = (trial_tail, i, j)
            if best is None or best[0] >= tail:
                break
            tail, i, j = best
            E[:, i] = self.endmembers[:, j]
            swaps.append((i, j))
        return E, tuple(swaps)


def check_pixel_simplex(reference: ImagePixels, network_endmembers: np.ndarray, ratio: float,
                        at_least_pixels: bool = False) -> SimplexCheck:
    """Choose between the network's endmembers (L x P) and the image's extreme pixels (``reference``,
    :meth:`ImagePixels.of`): the pixels when their mean fit angle is below ``ratio`` times the network's
    (an exact simplex), or, with ``at_least_pixels``, when the network's explain it worse (:func:`shortfall`):
    on average, the pixels; in the tail, the network's with the pixels filled in (:meth:`ImagePixels.fill_in`)."""
    E = np.asarray(network_endmembers, dtype=np.float64)
    network_angle, network_tail = reference.fit(E)
    if reference.pixels is None:
        return SimplexCheck(E, False, network_angle, float("nan"), ratio, network_tail=network_tail)
    reason, chosen, swapped = "", E, ()
    kind = shortfall(network_angle, reference.angle, network_tail, reference.tail) if at_least_pixels else ""
    if reference.angle < ratio * network_angle:
        reason, chosen = "exact simplex", reference.endmembers
    elif kind == "angle":
        reason, chosen = "better fit", reference.endmembers
    elif kind == "tail":
        chosen, swapped = reference.fill_in(E)
        reason = "material left out" if swapped else ""
    return SimplexCheck(chosen, bool(reason), network_angle, reference.angle, ratio, reference.picker, reason,
                        network_tail, reference.tail, swapped)
