"""Small scenes several test modules share (tests/ is on sys.path: tests/conftest.py)."""
import numpy as np

from dffn_qgis.core.eval import synthetic
from dffn_qgis.core.io.scene import Scene


def mixture(L=60, P=4, N=1500, noise=0.0, seed=0):
    """Smooth random spectra mixed by Dirichlet abundances; the first P pixels are pure."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, L)[:, None]
    E = 0.2 + 0.6 * np.abs(np.sin(3 * x * rng.uniform(1, 4, P) + rng.uniform(0, 3, P)))
    A = rng.dirichlet(np.full(P, 0.7), N).T
    A[:, :P] = np.eye(P)
    Y = E @ A + noise * rng.standard_normal((L, N))
    return Y, E, A


def scalable_scene(height=40, width=44, bands=24, seed=3):
    s = synthetic.make_scene(height, width, bands, 3, seed=seed, snr_db=40)
    cube = (s.cube / s.cube.max()).astype(np.float32)
    return Scene(data=cube, valid=np.ones(cube.shape[1:], bool), wavelengths=s.wavelengths,
                 wavelength_units="nm", band_indices=list(range(1, bands + 1)),
                 band_names=[f"band {b}" for b in range(1, bands + 1)], source="synthetic")
