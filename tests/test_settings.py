"""torch's determinism settings and the environment variables a scope manages.

The autouse fixture in conftest.py snapshots every flag and variable before each
test and puts them back afterwards, with plain torch calls, so the tests here
may set non-default outer values freely.
"""

from __future__ import annotations

import os
import textwrap
from typing import Any

import pytest
import torch
import torch.utils.deterministic
from _subprocess import run_json
from conftest import HAS_FP32_PRECISION, GlobalState, tf32_settings

from seedscope import deterministic, isolated
from seedscope.sources.environ import cublas_config_needed

needs_fp32_precision = pytest.mark.skipif(
    not HAS_FP32_PRECISION, reason="torch < 2.9 has no fp32_precision settings"
)

TF32_LEAVES = (
    "cuda.matmul",
    "cudnn.conv",
    "cudnn.rnn",
    "mkldnn.matmul",
    "mkldnn.conv",
    "mkldnn.rnn",
)


def fp32_precision(leaf: str) -> str:
    """``torch.backends.<leaf>.fp32_precision``, e.g. leaf ``"cudnn.conv"``."""
    backend, op = leaf.split(".")
    value: str = getattr(getattr(torch.backends, backend), op).fp32_precision
    return value


def run_python(code: str) -> Any:
    """Run ``code`` in a fresh interpreter, without CUBLAS_WORKSPACE_CONFIG; return its JSON."""
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    return run_json(code, env=env, timeout=60)


def determinism_flags() -> tuple[bool, bool, bool, bool, bool]:
    return (
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.utils.deterministic.fill_uninitialized_memory,
    )


# -- cuDNN -------------------------------------------------------------------


@pytest.mark.parametrize("outer_deterministic", [False, True])
@pytest.mark.parametrize("outer_benchmark", [False, True])
@pytest.mark.parametrize("strict", [False, True])
def test_cudnn_flags_are_set_inside_and_restored_after(
    outer_deterministic: bool, outer_benchmark: bool, strict: bool
) -> None:
    torch.backends.cudnn.deterministic = outer_deterministic
    torch.backends.cudnn.benchmark = outer_benchmark
    with deterministic(1, strict=strict):
        assert torch.backends.cudnn.deterministic is True
        assert torch.backends.cudnn.benchmark is False
    assert torch.backends.cudnn.deterministic is outer_deterministic
    assert torch.backends.cudnn.benchmark is outer_benchmark


# -- deterministic algorithms and uninitialized memory -------------------------


@pytest.mark.parametrize("warn_only", [False, True])
def test_strict_turns_on_deterministic_algorithms_with_warn_only_as_given(
    warn_only: bool,
) -> None:
    torch.use_deterministic_algorithms(False)
    with deterministic(1, strict=True, warn_only=warn_only):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled() is warn_only
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()


@pytest.mark.parametrize("outer_warn_only", [False, True])
def test_deterministic_algorithms_are_restored_with_the_outer_warn_only(
    outer_warn_only: bool,
) -> None:
    torch.use_deterministic_algorithms(True, warn_only=outer_warn_only)
    with deterministic(1, strict=True, warn_only=not outer_warn_only):
        assert torch.is_deterministic_algorithms_warn_only_enabled() is not outer_warn_only
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled() is outer_warn_only


def test_strict_fills_uninitialized_memory_and_restores_the_outer_value() -> None:
    torch.utils.deterministic.fill_uninitialized_memory = False
    with deterministic(1, strict=True):
        assert torch.utils.deterministic.fill_uninitialized_memory is True
    assert torch.utils.deterministic.fill_uninitialized_memory is False


def test_non_strict_leaves_algorithms_memory_and_tf32_alone() -> None:
    torch.use_deterministic_algorithms(False)
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.set_float32_matmul_precision("medium")
    outer_tf32 = tf32_settings()
    with deterministic(1):
        assert not torch.are_deterministic_algorithms_enabled()
        assert torch.utils.deterministic.fill_uninitialized_memory is False
        assert tf32_settings() == outer_tf32


# -- TF32 and matmul precision -------------------------------------------------


def test_strict_turns_legacy_tf32_off_and_restores_it() -> None:
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    outer = tf32_settings()
    with deterministic(1, strict=True):
        assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cuda.matmul.allow_tf32 is True
    assert torch.backends.cudnn.allow_tf32 is True
    assert tf32_settings() == outer


@pytest.mark.parametrize("outer", ["medium", "high"])
def test_strict_sets_matmul_precision_highest_and_restores_it(outer: str) -> None:
    torch.set_float32_matmul_precision(outer)
    with deterministic(1, strict=True):
        assert torch.get_float32_matmul_precision() == "highest"
    assert torch.get_float32_matmul_precision() == outer


@needs_fp32_precision
def test_fp32_precision_settings_are_restored_after_strict() -> None:
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    torch.backends.mkldnn.conv.fp32_precision = "tf32"
    outer = tf32_settings()
    with deterministic(1, strict=True):
        assert tf32_settings() != outer
    assert tf32_settings() == outer
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    assert torch.backends.mkldnn.matmul.fp32_precision == "bf16"
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert torch.backends.mkldnn.conv.fp32_precision == "tf32"


