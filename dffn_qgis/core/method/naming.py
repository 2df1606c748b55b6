"""What the endmembers are: names from a spectral library, by spectral angle.

Each endmember is compared with every library spectrum resampled to the image's bands (a Gaussian
response per band), over the bands the library covers; per class the smallest angle counts. The
best class names the endmember when its angle is below ``THRESHOLD``; otherwise it is called
"endmember i (unmatched, nearest: soil, 0.21 rad)". Two endmembers of one class are told apart
("vegetation 1", "vegetation 2"). The second-best class goes to the record and the report.

The default library (:func:`default_library`) is built at set-up time from earthlib's measured
spectra (soil, built surfaces, non-photosynthetic vegetation, char; PROSAIL canopies) plus an analytic
water curve, grouped into the classes of :data:`MATERIALS`; any ENVI library or spectra CSV works too.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError
from ..io.spectral_library import SpectralLibrary, resample

THRESHOLD = 0.15        # rad: below it the nearest class names the endmember (docs/METHOD.md, "Names")
DEFAULT_LIBRARY = Path(__file__).resolve().parents[2] / "data" / "default_library.csv"

# The classes endmembers are named by, each a set of earthlib classes (its third level).
MATERIALS: Dict[str, Tuple[str, ...]] = {
    "vegetation": ("canopy",),
    "soil": ("soil",),
    "water": (),                                   # not in earthlib: an analytic curve
    "asphalt": ("road", "asphalt", "parking_lot"),
    "shingle roof": ("comp_shingle",),
    "dry vegetation": ("npv", "litter"),
    "concrete": ("sidewalk", "concrete_tile"),
    "char": ("char",),
    "sand": ("sand",),
    "wood": ("wood", "bark", "wood_shingle"),
}


@dataclass(frozen=True)
class Match:
    """One endmember's nearest classes and angles (rad)."""

    best: str
    angle: float
    second: Optional[str]
    second_angle: Optional[float]

    @property
    def named(self) -> bool:
        return self.angle < THRESHOLD

    def to_dict(self) -> dict:
        return {"class": self.best, "angle_rad": round(self.angle, 4), "named": self.named,
                "second": self.second, "second_angle_rad": None if self.second_angle is None else round(self.second_angle, 4)}


def _angles(E: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Spectral angles (P, K) between the columns of ``E`` (L, P) and the rows of ``S`` (K, L)."""
    En = E / np.maximum(np.linalg.norm(E, axis=0, keepdims=True), 1e-300)
    Sn = S / np.maximum(np.linalg.norm(S, axis=1, keepdims=True), 1e-300)
    return np.arccos(np.clip(En.T @ Sn.T, -1.0, 1.0))


def match_endmembers(E: np.ndarray, wavelengths_nm: Sequence[float], library: SpectralLibrary) -> List[Match]:
    """The nearest library class of every endmember (columns of ``E``, on bands at ``wavelengths_nm``)."""
    wl = np.asarray(wavelengths_nm, dtype=np.float64)
    lo, hi = float(library.wavelengths.min()), float(library.wavelengths.max())
    inside = (wl >= lo) & (wl <= hi)
    if inside.sum() < 3:
        raise InputError(f"the image's bands ({wl.min():.0f}-{wl.max():.0f} nm) hardly overlap the library "
                         f"({lo:.0f}-{hi:.0f} nm)")
    S = resample(library.wavelengths, library.spectra, wl[inside])           # (K, n)
    angles = _angles(np.asarray(E, dtype=np.float64)[inside], S)            # (P, K)
    classes = sorted(set(library.classes))
    per_class = np.stack([angles[:, library.of_class(c)].min(axis=1) for c in classes], axis=1)   # (P, C)
    matches = []
    for row in per_class:
        order = np.argsort(row)
        second = order[1] if len(order) > 1 else None
        matches.append(Match(classes[order[0]], float(row[order[0]]),
                             None if second is None else classes[second],
                             None if second is None else float(row[second])))
    return matches


def names_from(matches: Sequence[Match]) -> List[str]:
    """Display names: the class, numbered when two endmembers share it, or "endmember i (unmatched...)"."""
    counts: Dict[str, int] = {}
    for m in matches:
        if m.named:
            counts[m.best] = counts.get(m.best, 0) + 1
    seen: Dict[str, int] = {}
    names = []
    for i, m in enumerate(matches):
        if not m.named:
            names.append(f"endmember {i + 1} (unmatched, nearest: {m.best}, {m.angle:.2f} rad)")
        elif counts[m.best] > 1:
            seen[m.best] = seen.get(m.best, 0) + 1
            names.append(f"{m.best} {seen[m.best]}")
        else:
            names.append(m.best)
    return names


def read_library(path) -> SpectralLibrary:
    """A library for naming: an ENVI library or a spectra CSV (classes: the spectrum names without
    a trailing number, so "soil 3" is of class "soil")."""
    import re

    from ..run.apply import read_spectra

    spectra = read_spectra(path)
    if spectra.wavelengths is None:
        raise InputError(f"{path}: a library for naming needs wavelengths (its first column 'wavelength')")
    classes = tuple(re.sub(r"\s+\d+$", "", n).strip() or n for n in spectra.names)
    return SpectralLibrary(wavelengths=np.asarray(spectra.wavelengths, dtype=np.float64),
                           spectra=spectra.values.T.copy(), names=tuple(spectra.names), classes=classes)


def default_library() -> Optional[SpectralLibrary]:
    """The bundled library (``dffn_qgis/data/default_library.csv``), or None when it was not built."""
    return read_library(DEFAULT_LIBRARY) if DEFAULT_LIBRARY.exists() else None


def build_default_library(per_class: int = 15, seed: int = 0) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """From earthlib: up to ``per_class`` spectra of each class of :data:`MATERIALS` (drawn with
    ``seed``) plus the water curve; (wavelengths nm, spectra (K, B), names like "soil 3")."""
    from ..eval.synthetic import water
    from ..io.spectral_library import read_earthlib

    earth = read_earthlib()
    rng = np.random.default_rng(seed)
    spectra, names = [], []
    for material, labels in MATERIALS.items():
        if not labels:
            spectra.append(water(earth.wavelengths))
            names.append(f"{material} 1")
            continue
        pool = np.concatenate([earth.of_class(label) for label in labels])
        chosen = np.sort(rng.choice(pool, size=min(per_class, pool.size), replace=False))
        for k, index in enumerate(chosen):
            spectra.append(earth.spectra[index])
            names.append(f"{material} {k + 1}")
    return earth.wavelengths, np.asarray(spectra), names


def write_default_library(path=DEFAULT_LIBRARY) -> Path:
    """Build the default library and write it as a spectra CSV (wavelength column, one per spectrum)."""
    import csv

    wavelengths, spectra, names = build_default_library()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["wavelength (nm)"] + names)
        for x, row in zip(wavelengths, spectra.T):
            writer.writerow([f"{x:g}"] + [f"{v:.5g}" for v in row])
    tmp.replace(path)
    return path
