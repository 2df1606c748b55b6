"""The run service: one request type, the band pre-check, failures as one line, global state kept."""
import numpy as np
import pytest
import torch

from dffn_qgis.core.run import service
from dffn_qgis.core.run.config import params_for
from dffn_qgis.core.errors import Cancelled, InputError
from dffn_qgis.core.io.outputs import plan_outputs
from dffn_qgis.core.eval.synthetic import make_scene, write_geotiff


@pytest.fixture(scope="module")
def small_tif(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "small.tif"
    write_geotiff(make_scene(12, 12, 8, 3, seed=3), path)
    return path


def test_failures_are_one_line_with_their_kind():
    cases = [(InputError("bad\nvalue"), "input", "bad value"),
             (Cancelled("asked"), "cancelled", "no output was written"),
             (OSError(28, "No space left on device"), "input", "No space left on device; no output was written"),
             (FloatingPointError("loss is not finite"), "input", "try a lower learning rate"),
             (MemoryError(), "fault", "not enough memory"),
             (KeyError("x"), "fault", "KeyError: 'x'; no output was written")]
    for exc, kind, fragment in cases:
        failure = service.describe_failure(exc)
        assert failure.kind == kind and fragment in failure.message and "\n" not in failure.message


def test_too_many_endmembers_for_the_bands_are_refused(small_tif):
    service.check_band_count(str(small_tif), None, 7)
    with pytest.raises(InputError, match="8 endmembers need at least 9 bands; the image has 8"):
        service.check_band_count(str(small_tif), None, 8)
    with pytest.raises(InputError, match="3 endmembers need at least 4 bands; 2 were chosen"):
        service.check_band_count(str(small_tif), [1, 2], 3)
    with pytest.raises(InputError, match="band 9 does not exist"):
        service.check_band_count(str(small_tif), [1, 9], 3, band_count=8)


def test_missing_input_is_an_input_error(tmp_path):
    request = service.RunRequest.make(tmp_path / "nothing.tif", params_for("paper", n_endmembers=3),
                                      plan_outputs(tmp_path / "out", "x"))
    with pytest.raises(InputError, match="input file not found"):
        service.run(request)


def test_a_run_puts_random_states_and_threads_back(small_tif, tmp_path):
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    np.random.seed(123)
    expected = (torch.rand(3), np.random.rand(3))
    torch.manual_seed(123)
    np.random.seed(123)
    params = params_for("paper", n_endmembers=3, epochs=2, threads=1, device="cpu")
    summary = service.run(service.RunRequest.make(small_tif, params, plan_outputs(tmp_path, "s")))
    assert summary.paths["stack"].endswith("s_abundances.tif")
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])
