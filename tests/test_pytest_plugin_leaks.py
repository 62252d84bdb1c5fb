"""The pytest plugin's leak detection: every kind of leaked setting, and quiet when clean.

Generated test projects run in-process with ``pytester.inline_run``, so the
warnings come back structured, each with the node id of the test it names.
"""

from __future__ import annotations

import importlib.util
import os
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
        tuple(os.environ.get(name) for name in {variables!r}),
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

{environ_leaks}

def test_zz_everything_was_put_back():
    assert read() == DEFAULTS
"""

# One test per other environment variable the check compares, each setting it.
VARIABLES = pytest_plugin._LEAK_VARIABLES
OTHER_VARIABLES = [
    name for name in VARIABLES if name not in ("PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG")
]
ENVIRON_LEAKS = "".join(
    f"""

def test_sets_{name.lower()}():
    os.environ[{name!r}] = "1"
"""
    for name in OTHER_VARIABLES
)

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
    **{f"test_sets_{name.lower()}": [f"{name}: unset -> '1'"] for name in OTHER_VARIABLES},
}


def leaks(defaults: tuple[object, ...]) -> str:
    return LEAKS.format(defaults=defaults, variables=VARIABLES, environ_leaks=ENVIRON_LEAKS)


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
        tuple(os.environ.get(name) for name in VARIABLES),
    )


@pytest.fixture
def clean_defaults(monkeypatch: pytest.MonkeyPatch) -> tuple[object, ...]:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    values = defaults()
    assert values[:2] == (False, False), "the suite itself left cuDNN flags changed"
    return values


# -- settings ------------------------------------------------------------------------


def test_each_leaked_setting_is_reported_by_test_and_setting_and_restored(
    project: pytest.Pytester, clean_defaults: tuple[object, ...]
) -> None:
    project.makepyfile(test_leaks=leaks(clean_defaults))
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
    project.makepyfile(test_leaks=leaks(clean_defaults))
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
            os.environ["SEEDSCOPE_SEED"] = "1"


        def test_after():
            assert not torch.backends.cudnn.benchmark
            assert torch.backends.cudnn.deterministic is False
        """
    )
    reprec = project.inline_run(*OUTSIDE, "--seedscope-leaks=rng")
    reprec.assertoutcome(passed=2)
    assert leak_messages(reprec) == {}
    assert defaults() == clean_defaults


SCOPED_TOOL_VARIABLES = """
import os

import pytest


@pytest.mark.deterministic
def test_seeds_like_lightning():
    os.environ["PL_GLOBAL_SEED"] = "7"
    os.environ["PL_SEED_WORKERS"] = "1"


@pytest.mark.deterministic
def test_cleans_up(monkeypatch):
    monkeypatch.setenv("PL_GLOBAL_SEED", "8")


def test_after():
    assert "PL_GLOBAL_SEED" not in os.environ
    assert "PL_SEED_WORKERS" not in os.environ
"""


def test_tests_in_scopes_are_reported_for_other_tools_variables_which_scopes_leave_alone(
    project: pytest.Pytester, clean_defaults: tuple[object, ...]
) -> None:
    project.makepyfile(test_scoped=SCOPED_TOOL_VARIABLES)
    reprec = project.inline_run(*OUTSIDE)
    reprec.assertoutcome(passed=3)
    assert leak_messages(reprec) == {
        "test_scoped.py::test_seeds_like_lightning": (
            "seedscope: test_scoped.py::test_seeds_like_lightning left environment variables "
            "changed: PL_GLOBAL_SEED: unset -> '7'; PL_SEED_WORKERS: unset -> '1' "
            "(seedscope restored them)"
        )
    }
    assert defaults() == clean_defaults

    reprec = project.inline_run(*OUTSIDE, "--seedscope-leaks=error")
    assert outcomes(reprec) == {
        "test_scoped.py::test_seeds_like_lightning": "error",
        "test_scoped.py::test_cleans_up": "passed",
        "test_scoped.py::test_after": "passed",
    }
    assert defaults() == clean_defaults

    reprec = project.inline_run(*OUTSIDE, "--seedscope-leaks=off")
    assert outcomes(reprec)["test_scoped.py::test_after"] == "failed"
    assert leak_messages(reprec) == {}
    assert os.environ.pop("PL_GLOBAL_SEED") == "7"  # not restored
    del os.environ["PL_SEED_WORKERS"]


