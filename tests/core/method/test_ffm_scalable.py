"""The scalable fusion's normalisation in one pass: the pairs that can hold the fused extremes."""
import numpy as np
import pytest
import torch

from dffn_qgis.core.io.raster_source import ArraySource
from dffn_qgis.core.method.ffm_scalable import ScalableFusion, _corner_pairs
from dffn_qgis.core.run.config import params_for

from small_scenes import scalable_scene


@pytest.mark.parametrize("kind", ["random", "correlated", "constant spectral", "ties", "many on the chain"])
def test_the_kept_pairs_hold_the_extremes_of_every_non_negative_combination(kind):
    g = torch.Generator().manual_seed(3)
    n = 20000
    s = torch.rand(n, generator=g)
    p = torch.rand(n, generator=g)
    if kind == "correlated":
        p = 0.8 * s + 0.2 * p
    elif kind == "constant spectral":
        s = torch.zeros(n)
    elif kind == "ties":
        s, p = torch.round(s * 4) / 4, torch.round(p * 4) / 4
    elif kind == "many on the chain":      # points on a quarter circle: every one is on the hull
        angle = torch.rand(n, generator=g) * (np.pi / 2)
        s, p = torch.cos(angle), torch.sin(angle)
    ks, kp = _corner_pairs(s, p)
    if kind != "many on the chain":
        assert ks.numel() < n / 10
    for a, b in [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (0.9, 0.1), (1e-3, 1.0), (3.0, 7.0)]:
        assert float((a * ks + b * kp).max()) == float((a * s + b * p).max())
        assert float((a * ks + b * kp).min()) == float((a * s + b * p).min())


@pytest.mark.parametrize("w", [0.5, 0.0, 1.0, 0.2])
def test_one_pass_ranges_equal_those_of_all_the_enhanced_pixels(w):
    """The fused range is the minimum and maximum over every valid pixel's weighted sum, and the
    fill their mean, scaled, as when a second pass enhanced every pixel."""
    scene = scalable_scene(height=300, width=40)         # two reading windows
    scene.valid[100:140, 5:25] = False                   # and a hole
    params = params_for("fast", n_endmembers=3, landmarks=64, w=w)
    fusion = ScalableFusion.fit(ArraySource(scene), params, torch.device("cpu"), scene.n_valid)
    Y = torch.from_numpy(np.ascontiguousarray(scene.data[:, scene.valid]))
    combined = fusion._combined(Y)                       # every valid pixel, with the fitted term ranges
    assert fusion.fused_range == (float(combined.min()), float(combined.max()))
    mean = combined.double().mean(dim=1)
    lo, hi = fusion.fused_range
    np.testing.assert_allclose(fusion.fill, ((mean - lo) / (hi - lo)).numpy(), rtol=0, atol=1e-6)
