"""The run context: torch's thread count and the random generators as they were before a run."""
import numpy as np
import torch

from dffn_qgis.core.run.config import params_for
from dffn_qgis.core.run.context import RunContext


def test_threads_are_set_for_the_run_and_put_back():
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    with RunContext(params_for("paper", threads=wanted)):
        assert torch.get_num_threads() == wanted
    assert torch.get_num_threads() == before
    with RunContext(params_for("paper", threads=0)):            # 0: torch's own choice stays
        assert torch.get_num_threads() == before


def test_random_states_are_put_back_even_after_a_failure():
    torch.manual_seed(5)
    np.random.seed(5)
    expected = (torch.rand(2), np.random.rand(2))
    torch.manual_seed(5)
    np.random.seed(5)
    try:
        with RunContext(params_for("paper")):
            torch.manual_seed(99)
            np.random.seed(99)
            raise RuntimeError("the run failed")
    except RuntimeError:
        pass
    assert torch.equal(torch.rand(2), expected[0]) and np.array_equal(np.random.rand(2), expected[1])


def test_tensorfloat32_is_off_during_a_run_and_put_back():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        with RunContext(params_for("paper")):
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_deterministic_settings_of_a_gpu_run_are_put_back(monkeypatch):
    """What a run on a GPU switches on (deterministic algorithms, no NaN filling) is put back after it;
    the GPU is simulated (the settings themselves need none)."""
    import torch.utils.deterministic as deterministic
    from dffn_qgis.core.run import context as context_module
    from dffn_qgis.core.run.device import Hardware
    fake = Hardware(torch.device("cuda"), "simulated", torch.float32, "float32")
    monkeypatch.setattr(context_module, "resolve_hardware", lambda device, precision: fake)
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
              deterministic.fill_uninitialized_memory)
    with RunContext(params_for("paper")):
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not deterministic.fill_uninitialized_memory
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
            deterministic.fill_uninitialized_memory) == before


def test_a_run_first_calls_the_vector_math_functions_it_uses_on_a_tensor_every_thread_shares(monkeypatch):
    """torch's first exp after a matrix product was sometimes off on one thread (docs/RELIABILITY.md):
    a run makes that first call itself, split between the run's threads, before it computes."""
    called = []

    def watching(name, function):
        def wrapper(values, *args, **kwargs):
            called.append((name, values.dtype, values.numel()))
            return function(values, *args, **kwargs)
        return wrapper

    for name in ("exp", "acos", "sigmoid"):
        monkeypatch.setattr(torch, name, watching(name, getattr(torch, name)))
    with RunContext(params_for("fast", threads=2, device="cpu")):
        pass
    for name in ("exp", "acos", "sigmoid"):
        for dtype in (torch.float32, torch.float64):
            sizes = [n for f, d, n in called if f == name and d == dtype]
            assert sizes and sizes[0] >= 2 * 32768, (name, dtype)     # above torch's grain: both threads work
