"""``sources=``: narrowing a scope to some built-in sources, or adding sources of your own."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

import pytest
import torch
from conftest import GlobalState, Streams

from seedscope import Source, deterministic, isolated
from seedscope.sources import BUILTIN_NAMES

Snapshot = Callable[[], GlobalState]

STREAM_INDEX = {"python": 0, "numpy": 1, "torch": 2}


class Logged(Source):
    """State of our own that writes every call into a shared log."""

    def __init__(self, name: str, log: list[tuple[str, str]], *, module: str | None = None) -> None:
        self.name = name
        self.module = module
        self.log = log
        self.value: Any = "outer"
        self.captured: list[object] = []
        self.restored: list[object] = []

    def capture(self) -> Any:
        self.log.append((self.name, "capture"))
        token = object()
        self.captured.append(token)
        return (token, self.value)

    def seed(self, seed: int) -> None:
        self.log.append((self.name, "seed"))
        self.value = seed

    def restore(self, state: Any) -> None:
        self.log.append((self.name, "restore"))
        self.restored.append(state[0])
        self.value = state[1]


def test_a_scope_uses_every_builtin_source_by_default() -> None:
    assert tuple(source.name for source in deterministic(1).sources) == BUILTIN_NAMES
    assert tuple(source.name for source in isolated().sources) == BUILTIN_NAMES


def test_narrowing_to_python_leaves_numpy_and_torch_untouched(
    snapshot: Snapshot, streams: Streams
) -> None:
    os.environ.pop("PYTHONHASHSEED", None)
    python_expected = streams.recipe(5, 1)[0][0]
    outer_expected = streams.recipe(9, 2)
    streams.seed(9)
    before = snapshot()
    with deterministic(5, sources=("python",)):
        inside = snapshot()
        drawn = streams.draw()
    assert {k: v for k, v in inside.items() if k != "python"} == {
        k: v for k, v in before.items() if k != "python"
    }
    assert drawn[0] == python_expected
    assert drawn[1:] == outer_expected[0][1:]
    after = streams.draw()
    assert after[0] == outer_expected[0][0]  # python was restored ...
    assert after[1:] == outer_expected[1][1:]  # ... numpy and torch were never touched


@pytest.mark.parametrize("name", ["python", "numpy", "torch"])
def test_a_scope_narrowed_to_one_stream_seeds_only_that_stream(streams: Streams, name: str) -> None:
    index = STREAM_INDEX[name]
    seeded = streams.recipe(5, 1)[0]
    outer = streams.recipe(9, 1)[0]
    streams.seed(9)
    with deterministic(5, sources=[name]):
        drawn = streams.draw()
    for i in range(3):
        assert drawn[i] == (seeded[i] if i == index else outer[i])


def test_narrowing_to_flags_applies_strict_settings_and_nothing_else(
    snapshot: Snapshot,
) -> None:
    os.environ.pop("PYTHONHASHSEED", None)
    before = snapshot()
    with deterministic(1, strict=True, sources=["flags"]):
        inside = snapshot()
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic is True
    assert {k: v for k, v in inside.items() if k != "flags"} == {
        k: v for k, v in before.items() if k != "flags"
    }
    assert snapshot() == before


def test_narrowing_to_environ_sets_only_the_variables(snapshot: Snapshot) -> None:
    os.environ["PYTHONHASHSEED"] = "3"
    before = snapshot()
    with deterministic(8, sources=["environ"]):
        inside = snapshot()
    assert inside["environ"]["PYTHONHASHSEED"] == "8"
    assert {k: v for k, v in inside.items() if k != "environ"} == {
        k: v for k, v in before.items() if k != "environ"
    }
    assert snapshot() == before


def test_an_empty_sources_list_changes_nothing(snapshot: Snapshot) -> None:
    before = snapshot()
    with deterministic(8, sources=[]):
        assert snapshot() == before


def test_accelerators_source_is_harmless_without_accelerators(snapshot: Snapshot) -> None:
    before = snapshot()
    with deterministic(8, sources=["accelerators"]):
        assert snapshot() == before
    assert snapshot() == before


def test_a_custom_source_is_captured_seeded_and_restored() -> None:
    log: list[tuple[str, str]] = []
    box = Logged("box", log)
    with deterministic(13, sources=[box]):
        assert box.value == 13
    assert box.value == "outer"
    assert log == [("box", "capture"), ("box", "seed"), ("box", "restore")]
    assert box.restored == box.captured


def test_isolated_captures_and_restores_a_custom_source_without_seeding_it() -> None:
    log: list[tuple[str, str]] = []
    box = Logged("box", log)
    with isolated(sources=[box]):
        assert box.value == "outer"
        box.value = "changed inside"
    assert box.value == "outer"
    assert log == [("box", "capture"), ("box", "restore")]


def test_custom_and_builtin_sources_work_together(streams: Streams) -> None:
    box = Logged("box", [])
    expected = streams.recipe(4, 1)[0][0]
    streams.seed(1)
    before = random.getstate()
    with deterministic(4, sources=["python", box]):
        assert random.random() == expected
        assert box.value == 4
    assert random.getstate() == before
    assert box.value == "outer"


def test_sources_are_restored_in_reverse_order_of_capture() -> None:
    log: list[tuple[str, str]] = []
    first, second = Logged("first", log), Logged("second", log)
    with deterministic(1, sources=[first, second]):
        pass
    assert log == [
        ("first", "capture"),
        ("second", "capture"),
        ("first", "seed"),
        ("second", "seed"),
        ("second", "restore"),
        ("first", "restore"),
    ]


def test_a_custom_source_of_a_module_not_imported_is_skipped() -> None:
    log: list[tuple[str, str]] = []
    box = Logged("box", log, module="seedscope_module_that_is_never_imported")
    assert not box.available()
    with deterministic(1, sources=[box]):
        pass
    assert log == []


def test_a_custom_source_is_available_once_its_module_is_imported() -> None:
    box = Logged("box", [], module="numpy.random")
    assert box.available()
    with deterministic(1, sources=[box]):
        assert box.value == 1
    assert box.value == "outer"


def test_one_custom_source_serves_nested_scopes() -> None:
    box = Logged("box", [])
    with deterministic(1, sources=[box]):
        with deterministic(2, sources=[box]):
            assert box.value == 2
        assert box.value == 1
    assert box.value == "outer"


def test_a_sources_repr_names_it() -> None:
    assert "box" in repr(Logged("box", []))
