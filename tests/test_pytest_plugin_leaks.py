"""The pytest plugin's leak detection: every kind of leaked setting, and quiet when clean.

Generated test projects run in-process with ``pytester.inline_run``, so the
warnings come back structured, each with the node id of the test it names.
"""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
pytest.importorskip("torch.utils.deterministic")

from seedscope import pytest_plugin  # noqa: E402
from seedscope.sources import TorchFlags  # noqa: E402

# torch and numpy are imported above, before any in-process run: such a run
# drops the modules it imported itself, and neither can be imported twice.
# For the same reason the generated tests switch deterministic algorithms
# through torch._C: the first torch.use_deterministic_algorithms(True) call
# imports some 800 modules (torch._dynamo among them).

# -- helpers -------------------------------------------------------------------------

OUTSIDE = ("-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:hypothesispytest")
# In-process runs inherit this suite's warning filters, which make seedscope's
# warnings errors; the generated projects record them as warnings.
OUTSIDE += ("-W", "always::seedscope.SeedscopeWarning")


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


def leak_messages(reprec: pytest.HookRecorder) -> dict[str, str]:
    """The seedscope leak warnings of a run, by the node id of the test they name."""
    found: dict[str, str] = {}
    for call in reprec.getcalls("pytest_warning_recorded"):
        warning = call.warning_message
        if issubclass(warning.category, pytest_plugin.LeakWarning):
            assert call.nodeid not in found, f"two leak warnings for {call.nodeid}"
            found[call.nodeid] = str(warning.message)
    return found


def outcomes(reprec: pytest.HookRecorder) -> dict[str, str]:
    """'passed'/'failed' per test, 'error' for one that failed in setup or teardown."""
    result: dict[str, str] = {}
    for report in reprec.getreports("pytest_runtest_logreport"):
        if report.when == "call" or report.failed:
            if report.failed and report.when != "call":
                result[report.nodeid] = "error"
            else:
                result.setdefault(report.nodeid, report.outcome)
    return result


# One test per watched setting, each leaving it changed; the last test checks
# that seedscope put every one of them back.
LEAKS = """
import os

import torch
import torch.utils.deterministic

DEFAULTS = {defaults!r}


def read():
    return (
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.utils.deterministic.fill_uninitialized_memory,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
        torch.backends.mkldnn.matmul.fp32_precision,
        os.environ.get("PYTHONHASHSEED"),
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )


def test_cudnn_deterministic():
    torch.backends.cudnn.deterministic = True


def test_cudnn_benchmark():
    torch.backends.cudnn.benchmark = True


def test_deterministic_algorithms():
    torch._C._set_deterministic_algorithms(True)


def test_warn_only():
    torch._C._set_deterministic_algorithms(True, warn_only=True)


def test_fill_uninitialized_memory():
    torch.utils.deterministic.fill_uninitialized_memory = False


def test_matmul_tf32():
    torch.backends.cuda.matmul.allow_tf32 = True


def test_cudnn_tf32():
    torch.backends.cudnn.allow_tf32 = False


def test_matmul_precision():
    torch.set_float32_matmul_precision("medium")


def test_fp32_precision():
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"


def test_pythonhashseed():
    os.environ["PYTHONHASHSEED"] = "0"


def test_cublas_workspace_config():
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"


def test_clean():
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.benchmark = False


def test_clean_with_monkeypatch(monkeypatch):
    monkeypatch.setenv("PYTHONHASHSEED", "5")
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)


def test_zz_everything_was_put_back():
    assert read() == DEFAULTS
"""

EXPECTED = {
    "test_cudnn_deterministic": ["torch.backends.cudnn.deterministic: False -> True"],
    "test_cudnn_benchmark": ["torch.backends.cudnn.benchmark: False -> True"],
    "test_deterministic_algorithms": ["torch.use_deterministic_algorithms: False -> True"],
    "test_warn_only": ["torch.use_deterministic_algorithms(warn_only): False -> True"],
    "test_fill_uninitialized_memory": [
        "torch.utils.deterministic.fill_uninitialized_memory: True -> False"
    ],
    "test_matmul_tf32": ["torch.backends.cuda.matmul.allow_tf32: False -> True"],
    "test_cudnn_tf32": ["torch.backends.cudnn.allow_tf32: True -> False"],
    "test_matmul_precision": ["torch.get_float32_matmul_precision(): 'highest' -> 'medium'"],
    "test_fp32_precision": ["torch.backends.mkldnn.matmul.fp32_precision: 'none' -> 'bf16'"],
    "test_pythonhashseed": ["PYTHONHASHSEED: unset -> '0'"],
    "test_cublas_workspace_config": ["CUBLAS_WORKSPACE_CONFIG: unset -> ':4096:8'"],
}