@needs_fp32_precision
def test_generic_fp32_precision_is_restored_after_strict() -> None:
    torch.backends.fp32_precision = "tf32"
    outer = tf32_settings()
    with deterministic(1, strict=True):
        pass
    assert tf32_settings() == outer
    assert torch.backends.fp32_precision == "tf32"


@needs_fp32_precision
def test_strict_turns_tf32_off_when_enabled_through_fp32_precision() -> None:
    torch.backends.fp32_precision = "tf32"
    with deterministic(1, strict=True):
        still_tf32 = [leaf for leaf in TF32_LEAVES if fp32_precision(leaf) == "tf32"]
    assert still_tf32 == []


@needs_fp32_precision
def test_legacy_tf32_flags_stay_readable_inside_strict_after_new_api_use() -> None:
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    with deterministic(1, strict=True):
        assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cudnn.allow_tf32 is False
        assert torch.get_float32_matmul_precision() == "highest"


# -- changes made inside a block ------------------------------------------------


@pytest.mark.parametrize("make_scope", [lambda: deterministic(3), isolated])
def test_settings_changed_inside_a_non_strict_block_are_put_back(
    snapshot: Any, make_scope: Any
) -> None:
    torch.backends.cudnn.benchmark = True
    os.environ["PYTHONHASHSEED"] = "77"
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    before: GlobalState = snapshot()
    with make_scope():
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = False
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("medium")
        os.environ["PYTHONHASHSEED"] = "5"
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":16:8"
    after = snapshot()
    assert after["flags"] == before["flags"]
    assert after["environ"] == before["environ"]


@needs_fp32_precision
def test_fp32_precision_changed_inside_a_block_is_put_back() -> None:
    outer = tf32_settings()
    with deterministic(3):
        torch.backends.fp32_precision = "tf32"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    assert tf32_settings() == outer


def test_isolated_changes_no_setting_on_entry(snapshot: Any) -> None:
    torch.backends.cudnn.benchmark = True
    os.environ.pop("PYTHONHASHSEED", None)
    before: GlobalState = snapshot()
    with isolated():
        inside = snapshot()
    assert inside == before


# -- environment variables -----------------------------------------------------


@pytest.mark.parametrize("outer", [None, "0", "random"])
def test_pythonhashseed_is_the_seed_inside_and_restored_after(outer: str | None) -> None:
    if outer is None:
        os.environ.pop("PYTHONHASHSEED", None)
    else:
        os.environ["PYTHONHASHSEED"] = outer
    with deterministic(1234):
        assert os.environ["PYTHONHASHSEED"] == "1234"
    assert os.environ.get("PYTHONHASHSEED") == outer


def test_pythonhashseed_follows_seedscope_seed_when_seed_is_none() -> None:
    os.environ["SEEDSCOPE_SEED"] = "99"
    with deterministic() as scope:
        assert scope.seed == 99
        assert os.environ["PYTHONHASHSEED"] == "99"


@pytest.mark.parametrize("outer", [None, ":0:0", ":16:8"])
def test_cublas_config_set_inside_a_block_is_put_back(outer: str | None) -> None:
    if outer is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = outer
    with deterministic(1, strict=True):
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    assert os.environ.get("CUBLAS_WORKSPACE_CONFIG") == outer


@pytest.mark.skipif(torch.version.cuda is not None, reason="checks a torch without CUDA")
def test_strict_leaves_cublas_config_unset_for_a_torch_without_cuda() -> None:
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    with deterministic(1, strict=True):
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ


def test_strict_sets_cublas_config_before_torch_is_imported_and_removes_it() -> None:
    result = run_python(
        """
        import json, os, sys
        from seedscope import deterministic
        seen = []
        with deterministic(1):
            seen.append(os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
        with deterministic(1, strict=True):
            seen.append(os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
        seen.append(os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":0:0"
        with deterministic(1, strict=True):
            seen.append(os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
        seen.append(os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":16:8"
        with deterministic(1, strict=True):
            seen.append(os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
        print(json.dumps([seen, "torch" in sys.modules]))
        """
    )
    assert result == [[None, ":4096:8", None, ":4096:8", ":0:0", ":16:8"], False]


@pytest.mark.parametrize(
    ("version", "needed"),
    [
        (None, False),
        ("", False),
        ("9.2", False),
        ("10.1", False),
        ("10", False),
        ("10.2", True),
        ("10.2.89", True),
        ("11.0", True),
        ("11.8", True),
        ("12.4", True),
        ("12", True),
        ("13.0", True),
    ],
)
def test_cublas_config_is_needed_from_cuda_10_2(version: str | None, needed: bool) -> None:
    assert cublas_config_needed(version) is needed


# -- frozen flags ----------------------------------------------------------------


