"""Unmixing with given spectra: reading them, matching bands, the solvers, whole runs."""
import csv
import json

import numpy as np
import pytest
from osgeo import gdal

from dffn_qgis.core.errors import InputError
from dffn_qgis.core.eval import synthetic
from dffn_qgis.core.io.outputs import plan_outputs
from dffn_qgis.core.io.scene import Scene
from dffn_qgis.core.run import service
from dffn_qgis.core.run.apply import Spectra, match_bands, read_spectra, solve


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("apply")
    s = synthetic.make_scene(40, 48, 50, 4, seed=21, snr_db=50)
    return s, synthetic.write_geotiff(s, d / "scene.tif")


def _read(path):
    ds = gdal.Open(str(path))
    data = ds.ReadAsArray().astype(np.float64)
    names = [ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount)]
    nodata = ds.GetRasterBand(1).GetNoDataValue()
    ds = None
    return np.where(data == nodata, np.nan, data), names


def _write_csv(path, axis, wavelengths, values, names):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([axis] + names)
        for x, row in zip(wavelengths, values):
            w.writerow([x] + list(row))
    return path


def test_the_true_spectra_give_back_the_true_fractions(scene_files, tmp_path):
    s, files = scene_files
    out = tmp_path / "out"
    summary = service.apply(files["image"], files["endmembers"], plan_outputs(out, "scene"))
    A, names = _read(summary.paths["stack"])
    truth, _ = _read(files["abundances"])
    ok = np.isfinite(A[0]) & np.isfinite(truth[0])
    assert np.sqrt(np.mean((A[:, ok] - truth[:, ok]) ** 2)) < 0.02
    assert np.allclose(A[:, ok].sum(axis=0), 1.0, atol=1e-4)
    assert names == list(read_spectra(files["endmembers"]).names)          # named after the spectra
    record = json.loads((out / "scene_abundances.json").read_text())
    assert record["job"] == "apply" and record["solver"] == "fcls"


def test_spectra_at_another_brightness_or_on_another_grid_give_the_same_fractions(scene_files, tmp_path):
    s, files = scene_files
    reference = service.apply(files["image"], files["endmembers"], plan_outputs(tmp_path / "a", "x"))
    spectra = read_spectra(files["endmembers"])
    fine = np.arange(400.0, 2501.0, 2.0)                              # a finer library grid, x 100 brighter
    values = np.stack([np.interp(fine, spectra.wavelengths, spectra.values[:, k]) for k in range(4)], axis=1)
    path = _write_csv(tmp_path / "lib.csv", "wavelength", fine, 100 * values, list(spectra.names))
    other = service.apply(files["image"], path, plan_outputs(tmp_path / "b", "x"))
    a, _ = _read(reference.paths["stack"])
    b, _ = _read(other.paths["stack"])
    ok = np.isfinite(a[0])
    assert np.abs(a[:, ok] - b[:, ok]).max() < 0.03


def test_solvers():
    rng = np.random.default_rng(3)
    E = rng.uniform(0.1, 1.0, (30, 4))
    A = rng.dirichlet(np.ones(4), 200).T
    Y = E @ A
    assert np.allclose(solve(Y, E, "fcls"), A, atol=1e-6)
    assert np.allclose(solve(Y, E, "nnls"), A, atol=1e-6)
    assert np.allclose(solve(Y, E, "ls"), A, atol=1e-6)
    with pytest.raises(InputError, match="solver"):
        solve(Y, E, "magic")


def _scene(wavelengths, units="nm"):
    n = len(wavelengths)
    return Scene(data=np.zeros((n, 2, 2), np.float32), valid=np.ones((2, 2), bool), wavelengths=np.asarray(wavelengths),
                 wavelength_units=units, band_indices=list(range(1, n + 1)), band_names=[""] * n, source="s")


def test_band_matching_rules():
    wl = np.linspace(450, 2400, 40)
    spectra = Spectra(np.ones((40, 2)), ("a", "b"), wl)
    assert match_bands(spectra, _scene(wl))[1] == "spectra on the image's bands"
    resampled, how = match_bands(spectra, _scene(wl[::2]))
    assert resampled.shape == (20, 2) and "resampled" in how
    with pytest.raises(InputError, match="outside"):
        match_bands(spectra, _scene(np.linspace(300, 2400, 40)))
    no_wavelengths = Spectra(np.ones((40, 2)), ("a", "b"), None)
    assert match_bands(no_wavelengths, _scene(wl))[0].shape == (40, 2)
    with pytest.raises(InputError, match="cannot be matched"):
        match_bands(no_wavelengths, _scene(wl[:30]))


def test_bad_spectra_files_are_clear_errors(tmp_path, scene_files):
    with pytest.raises(InputError, match="not found"):
        read_spectra(tmp_path / "none.csv")
    (tmp_path / "bad.csv").write_text("colour,a\nred,1\nblue,2\n")
    with pytest.raises(InputError, match="'wavelength' or 'band'"):
        read_spectra(tmp_path / "bad.csv")
    (tmp_path / "text.csv").write_text("wavelength,a\n400,x\n500,2\n")
    with pytest.raises(InputError, match="must be a number"):
        read_spectra(tmp_path / "text.csv")
    _, files = scene_files
    out = tmp_path / "out"
    with pytest.raises(InputError, match="solver"):
        service.apply(files["image"], files["endmembers"], plan_outputs(out, "x"), solver="magic")
    assert not out.exists()


def test_a_library_written_by_unmix_reads_back(tmp_path, scene_files):
    """The ENVI library beside a run's CSV holds the same spectra and names."""
    _, files = scene_files
    summary = service.apply(files["image"], files["endmembers"], plan_outputs(tmp_path, "x"))
    csv_spectra = read_spectra(summary.paths["endmembers_csv"])
    sli_spectra = read_spectra(summary.paths["endmembers_sli"])
    assert csv_spectra.names == sli_spectra.names
    assert np.allclose(csv_spectra.values, sli_spectra.values, rtol=1e-5)
