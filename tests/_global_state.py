"""Fixtures for the full environment: every test starts and ends with the same global state.

The state is read and written here with plain ``random`` / numpy / torch calls,
never through seedscope, so a bug in the engine cannot hide in the fixture that
cleans up after it.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.utils.deterministic

import seedscope
from seedscope import _imports, _scope

ENV_VARS = ("PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG", "SEEDSCOPE_SEED")

# The fp32_precision settings of torch >= 2.9, parents before children.
PRECISION_NODES = (
    ("generic", "all"),
    ("cuda", "all"),
    ("mkldnn", "all"),
    ("cuda", "matmul"),
    ("cuda", "conv"),
    ("cuda", "rnn"),
    ("mkldnn", "matmul"),
    ("mkldnn", "conv"),
    ("mkldnn", "rnn"),
)
HAS_FP32_PRECISION = hasattr(torch._C, "_get_fp32_precision_getter")

_LEGACY_TF32: tuple[tuple[Callable[[], Any], Callable[[Any], None]], ...] = (
    (
        lambda: torch.backends.cuda.matmul.allow_tf32,
        lambda v: setattr(torch.backends.cuda.matmul, "allow_tf32", v),
    ),
    (
        lambda: torch.backends.cudnn.allow_tf32,
        lambda v: setattr(torch.backends.cudnn, "allow_tf32", v),
    ),
    (torch.get_float32_matmul_precision, torch.set_float32_matmul_precision),
)

GlobalState = dict[str, Any]


def _read_or_mixed(getter: Callable[[], Any]) -> Any:
    try:
        return getter()
    except RuntimeError:  # torch refuses after a mix of legacy and fp32_precision settings
        return "mixed"


def tf32_settings() -> tuple[Any, ...]:
    """Every TF32 setting, legacy then fp32_precision, as the public getters report them."""
    legacy = tuple(_read_or_mixed(getter) for getter, _ in _LEGACY_TF32)
    if not HAS_FP32_PRECISION:
        return legacy
    return legacy + tuple(torch._C._get_fp32_precision_getter(*node) for node in PRECISION_NODES)


def torch_flags() -> dict[str, Any]:
    return {
        "cudnn.deterministic": torch.backends.cudnn.deterministic,
        "cudnn.benchmark": torch.backends.cudnn.benchmark,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "fill_uninitialized_memory": torch.utils.deterministic.fill_uninitialized_memory,
        "tf32": tf32_settings(),
    }


def snapshot_global_state() -> GlobalState:
    """Everything a scope may touch, in a form that compares with ``==``."""
    np_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": (
            np_state["state"]["key"].tobytes(),
            np_state["state"]["pos"],
            np_state["has_gauss"],
            np_state["gauss"],
        ),
        "torch": torch.default_generator.get_state().numpy().tobytes(),
        "flags": torch_flags(),
        "environ": {name: os.environ.get(name) for name in ENV_VARS},
    }


def _restore_tf32(saved: tuple[Any, ...]) -> None:
    if tf32_settings() == saved:
        return
    for (_, setter), value in zip(_LEGACY_TF32, saved, strict=False):
        if value != "mixed":
            setter(value)
    for node, value in zip(PRECISION_NODES, saved[len(_LEGACY_TF32) :], strict=False):
        torch._C._set_fp32_precision_setter(*node, value)


def restore_global_state(saved: GlobalState) -> None:
    random.setstate(saved["python"])
    key, pos, has_gauss, gauss = saved["numpy"]
    np.random.set_state(("MT19937", np.frombuffer(key, dtype=np.uint32), pos, has_gauss, gauss))
    torch.default_generator.set_state(
        torch.frombuffer(bytearray(saved["torch"]), dtype=torch.uint8)
    )
    flags = saved["flags"]
    torch.backends.cudnn.deterministic = flags["cudnn.deterministic"]
    torch.backends.cudnn.benchmark = flags["cudnn.benchmark"]
    current = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    if current != (flags["deterministic_algorithms"], flags["warn_only"]):
        # Only when needed: the first use_deterministic_algorithms call takes seconds.
        torch.use_deterministic_algorithms(
            flags["deterministic_algorithms"], warn_only=flags["warn_only"]
        )
    torch.utils.deterministic.fill_uninitialized_memory = flags["fill_uninitialized_memory"]
    _restore_tf32(flags["tf32"])
    for name, value in saved["environ"].items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def _isolate_global_state() -> Iterator[None]:
    """Put back all global random state and settings after each test; fail on a leaked scope."""
    saved = snapshot_global_state()
    yield
    leaked = seedscope.current_scope()
    if leaked is not None:
        # Clean up through the engine's internals so later tests start clean.
        _scope._stack.set(())
        with _scope._lock:
            _scope._entries.clear()
        _imports.uninstall()
    restore_global_state(saved)
    assert leaked is None, f"the test left {leaked!r} active"


@pytest.fixture
def snapshot() -> Callable[[], GlobalState]:
    """Return a function that captures all global state a scope manages."""
    return snapshot_global_state


class Streams:
    """The usual seeding recipe and one draw from each global stream."""

    @staticmethod
    def seed(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    @staticmethod
    def draw() -> tuple[float, float, float]:
        return random.random(), float(np.random.rand()), torch.rand(()).item()

    @staticmethod
    def draw_gaussian() -> tuple[float, float, float]:
        return random.gauss(0.0, 1.0), float(np.random.randn()), torch.randn(()).item()

    def recipe(self, seed: int, draws: int) -> list[tuple[float, float, float]]:
        """The first ``draws`` uniform draws after the recipe, leaving state as it found it."""
        saved = snapshot_global_state()
        try:
            self.seed(seed)
            return [self.draw() for _ in range(draws)]
        finally:
            restore_global_state(saved)


@pytest.fixture
def streams() -> Streams:
    """The usual recipe (``random.seed``, ``np.random.seed``, ``torch.manual_seed``)."""
    return Streams()