def test_scopes_work_while_torch_flags_are_frozen() -> None:
    # disable_global_flags() cannot be undone, so it runs in its own interpreter.
    result = run_python(
        """
        import json, torch, torch.utils.deterministic as tud
        from seedscope import deterministic
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("medium")
        tud.fill_uninitialized_memory = False
        torch.backends.disable_global_flags()
        try:
            torch.backends.cudnn.deterministic = True
        except RuntimeError:
            frozen = True
        else:
            frozen = False
        def flags():
            return [
                torch.backends.cudnn.deterministic,
                torch.backends.cudnn.benchmark,
                torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(),
                tud.fill_uninitialized_memory,
                torch.get_float32_matmul_precision(),
            ]
        with deterministic(1, strict=True, warn_only=True):
            inside = flags()
        print(json.dumps([frozen, inside, flags()]))
        """
    )
    frozen, inside, after = result
    assert frozen, "disable_global_flags() did not freeze the flags"
    assert inside == [True, False, True, True, True, "highest"]
    assert after == [False, True, False, False, False, "medium"]


# -- inductor's fallback_random --------------------------------------------------------
# Each case in its own interpreter: importing inductor takes seconds and cannot
# be undone. torch.compile itself is exercised in test_compile.py.

FALLBACK_RANDOM = """
import json, sys
import torch
from seedscope import capture, deterministic, isolated

def loaded():
    return "torch._inductor.config" in sys.modules

def value():
    return sys.modules["torch._inductor.config"].fallback_random

def waiting():  # an import hook of seedscope's waits for inductor's config
    wanted = (getattr(f, "_wants", None) for f in sys.meta_path)
    return any(wants("torch._inductor.config") for wants in wanted if wants is not None)
"""


def run_with_inductor_helpers(code: str) -> Any:
    return run_python(FALLBACK_RANDOM + textwrap.dedent(code))


def test_strict_sets_fallback_random_and_restores_it_when_inductor_is_loaded() -> None:
    result = run_with_inductor_helpers(
        """
        import torch._inductor.config as config
        seen = {}
        with deterministic(1):
            seen["plain"] = value()
        with deterministic(1, strict=True):
            seen["strict"] = value()
        seen["after"] = value()
        config.fallback_random = True
        with deterministic(1, strict=True):
            pass
        seen["kept"] = value()
        config.fallback_random = False
        with isolated():
            config.fallback_random = True
        seen["put_back"] = value()
        print(json.dumps(seen))
        """
    )
    assert result == {
        "plain": False,
        "strict": True,
        "after": False,
        "kept": True,
        "put_back": False,
    }


def test_fallback_random_waits_for_inductor_and_is_set_when_it_is_imported() -> None:
    result = run_with_inductor_helpers(
        """
        seen = {}
        with deterministic(1, strict=True):
            seen["waiting"] = [loaded(), waiting()]
            with deterministic(2):
                import torch._inductor.config  # the first import: inside both scopes
                seen["imported"] = value()
            seen["inner_exit"] = value()
        seen["after"] = [value(), waiting()]
        with deterministic(1):
            pass
        seen["plain"] = value()
        print(json.dumps(seen))
        """
    )
    assert result == {
        "waiting": [False, True],
        "imported": True,  # the strict scope's value, which the inner scope leaves
        "inner_exit": True,
        "after": [False, False],
        "plain": False,
    }


def test_a_strict_scope_without_inductor_leaves_nothing_waiting() -> None:
    result = run_with_inductor_helpers(
        """
        with deterministic(1, strict=True):
            inside = waiting()
        after = waiting()
        import torch._inductor.config
        print(json.dumps([inside, after, value()]))
        """
    )
    assert result == [True, False, False]


def test_snapshots_hold_fallback_random() -> None:
    result = run_with_inductor_helpers(
        """
        from seedscope import Snapshot
        with deterministic(1, strict=True):
            waiting_state = capture().state_dict()["sources"]["flags"]["fallback_random"]
        import torch._inductor.config as config
        default_state = capture().state_dict()["sources"]["flags"]["fallback_random"]
        config.fallback_random = True
        snapshot = capture()
        config.fallback_random = False
        Snapshot.from_state_dict(snapshot.state_dict()).restore()
        print(json.dumps([waiting_state, default_state, value()]))
        """
    )
    assert result == [True, None, True]


def test_a_fallback_random_state_that_is_not_a_bool_or_null_is_refused() -> None:
    from seedscope import Snapshot, capture

    state = capture().state_dict()
    state["sources"]["flags"]["fallback_random"] = "yes"
    with pytest.raises(
        ValueError,
        match=r"part 'flags': state 'fallback_random' must be true, false or null .*, not 'yes'",
    ):
        Snapshot.from_state_dict(state)


def test_a_snapshot_saved_before_fallback_random_was_kept_loads_with_the_default() -> None:
    from seedscope import Snapshot, capture

    state = capture().state_dict()
    del state["sources"]["flags"]["fallback_random"]
    loaded = Snapshot.from_state_dict(state).state_dict()
    assert loaded["sources"]["flags"]["fallback_random"] is None
