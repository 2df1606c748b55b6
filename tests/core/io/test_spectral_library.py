"""Spectral libraries: the ENVI reader and resampling to a sensor's bands."""
import numpy as np
import pytest

from dffn_qgis.core.errors import InputError
from dffn_qgis.core.io.spectral_library import default_fwhm, earthlib_folder, read_earthlib, read_envi_library, resample


def test_a_linear_spectrum_is_read_at_the_band_centre():
    wl = np.arange(400.0, 2501.0, 10.0)
    spectrum = 0.1 + 0.0002 * (wl - 400)
    centres = np.array([600.0, 1234.5, 2000.0])
    out = resample(wl, spectrum[None], centres, [10.0, 25.0, 40.0])[0]
    np.testing.assert_allclose(out, 0.1 + 0.0002 * (centres - 400), rtol=1e-6)


def test_wide_bands_smooth_a_narrow_feature_and_keep_its_area():
    wl = np.arange(400.0, 1000.0, 1.0)
    spectrum = np.where(np.abs(wl - 700) < 2.5, 1.0, 0.0)           # a 5 nm wide line
    narrow = resample(wl, spectrum[None], [700.0], [2.0])[0, 0]
    wide = resample(wl, spectrum[None], [700.0], [50.0])[0, 0]
    assert narrow > 0.8 and 0.05 < wide < 0.15


def test_gaps_are_bridged_and_ends_held():
    wl = np.array([400.0, 500.0, 600.0, 1000.0, 1100.0])              # a gap from 600 to 1000
    spectrum = np.array([0.1, 0.2, 0.3, 0.7, 0.8])
    out = resample(wl, spectrum[None], [800.0, 300.0, 1500.0], [1.0, 1.0, 1.0])[0]
    np.testing.assert_allclose(out, [0.5, 0.1, 0.8], atol=1e-3)


def test_default_widths_follow_the_spacing():
    np.testing.assert_allclose(default_fwhm(np.array([400.0, 410.0, 420.0, 440.0])), [10, 10, 15, 20])


def test_bad_widths_are_refused():
    with pytest.raises(InputError):
        resample([400, 500], [[0.1, 0.2]], [450.0], [0.0])


def _write_sli(folder, wavelengths_um, spectra, names):
    data = np.asarray(spectra, dtype="<f4")
    (folder / "lib.sli").write_bytes(data.tobytes())
    (folder / "lib.sli.hdr").write_text(
        "ENVI\nsamples = {}\nlines = {}\nbands = 1\nheader offset = 0\nfile type = ENVI Spectral Library\n"
        "data type = 4\ninterleave = bsq\nbyte order = 0\nwavelength units = Micrometers\n"
        "wavelength = {{ {} }}\nspectra names = {{ {} }}\n".format(
            data.shape[1], data.shape[0], ", ".join(str(w) for w in wavelengths_um), ", ".join(names)))
    return folder / "lib.sli"


def test_envi_library_round_trip(tmp_path):
    path = _write_sli(tmp_path, [0.4, 0.5, 0.6], [[0.1, 0.2, 0.3], [0.5, 0.4, 0.3]], ["grass", "roof"])
    lib = read_envi_library(path, classes={"grass": "vegetation"})
    np.testing.assert_allclose(lib.wavelengths, [400, 500, 600])
    np.testing.assert_allclose(lib.spectra[1], [0.5, 0.4, 0.3], rtol=1e-6)
    assert lib.names == ("grass", "roof") and lib.classes == ("vegetation", "roof")
    assert lib.of_class("vegetation").tolist() == [0]


def test_a_library_without_header_is_a_clear_error(tmp_path):
    (tmp_path / "x.sli").write_bytes(b"\0" * 16)
    with pytest.raises(InputError, match="no ENVI header"):
        read_envi_library(tmp_path / "x.sli")


@pytest.mark.skipif(earthlib_folder() is None, reason="the earthlib package is not installed (make setup)")
def test_earthlib_reads_with_classes():
    lib = read_earthlib()
    assert lib.spectra.shape[0] > 7000 and lib.wavelengths.min() == pytest.approx(400)
    for label in ("soil", "canopy", "road", "comp_shingle", "char"):
        assert lib.of_class(label).size > 0