def defaults() -> tuple[object, ...]:
    import os

    return (
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.utils.deterministic.fill_uninitialized_memory,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
        torch.backends.mkldnn.matmul.fp32_precision,
        os.environ.get("PYTHONHASHSEED"),
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )


@pytest.fixture
def clean_defaults(monkeypatch: pytest.MonkeyPatch) -> tuple[object, ...]:
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    values = defaults()
    assert values[:2] == (False, False), "the suite itself left cuDNN flags changed"
    return values


# -- settings ------------------------------------------------------------------------


def test_each_leaked_setting_is_reported_by_test_and_setting_and_restored(
    project: pytest.Pytester, clean_defaults: tuple[object, ...]
) -> None:
    project.makepyfile(test_leaks=LEAKS.format(defaults=clean_defaults))
    reprec = project.inline_run(*OUTSIDE)
    reprec.assertoutcome(passed=len(EXPECTED) + 3)
    messages = leak_messages(reprec)
    assert set(messages) == {f"test_leaks.py::{name}" for name in EXPECTED}
    for name, changes in EXPECTED.items():
        message = messages[f"test_leaks.py::{name}"]
        assert message.startswith(f"seedscope: test_leaks.py::{name} left determinism settings")
        assert message.endswith("(seedscope restored them)")
        for change in changes:
            assert change in message, (name, message)
    assert defaults() == clean_defaults


def test_error_mode_fails_each_leaking_test_at_teardown_and_still_restores(
    project: pytest.Pytester, clean_defaults: tuple[object, ...]
) -> None:
    project.makepyfile(test_leaks=LEAKS.format(defaults=clean_defaults))
    reprec = project.inline_run(*OUTSIDE, "--seedscope-leaks=error")
    results = outcomes(reprec)
    for name in EXPECTED:
        assert results[f"test_leaks.py::{name}"] == "error", name
    for name in ("test_clean", "test_clean_with_monkeypatch", "test_zz_everything_was_put_back"):
        assert results[f"test_leaks.py::{name}"] == "passed", name
    failures = {
        report.nodeid: str(report.longrepr)
        for report in reprec.getreports("pytest_runtest_logreport")
        if report.failed
    }
    assert (
        "torch.backends.cudnn.benchmark: False -> True"
        in failures["test_leaks.py::test_cudnn_benchmark"]
    )
    assert leak_messages(reprec) == {}
    assert defaults() == clean_defaults


def test_off_mode_neither_reports_nor_restores(
    project: pytest.Pytester, clean_defaults: tuple[object, ...]
) -> None:
    project.makepyfile(
        test_off="""
        import torch


        def test_leaks():
            torch.backends.cudnn.benchmark = True


        def test_sees_the_leak():
            assert torch.backends.cudnn.benchmark
        """
    )
    try:
        reprec = project.inline_run(*OUTSIDE, "--seedscope-leaks=off")
    finally:
        torch.backends.cudnn.benchmark = False
    reprec.assertoutcome(passed=2)
    assert leak_messages(reprec) == {}


