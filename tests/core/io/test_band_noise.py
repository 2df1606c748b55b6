"""Bands far noisier than their neighbours are left out by default (core/io/band_noise.py)."""
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from dffn_qgis.core.eval import synthetic
from dffn_qgis.core.io import band_noise
from dffn_qgis.core.io.raster_io import read_scene

TILE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "enmap_potsdam" / \
    "images_enmap_potsdam_tile_128_96.tif"


def _scene_with_a_noisy_band(path, noisy_band=None, size=90, bands=60):
    s = synthetic.make_scene(size, size, bands, 4, seed=7, snr_db=40)
    if noisy_band is not None:
        rng = np.random.default_rng(1)
        level = float(np.median(s.cube[noisy_band - 1]))
        s.cube[noisy_band - 1] += 0.3 * level * rng.standard_normal(s.cube.shape[1:]).astype(np.float32)
    return synthetic.write_geotiff(s, path, scale=10000)["image"]


def test_a_band_with_much_more_noise_is_left_out_and_said(tmp_path):
    clean = read_scene(_scene_with_a_noisy_band(tmp_path / "clean.tif"))
    assert not any("noisier" in n for n in clean.notes)                 # clean bands are all kept
    assert 10 in clean.band_indices                                     # (720 nm: no water window)
    scene = read_scene(_scene_with_a_noisy_band(tmp_path / "noisy.tif", noisy_band=10))
    assert list(scene.band_indices) == [b for b in clean.band_indices if b != 10]
    note = next(n for n in scene.notes if "noisier than their neighbours" in n)
    assert "10" in note and "--keep-bad-bands" in note


def test_keep_bad_bands_keeps_the_noisy_one(tmp_path):
    scene = read_scene(_scene_with_a_noisy_band(tmp_path / "noisy.tif", noisy_band=10), use_bbl=False)
    assert 10 in scene.band_indices and len(scene.band_indices) == 60


def test_texture_cancels_between_neighbouring_bands():
    rng = np.random.default_rng(0)
    texture = rng.uniform(0.5, 1.5, (64, 64))
    levels = np.linspace(0.2, 0.6, 20)
    noise = [band_noise.relative_noise(level * texture + 0.001 * rng.standard_normal((64, 64))) for level in levels]
    assert band_noise.noisy_bands(noise) == []
    noise[10] *= 6
    assert [i for i, _ in band_noise.noisy_bands(noise)] == [10]


def test_sample_windows_stay_inside_the_image():
    assert band_noise.sample_windows(100, 120) == [(0, 0, 120, 100)]
    for c0, r0, cols, rows in band_noise.sample_windows(1000, 300):
        assert 0 <= c0 and c0 + cols <= 300 and 0 <= r0 and r0 + rows <= 1000 and cols == rows == 64


@pytest.mark.skipif(not TILE.exists(), reason="../shared/data/enmap_potsdam is not beside the project")
def test_no_real_enmap_band_is_called_noisy_beyond_the_water_vapour_windows():
    scene = read_scene(str(TILE))
    assert not any("noisier" in n for n in scene.notes), scene.notes
