"""Names from a spectral library: matching by angle, numbering, the threshold, the bundled library."""
import csv

import numpy as np
import pytest

from dffn_qgis.core.io.scene import Scene
from dffn_qgis.core.io.spectral_library import SpectralLibrary, resample
from dffn_qgis.core.method.naming import (THRESHOLD, Match, default_library, match_endmembers, names_from,
                                          read_library)
from dffn_qgis.core.run.pipeline import name_endmembers
from dffn_qgis.core.run.progress import Monitor
from dffn_qgis.core.run.result import UnmixResult

WL = np.arange(400.0, 2501.0, 10.0)


def _library():
    x = (WL - 400) / 2100
    spectra = np.stack([0.1 + 0.5 * x, 0.6 - 0.4 * x, 0.3 + 0.2 * np.sin(6 * x), 0.12 + 0.45 * x ** 1.1])
    return SpectralLibrary(WL, spectra, ("ramp 1", "fall 1", "wave 1", "ramp 2"), ("ramp", "fall", "wave", "ramp"))


def test_each_endmember_gets_its_nearest_class_at_any_brightness_and_on_any_grid():
    lib = _library()
    centres = np.linspace(420, 2450, 90)
    E = resample(WL, lib.spectra[[2, 0, 1]], centres).T * np.array([3.0, 0.2, 7.0])
    matches = match_endmembers(E, centres, lib)
    assert [m.best for m in matches] == ["wave", "ramp", "fall"]
    assert all(m.angle < 0.01 and m.named for m in matches)
    assert matches[0].second in ("ramp", "fall") and matches[0].second_angle > matches[0].angle


def test_names_are_numbered_within_a_class_and_unmatched_ones_say_so():
    matches = [Match("soil", 0.02, "sand", 0.05), Match("soil", 0.04, "sand", 0.06),
               Match("water", THRESHOLD + 0.06, "soil", 0.4), Match("vegetation", 0.03, None, None)]
    assert names_from(matches) == ["soil 1", "soil 2", "endmember 3 (unmatched, nearest: water, 0.21 rad)",
                                   "vegetation"]


def _scene(wavelengths, units="nm"):
    n = 5 if wavelengths is None else len(wavelengths)
    return Scene(data=None, valid=np.ones((2, 2), bool), wavelengths=wavelengths, wavelength_units=units,
                 band_indices=list(range(1, n + 1)), band_names=[""] * n, source="s")


def _result(E):
    return UnmixResult(abundances=np.zeros((E.shape[1], 2, 2), np.float32), endmembers=E, error=np.zeros((2, 2)),
                       loss=0.0, record={})


def test_a_run_is_named_from_a_library_file_and_records_the_matches(tmp_path):
    lib = _library()
    path = tmp_path / "lib.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["wavelength (nm)"] + list(lib.names))
        for x, row in zip(WL, lib.spectra.T):
            w.writerow([x] + list(row))
    assert read_library(path).classes == ("ramp", "fall", "wave", "ramp")
    centres_um = np.linspace(0.45, 2.4, 60)
    result = _result(resample(WL, lib.spectra[[1, 2]], centres_um * 1000).T)
    log = []
    name_endmembers(result, _scene(centres_um, "um"), str(path), Monitor(info=log.append))
    assert result.endmember_names == ["fall", "wave"]
    assert result.record["endmember_names"][0]["class"] == "fall" and "endmember names" in log[-1]


def test_no_wavelengths_no_names():
    result = _result(np.ones((5, 2)))
    log = []
    name_endmembers(result, _scene(None, None), None, Monitor(info=log.append))
    assert result.endmember_names == ["endmember 1", "endmember 2"] and "wavelengths are unknown" in log[-1]


def test_the_bundled_library_names_its_own_classes_on_a_sensor_grid():
    lib = default_library()
    if lib is None:
        pytest.skip("the default library is built by make setup from earthlib, which is not installed here")
    centres = np.linspace(420, 2440, 200)
    picks = [lib.of_class(c)[0] for c in ("vegetation", "water", "soil")]
    E = resample(lib.wavelengths, lib.spectra[picks], centres).T
    names = names_from(match_endmembers(E, centres, lib))
    assert names == ["vegetation", "water", "soil"]