def test_wider_fixtures_may_change_settings_for_their_lifetime(
    project: pytest.Pytester, clean_defaults: tuple[object, ...]
) -> None:
    project.makepyfile(
        test_fixtures="""
        import os

        import pytest
        import torch


        @pytest.fixture(scope="session", autouse=True)
        def session_wide_determinism():
            torch.backends.cudnn.deterministic = True
            yield
            torch.backends.cudnn.deterministic = False


        @pytest.fixture(scope="module")
        def module_hash_seed():
            os.environ["PYTHONHASHSEED"] = "3"
            yield
            del os.environ["PYTHONHASHSEED"]


        @pytest.fixture
        def leaky_function_fixture():
            torch.backends.cudnn.benchmark = True
            yield


        def test_first(module_hash_seed):
            assert torch.backends.cudnn.deterministic


        def test_uses_a_leaky_fixture(leaky_function_fixture, module_hash_seed):
            pass


        def test_last(module_hash_seed):
            assert os.environ["PYTHONHASHSEED"] == "3"
            assert not torch.backends.cudnn.benchmark
        """
    )
    reprec = project.inline_run(*OUTSIDE)
    reprec.assertoutcome(passed=3)
    assert leak_messages(reprec) == {
        "test_fixtures.py::test_uses_a_leaky_fixture": (
            "seedscope: test_fixtures.py::test_uses_a_leaky_fixture left determinism settings "
            "changed: torch.backends.cudnn.benchmark: False -> True (seedscope restored them)"
        )
    }
    assert defaults() == clean_defaults


def test_tests_in_scopes_are_not_reported_their_scope_restores_them(
    project: pytest.Pytester, clean_defaults: tuple[object, ...]
) -> None:
    project.makepyfile(
        test_scoped="""
        import os

        import pytest
        import torch


        @pytest.mark.deterministic
        def test_marked():
            torch.backends.cudnn.benchmark = True
            os.environ["PYTHONHASHSEED"] = "1"


        def test_after():
            assert not torch.backends.cudnn.benchmark
            assert torch.backends.cudnn.deterministic is False
        """
    )
    reprec = project.inline_run(*OUTSIDE, "--seedscope-leaks=rng")
    reprec.assertoutcome(passed=2)
    assert leak_messages(reprec) == {}


# -- rng -----------------------------------------------------------------------------

RNG = """
import random

import numpy as np
import pytest
import torch


def test_seeds_random():
    random.seed(1)


def test_seeds_numpy():
    np.random.seed(1)


def test_seeds_torch():
    torch.manual_seed(1)


def test_draws_from_random():
    random.random()


def test_clean():
    pass


def test_restores_what_it_seeds():
    state = random.getstate()
    random.seed(3)
    random.setstate(state)


@pytest.mark.deterministic
def test_seeds_inside_a_scope():
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
"""


def test_rng_mode_reports_tests_that_leave_generator_state_changed(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_rng=RNG)
    state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        reprec = project.inline_run(*OUTSIDE, "--seedscope-leaks=rng")
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.set_rng_state(state[2])
    reprec.assertoutcome(passed=7)
    messages = leak_messages(reprec)
    assert set(messages) == {
        "test_rng.py::test_seeds_random",
        "test_rng.py::test_seeds_numpy",
        "test_rng.py::test_seeds_torch",
        "test_rng.py::test_draws_from_random",
    }
    for name, generator in [
        ("test_seeds_random", "random"),
        ("test_seeds_numpy", "numpy.random"),
        ("test_seeds_torch", "torch"),
        ("test_draws_from_random", "random"),
    ]:
        assert messages[f"test_rng.py::{name}"].startswith(
            f"seedscope: test_rng.py::{name} left global random state changed: {generator} ("
        )


def test_warn_mode_does_not_look_at_generator_state(project: pytest.Pytester) -> None:
    project.makepyfile(test_rng=RNG)
    state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        reprec = project.inline_run(*OUTSIDE)
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.set_rng_state(state[2])
    reprec.assertoutcome(passed=7)
    assert leak_messages(reprec) == {}


# -- the leak check reads what a scope saves ---------------------------------------------


def test_snapshot_reads_what_torchflags_captures() -> None:
    assert pytest_plugin._read_flags() == TorchFlags().capture()


def test_snapshot_still_reads_when_torch_refuses_a_legacy_read(
    clean_defaults: tuple[object, ...],
) -> None:
    flags = TorchFlags()
    saved = flags.capture()
    try:
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"  # legacy getters now refuse
        with pytest.raises(RuntimeError):
            torch.get_float32_matmul_precision()
        settings = pytest_plugin._read_flags()
        assert settings == flags.capture()
        assert settings.precision[2] is None  # the matmul precision, unreadable
    finally:
        flags.restore(saved)
    assert defaults() == clean_defaults
