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
(``at_least_pixels``; docs/METHOD.md, "Stuck training and restarts").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import InputError
from ..eval.baseline import nfindr, vca
from .abundance_lsq import even_columns, fit_angles, nnls

MAX_PIXELS = 8192       # pixels the comparison fits (an even sample of larger images)


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

    def note(self) -> str:
        if not np.isfinite(self.pixel_angle):
            return "endmembers from the network (too few distinct pixels to compare them with the image's own)"
        share = f"{self.pixel_angle / self.network_angle:.3g}" if self.network_angle > 0 else "n/a"
        angles = (f"mean reconstruction angle of the image's extreme pixels ({self.picker}) {self.pixel_angle:.3g} "
                  f"rad, of the network's endmembers {self.network_angle:.3g} rad (ratio {share}, threshold "
                  f"{self.ratio:g})")
        if self.reason == "exact simplex":
            return f"the image's own pixels span it exactly, so they are the endmembers: {angles}"
        if self.reason == "better fit":
            return (f"the network's endmembers explain the image worse than its own extreme pixels do, so those "
                    f"pixels are the endmembers: {angles}")
        return f"endmembers from the network: {angles}"

    def poorer_fit(self) -> Optional[str]:
        """Why the network's endmembers call for a fresh start: they explain the image worse than its own
        extreme pixels do (unless those pixels span it exactly, and so replace them anyway); None when they
        explain it at least as well, or there are no pixels to compare with."""
        if self.reason == "exact simplex" or not self.network_angle > self.pixel_angle:
            return None
        return (f"the endmembers explain the image worse than its own extreme pixels ({self.picker}) do: mean "
                f"reconstruction angle {self.network_angle:.3g} rad against {self.pixel_angle:.3g} rad")

    def to_dict(self) -> dict:
        return {"endmembers_from": f"image pixels ({self.picker})" if self.use_pixels else "network",
                "reason": self.reason, "pixels_picked_by": self.picker,
                "network_angle_rad": self.network_angle, "pixel_angle_rad": self.pixel_angle,
                "threshold_ratio": self.ratio}


def mean_fit_angle(Y: np.ndarray, E: np.ndarray) -> float:
    """Mean angle (rad) between the pixels ``Y`` (L x n) and their non-negative fits on ``E`` (L x P)."""
    return float(np.mean(fit_angles(Y, E @ nnls(Y, E))))


@dataclass
class ImagePixels:
    """The image's extreme pixels (L x P; None when there are too few distinct pixels), the method that
    picked them, and the even sample of pixels every endmember set is judged on, with the pixels' own
    mean fit angle."""

    pixels: Optional[np.ndarray]
    sample: np.ndarray
    angle: float                           # NaN without pixels
    picker: str = "VCA"

    @classmethod
    def of(cls, Y: np.ndarray, n_endmembers: int, seed: int = 1) -> "ImagePixels":
        """Of VCA's and N-FINDR's ``n_endmembers`` pixels among ``Y`` (L x n; all of them: a pure one
        may be rare), those with the smaller mean fit angle (VCA's on a tie)."""
        Y = np.asarray(Y, dtype=np.float64)
        sample = even_columns(Y, MAX_PIXELS)
        best = cls(None, sample, float("nan"))
        for picker, pick in (("VCA", vca), ("N-FINDR", nfindr)):
            try:
                _, indices = pick(Y, n_endmembers, seed=seed)
            except InputError:             # too few distinct pixels: nothing to compare with
                return best
            pixels = Y[:, indices]
            angle = mean_fit_angle(sample, pixels)
            if best.pixels is None or angle < best.angle:
                best = cls(pixels, sample, angle, picker)
        return best

    def fit_angle(self, endmembers: np.ndarray) -> float:
        """The mean angle between the sample's pixels and their non-negative fits on ``endmembers``."""
        return mean_fit_angle(self.sample, np.asarray(endmembers, dtype=np.float64))


def check_pixel_simplex(reference: ImagePixels, network_endmembers: np.ndarray, ratio: float,
                        at_least_pixels: bool = False) -> SimplexCheck:
    """Choose between the network's endmembers (L x P) and the image's extreme pixels (``reference``,
    :meth:`ImagePixels.of`): the pixels when their mean fit angle is below ``ratio`` times the network's
    (an exact simplex), or, with ``at_least_pixels``, below the network's."""
    E = np.asarray(network_endmembers, dtype=np.float64)
    network_angle = reference.fit_angle(E)
    if reference.pixels is None:
        return SimplexCheck(E, False, network_angle, float("nan"), ratio)
    reason = ""
    if reference.angle < ratio * network_angle:
        reason = "exact simplex"
    elif at_least_pixels and reference.angle < network_angle:
        reason = "better fit"
    use = bool(reason)
    return SimplexCheck(reference.pixels if use else E, use, network_angle, reference.angle, ratio,
                        reference.picker, reason)