@pytest.mark.skipif(
    importlib.util.find_spec("lightning_fabric") is None, reason="needs lightning-fabric"
)
def test_lightnings_seed_everything_in_a_test_is_reported(project: pytest.Pytester) -> None:
    # In a fresh interpreter: importing Lightning here would leave torch modules
    # that the in-process runs of this file then import twice.
    project.makepyfile(
        test_lightning="""
        import os

        from lightning_fabric.utilities.seed import seed_everything


        def test_seeds_everything():
            seed_everything(3, workers=True, verbose=False)


        def test_sees_nothing_of_it():
            assert "PL_GLOBAL_SEED" not in os.environ
        """
    )
    with pytest.MonkeyPatch.context() as patch:
        for name in VARIABLES:
            patch.delenv(name, raising=False)
        result = project.runpytest_subprocess(*OUTSIDE, "-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*: seedscope: test_lightning.py::test_seeds_everything left determinism "
            "settings changed: PL_GLOBAL_SEED: unset -> '3'; PL_SEED_WORKERS: unset -> '1' "
            "(seedscope restored them)",
            # Leaks were found: the summary says so, though no option was given.
            "seedscope: no --seedscope-seed: only tests marked deterministic run in scopes; "
            "leak checks: warn",
            "seedscope: 1 leak report(s) above: *",
        ]
    )


def test_a_leak_found_without_options_is_summed_up_after_the_report(
    project: pytest.Pytester, clean_defaults: tuple[object, ...]
) -> None:
    project.makepyfile(
        test_leak="""
        import os


        def test_leaks():
            os.environ["TF_DETERMINISTIC_OPS"] = "1"


        def test_clean():
            pass
        """
    )
    header = (
        "seedscope: no --seedscope-seed: only tests marked deterministic run in scopes; "
        "leak checks: {}"
    )
    for mode in ("warn", "error"):
        args = ("--seedscope-leaks=error",) if mode == "error" else ()
        result = project.runpytest(*OUTSIDE, *args)
        lines = result.stdout.lines
        assert lines.count(header.format(mode)) == (2 if args else 1), mode  # header, summary
        assert "seedscope: 1 leak report(s) above: tests or test modules that left " in (
            result.stdout.str()
        )
    project.makepyfile(test_leak="def test_clean(): pass")
    assert "seedscope:" not in project.runpytest(*OUTSIDE).stdout.str()
    assert defaults() == clean_defaults


MODULE_LIFETIMES = """
import os

import pytest


@pytest.fixture(scope="module", autouse=True)
def seeded_for_this_module():
    os.environ["PL_GLOBAL_SEED"] = "{value}"
    yield
    del os.environ["PL_GLOBAL_SEED"]


def test_one():
    assert os.environ["PL_GLOBAL_SEED"] == "{value}"


def test_two():
    pass
"""


def test_a_module_fixture_may_set_a_variable_for_its_module_and_the_next_module_another(
    project: pytest.Pytester, clean_defaults: tuple[object, ...]
) -> None:
    # Between the modules' tests pytest tears down one module fixture and sets
    # up the other: nothing a test did, so nothing is reported.
    project.makepyfile(
        test_first=MODULE_LIFETIMES.format(value=1),
        test_second=MODULE_LIFETIMES.format(value=2),
        test_third="def test_plain(): pass",
    )
    reprec = project.inline_run(*OUTSIDE)
    reprec.assertoutcome(passed=5)
    assert leak_messages(reprec) == {}
    assert defaults() == clean_defaults


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
