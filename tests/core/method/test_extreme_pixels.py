"""The extreme pixels that the scalable path centres training windows on (core/method/extreme_pixels.py)."""
import numpy as np

from dffn_qgis.core.method.extreme_pixels import SkewerExtremes, atgp, extreme_pixels
from dffn_qgis.core.run.config import params_for
from dffn_qgis.core.run.scalable import training_windows


def _rare_material_scene(height=120, width=150, bands=40, seed=0):
    """Three common materials mixed everywhere, and a fourth only in a 3 x 3 patch; brightness
    varies +-30 % between pixels."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, bands)[:, None]
    E = 0.2 + 0.6 * np.abs(np.sin(3 * x * rng.uniform(1, 4, 4) + rng.uniform(0, 3, 4)))
    A = np.zeros((4, height, width))
    A[:3] = rng.dirichlet(np.full(3, 0.5), (height, width)).transpose(2, 0, 1)
    A[:3, 10, 10], A[:3, 60, 140], A[:3, 110, 5] = np.eye(3)          # pure pixels of the common ones
    A[:, 80:83, 30:33] = 0.0
    A[3, 80:83, 30:33] = 1.0
    brightness = rng.uniform(0.7, 1.3, (height, width))
    cube = np.einsum("lp,phw->lhw", E, A) * brightness + 0.002 * rng.standard_normal((bands, height, width))
    return cube.astype(np.float32), E


def _blocks(cube, size=32):
    L, H, W = cube.shape
    for r0 in range(0, H, size):
        for c0 in range(0, W, size):
            block = cube[:, r0:r0 + size, c0:c0 + size]
            rr, cc = np.mgrid[r0:r0 + block.shape[1], c0:c0 + block.shape[2]]
            yield block.reshape(L, -1), rr.ravel(), cc.ravel()


def test_a_material_of_nine_pixels_is_found_whatever_the_brightness():
    cube, _ = _rare_material_scene()
    Y = cube.reshape(cube.shape[0], -1).astype(np.float64)
    picks = extreme_pixels(_blocks(cube), Y @ Y.T, 4, seed=1)
    assert len(picks) == 4 and len(set(picks)) == 4
    assert any(80 <= r < 83 and 30 <= c < 33 for r, c in picks), picks


def test_streaming_in_blocks_equals_one_pass_over_the_whole_image():
    cube, _ = _rare_material_scene(seed=2)
    L = cube.shape[0]
    Y = cube.reshape(L, -1).astype(np.float64)
    whole = SkewerExtremes(Y @ Y.T, 4, seed=3)
    rr, cc = np.mgrid[:cube.shape[1], :cube.shape[2]]
    whole.update(cube.reshape(L, -1), rr.ravel(), cc.ravel())
    parts = SkewerExtremes(Y @ Y.T, 4, seed=3)
    for block in _blocks(cube, size=17):
        parts.update(*block)
    np.testing.assert_array_equal(whole.candidates()[1], parts.candidates()[1])


def test_atgp_picks_distinct_vertices_first():
    rng = np.random.default_rng(0)
    E = rng.uniform(0.1, 1.0, (30, 3))
    A = rng.dirichlet(np.ones(3), 200).T
    Y = np.concatenate([E @ A, E], axis=1)             # the vertices are the last three columns
    assert sorted(atgp(Y, 3)) == [200, 201, 202]


def test_training_windows_hold_the_extreme_pixels_and_keep_grid_coverage():
    valid = np.ones((300, 400), bool)
    params = params_for("fast", n_endmembers=4, train_windows=9, window=32)
    centres = [(5, 5), (150, 390), (299, 0), (160, 385)]        # the last is inside the second's window
    boxes = training_windows(valid, params, centres)
    for r, c in centres:
        assert any(r0 <= r < r0 + h and c0 <= c < c0 + w for r0, c0, h, w in boxes), (r, c)
    assert len(boxes) == 9 and all(h == 32 and w == 32 for _, _, h, w in boxes)
    many = training_windows(valid, params, [(i * 35, i * 45) for i in range(8)])
    assert len(many) == 9 and many[:6] == training_windows(valid, params, [(i * 35, i * 45) for i in range(6)])[:6]
    assert (0, 0, 32, 32) in many and not any(r0 <= 245 < r0 + 32 and c0 <= 315 < c0 + 32 for r0, c0, _, _ in many[:6])


def test_groups_hold_close_spectra_and_start_from_the_heaviest():
    from dffn_qgis.core.method.extreme_pixels import group_by_angle
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([0.0, 1.0, 0.0])
    near_a = np.array([1.0, 0.05, 0.0])                  # 0.05 rad from a
    spectra = np.stack([near_a, b, a, 2 * a], axis=1)    # 2a: the same direction, brighter
    groups = group_by_angle(spectra, np.array([1, 5, 3, 1]))
    assert [list(g) for g in groups] == [[1], [2, 0, 3]]


def test_a_dark_rare_material_beats_noisy_copies_of_a_bright_one():
    """Many noisy bright candidates of one material must not crowd out a dark material: the picks
    cover every material."""
    rng = np.random.default_rng(4)
    L = 50
    x = np.linspace(0, 1, L)
    bright = [0.5 + 0.3 * np.sin(6 * x + k) for k in range(3)]
    dark = 0.03 + 0.02 * np.cos(9 * x)
    spectra = [m * rng.uniform(0.8, 1.2) + 0.03 * rng.standard_normal(L) for m in bright for _ in range(15)]
    spectra += [dark + 0.002 * rng.standard_normal(L) for _ in range(3)]
    finder = SkewerExtremes(np.eye(L), 4, seed=0)
    S = np.stack(spectra, axis=1)
    finder.candidates = lambda: (S, np.stack([np.arange(S.shape[1]), np.zeros(S.shape[1], int)], 1),
                                 np.ones(S.shape[1], int))
    rows = [r for r, _ in finder.pick(4)]
    materials = {r // 15 if r < 45 else 3 for r in rows}
    assert materials == {0, 1, 2, 3}, rows
