"""The development scenes: three with truth from ``../shared/data`` and scenes generated from
measured library spectra (earthlib) on real sensors' band grids.

Generated scenes are deterministic (their spec holds every choice, including the seed) and are
cached as ``.npz`` files under ``.bench/scenes/`` (git-ignored): never committed as data.

Each scene's truth has a convention (``BenchScene.convention``):

* ``physical``: the endmembers at the data's reflectance scale, the abundances fractions that
  sum to one and reconstruct each pixel (up to noise and illumination);
* ``max-normalised NNLS``: Samson's shipped truth, the non-negative least-squares fit on the
  endmembers divided by their maxima, scaled to sum to one;
* ``publisher``: MUUFL's reference abundances, derived by its publishers from other data; no
  linear model of the image reproduces them exactly.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from dffn_qgis.core.eval import synthetic
from dffn_qgis.core.io.mat_io import read_mat_scene, read_mat_truth
from dffn_qgis.core.io.scene import Scene
from dffn_qgis.core.io.spectral_library import SpectralLibrary, read_earthlib, resample
from dffn_qgis.core.method.naming import MATERIALS

from .sensors import SENSORS

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CACHE = ROOT / ".bench" / "scenes"

# The materials a generated scene draws from: the classes endmembers are named by (one definition).
MIN_ANGLE = 0.06        # rad: no two materials of a scene closer than this (else the truth is ambiguous)


@dataclass(frozen=True)
class SceneSpec:
    """Everything that makes one generated scene."""

    name: str
    sensor: str
    materials: Tuple[str, ...]
    size: Tuple[int, int]
    snr_db: float
    pure: bool                     # pure regions of every material, or mixed everywhere
    max_fraction: float = 0.8      # the largest fraction when ``pure`` is False
    illumination: float = 0.0      # per-pixel brightness varies by this much either way (0.2: 0.8-1.2)
    nodata: bool = False           # a corner rectangle and a blob of nodata
    seed: int = 0

    def describe(self) -> str:
        h, w = self.size
        mix = "pure pixels" if self.pure else f"no pure pixels (max {self.max_fraction:g})"
        extra = (f", brightness x{1 - self.illumination:g}-{1 + self.illumination:g}" if self.illumination else "")
        extra += ", nodata region" if self.nodata else ""
        return (f"{self.sensor}, {h} x {w}, {len(self.materials)} endmembers "
                f"({', '.join(self.materials)}), {mix}, SNR {self.snr_db:g} dB{extra}")


GENERATED: List[SceneSpec] = [
    SceneSpec("G01-enmap-4", "enmap", ("vegetation", "soil", "water", "asphalt"), (100, 100), 30, True),
    SceneSpec("G02-enmap-6", "enmap", ("vegetation", "soil", "water", "shingle roof", "dry vegetation", "concrete"),
              (110, 110), 30, False, 0.7, illumination=0.2, nodata=True, seed=1),
    SceneSpec("G03-emit-3", "emit", ("soil", "dry vegetation", "shingle roof"), (80, 80), 40, True,
              illumination=0.2, seed=2),
    SceneSpec("G04-emit-5", "emit", ("vegetation", "soil", "water", "asphalt", "concrete"), (100, 100), 20, False,
              0.8, seed=3),
    SceneSpec("G05-emit-8", "emit", ("vegetation", "soil", "water", "asphalt", "shingle roof", "dry vegetation",
                                     "concrete", "char"), (120, 120), 30, True, nodata=True, seed=4),
    SceneSpec("G06-avirisng-4", "aviris-ng", ("vegetation", "soil", "water", "wood"), (70, 70), 40, False, 0.6,
              illumination=0.15, seed=5),
    SceneSpec("G07-avirisng-7", "aviris-ng", ("vegetation", "soil", "water", "asphalt", "shingle roof",
                                               "dry vegetation", "sand"), (80, 80), 20, True, seed=6),
    SceneSpec("G08-broad56-3", "broad56", ("vegetation", "soil", "concrete"), (60, 60), 30, False, 0.7,
              illumination=0.2, nodata=True, seed=7),
    SceneSpec("G09-broad56-6", "broad56", ("vegetation", "soil", "water", "asphalt", "dry vegetation", "char"),
              (150, 150), 40, True, seed=8),
    SceneSpec("G10-enmap-5", "enmap", ("vegetation", "soil", "asphalt", "dry vegetation", "wood"), (70, 70), 20,
              True, illumination=0.25, seed=9),
]


@dataclass
class BenchScene:
    name: str
    scene: Scene                   # what the methods see (valid pixels only take part)
    abundances: np.ndarray         # truth (P, H, W), summing to one
    endmembers: np.ndarray         # truth (L, P)
    names: List[str]
    convention: str                # see the module's docstring
    description: str


# ---------------------------------------------------------------------------------------------
# scenes from ../shared/data

REAL = {
    "samson": ("samson/Samson.mat", "max-normalised NNLS",
               "Samson (real, 95 x 95, 156 bands, 3 endmembers: soil, tree, water)"),
    "muufl": ("muufl/MUUFL.mat", "publisher",
              "MUUFL Gulfport (real, CASI, 90 x 90, 64 bands, 5 endmembers)"),
    "dc1": ("dc1/DC1.mat", "physical",
            "DC1 (simulated from 5 library spectra, 75 x 75, 224 bands, no noise)"),
}


def real_scene(key: str) -> BenchScene:
    relative, convention, description = REAL[key]
    path = SHARED / relative
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing (the shared development data are not beside the project)")
    scene = read_mat_scene(str(path))
    A, M = read_mat_truth(str(path))
    A = A.reshape((A.shape[0],) + scene.valid.shape) if A.ndim == 2 else A
    return BenchScene(name=key, scene=scene, abundances=np.asarray(A, np.float64), endmembers=np.asarray(M, np.float64),
                      names=[f"truth {i + 1}" for i in range(A.shape[0])], convention=convention,
                      description=description)


# ---------------------------------------------------------------------------------------------
# generated scenes


def pick_endmembers(library: SpectralLibrary, materials, centres, fwhm, seed: int
                    ) -> Tuple[np.ndarray, List[str]]:
    """One measured spectrum per material, resampled to the sensor (L, P), and their names.

    Candidates are drawn at random (by ``seed``) from the material's classes; one closer than
    ``MIN_ANGLE`` to a material already chosen is passed over.
    """
    rng = np.random.default_rng([seed, 11])
    chosen: List[np.ndarray] = []
    names: List[str] = []
    for material in materials:
        if material == "water":
            fine = synthetic.water(library.wavelengths)[None, :]
            spectrum = resample(library.wavelengths, fine, centres, fwhm)[0]
            chosen.append(spectrum)
            names.append("water (analytic)")
            continue
        pool = np.concatenate([library.of_class(c) for c in MATERIALS[material]])
        if pool.size == 0:
            raise ValueError(f"the library has no spectrum of {material}")
        for index in rng.permutation(pool)[:200]:
            spectrum = resample(library.wavelengths, library.spectra[index][None], centres, fwhm)[0]
            if spectrum.max() < 0.02 or not np.isfinite(spectrum).all():
                continue
            if all(_angle(spectrum, other) >= MIN_ANGLE for other in chosen):
                chosen.append(spectrum)
                names.append(f"{material} ({library.names[index]})")
                break
        else:
            raise ValueError(f"no {material} spectrum at least {MIN_ANGLE} rad from the others")
    return np.stack(chosen, axis=1), names


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return math.acos(max(-1.0, min(1.0, cos)))


def brightness_field(height: int, width: int, amount: float, seed: int) -> np.ndarray:
    """Per-pixel illumination factors in [1 - amount, 1 + amount], smooth in space."""
    if amount <= 0:
        return np.ones((height, width))
    rng = np.random.default_rng([seed, 12])
    field = synthetic.gaussian_random_field(height, width, max(2.0, min(height, width) / 10.0), rng)
    return 1.0 + amount * np.tanh(field)


def generate(spec: SceneSpec, library: SpectralLibrary) -> BenchScene:
    centres, fwhm = SENSORS[spec.sensor]()
    M, names = pick_endmembers(library, spec.materials, centres, fwhm, spec.seed)
    h, w = spec.size
    P = len(spec.materials)
    A = synthetic.make_abundances(h, w, P, seed=spec.seed, pure_pixels=spec.pure,
                                  max_abundance=spec.max_fraction).astype(np.float64)
    clean = np.einsum("lp,phw->lhw", M, A) * brightness_field(h, w, spec.illumination, spec.seed)[None]
    sigma = math.sqrt(float(np.mean(clean ** 2)) / 10.0 ** (spec.snr_db / 10.0))
    rng = np.random.default_rng([spec.seed, 13])
    cube = (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32)
    valid = ~synthetic.nodata_mask(h, w, spec.seed) if spec.nodata else np.ones((h, w), bool)
    cube[:, ~valid] = 0.0
    scene = Scene(data=cube, valid=valid, wavelengths=np.round(centres, 2), wavelength_units="nm",
                  source=spec.name)
    return BenchScene(name=spec.name, scene=scene, abundances=A, endmembers=M, names=names,
                      convention="physical", description=spec.describe())


def _cache_path(spec: SceneSpec) -> Path:
    digest = hashlib.sha1(repr(sorted(asdict(spec).items())).encode()).hexdigest()[:10]   # a changed spec: a new file
    return CACHE / f"{spec.name}-{digest}.npz"


def generated_scene(spec: SceneSpec) -> BenchScene:
    """The scene of ``spec``, from the cache when it was made before."""
    path = _cache_path(spec)
    if path.exists():
        z = np.load(path, allow_pickle=False)
        scene = Scene(data=z["cube"], valid=z["valid"], wavelengths=z["wavelengths"], wavelength_units="nm",
                      source=spec.name)
        return BenchScene(name=spec.name, scene=scene, abundances=z["abundances"], endmembers=z["endmembers"],
                          names=list(z["names"]), convention="physical", description=spec.describe())
    bench = generate(spec, read_earthlib())
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, cube=bench.scene.data, valid=bench.scene.valid, wavelengths=bench.scene.wavelengths,
                        abundances=bench.abundances, endmembers=bench.endmembers, names=np.array(bench.names))
    return bench


def held_out_spec(k: int, seed: int = 777) -> SceneSpec:
    """The ``k``-th scene of a set drawn at random (sensor in turn; 3-8 materials, 50-150 pixels a side,
    SNR 20-40 dB, with or without pure pixels, illumination, nodata), to check on scenes nobody looked
    at what was chosen on the development scenes (``scripts/bench_count.py``). Some draws cannot be
    made (no spectrum of a material far enough from the others): :func:`generated_scene` then raises
    ``ValueError``."""
    rng = np.random.default_rng([seed, k])
    sensor = list(SENSORS)[k % len(SENSORS)]
    n_materials = int(rng.integers(3, 9))
    materials = tuple(str(m) for m in rng.permutation(list(MATERIALS))[:n_materials])
    side = int(rng.integers(50, 151))
    return SceneSpec(f"C{k:02d}-{sensor}-{n_materials}", sensor, materials, (side, side),
                     snr_db=float(rng.choice([20, 25, 30, 35, 40])), pure=bool(rng.random() < 0.5),
                     max_fraction=round(float(rng.uniform(0.6, 0.8)), 2),
                     illumination=float(rng.choice([0.0, 0.0, 0.1, 0.2, 0.25])), nodata=bool(rng.random() < 0.3),
                     seed=1000 + k)


SCENES: Dict[str, SceneSpec] = {s.name: s for s in GENERATED}
ALL_NAMES: List[str] = list(REAL) + [s.name for s in GENERATED]


def load(name: str) -> BenchScene:
    if name in REAL:
        return real_scene(name)
    return generated_scene(SCENES[name])


def available(name: str) -> Optional[str]:
    """None when ``name`` can be loaded here, else why not."""
    if name in REAL:
        path = SHARED / REAL[name][0]
        return None if path.exists() else f"{path} is missing"
    from dffn_qgis.core.io.spectral_library import earthlib_folder
    if not _cache_path(SCENES[name]).exists() and earthlib_folder() is None:
        return "the earthlib package is not installed (make setup)"
    return None
