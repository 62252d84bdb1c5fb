"""However a block ends, and whatever a source does, the caller's state comes back."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest
from conftest import GlobalState, Streams

from seedscope import RestoreError, Scope, Source, current_scope, deterministic, isolated
from seedscope.sources import BUILTIN_NAMES

Snapshot = Callable[[], GlobalState]


class Box(Source):
    """A piece of global state of our own, which can be told to fail at one step."""

    def __init__(self, name: str, *, fail_at: str | None = None) -> None:
        self.name = name
        self.value: Any = "outer"
        self.fail_at = fail_at
        self.calls: list[str] = []

    def _step(self, step: str) -> None:
        self.calls.append(step)
        if self.fail_at == step:
            raise OSError(f"{self.name} cannot {step}")

    def capture(self) -> Any:
        self._step("capture")
        return self.value

    def seed(self, seed: int) -> None:
        self._step("seed")
        self.value = seed

    def restore(self, state: Any) -> None:
        self._step("restore")
        self.value = state


class Boom(Exception):
    pass


def run_block(scope: Scope, body: Callable[[], None]) -> None:
    with scope:
        body()


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt, SystemExit])
def test_state_is_restored_when_the_block_raises(
    snapshot: Snapshot, streams: Streams, error: type[BaseException]
) -> None:
    def body() -> None:
        streams.draw()
        raise error()

    streams.seed(6)
    before = snapshot()
    with pytest.raises(error):
        run_block(deterministic(1, strict=True), body)
    assert snapshot() == before
    assert current_scope() is None


def test_isolated_restores_state_when_the_block_raises(
    snapshot: Snapshot, streams: Streams
) -> None:
    def body() -> None:
        streams.draw()
        raise KeyboardInterrupt

    before = snapshot()
    with pytest.raises(KeyboardInterrupt):
        run_block(isolated(), body)
    assert snapshot() == before


def test_the_blocks_exception_is_not_swallowed_or_replaced() -> None:
    error = Boom("from the block")
    with pytest.raises(Boom) as info, deterministic(1):
        raise error
    assert info.value is error


@pytest.mark.parametrize("position", ["first", "last"])
def test_a_failing_restore_raises_restore_error_after_restoring_every_other_source(
    snapshot: Snapshot, streams: Streams, position: str
) -> None:
    failing = Box("broken", fail_at="restore")
    other = Box("fine")
    sources: list[str | Source] = [*BUILTIN_NAMES, other]
    sources.insert(0 if position == "first" else len(sources), failing)

    def body() -> None:
        streams.draw()
        assert other.value == 1

    streams.seed(6)
    before = snapshot()
    with pytest.raises(RestoreError) as info:
        run_block(deterministic(1, strict=True, sources=sources), body)
    assert snapshot() == before
    assert other.value == "outer"
    assert [name for name, _ in info.value.errors] == ["broken"]
    assert isinstance(info.value.errors[0][1], OSError)
    assert info.value.__cause__ is info.value.errors[0][1]
    assert "broken" in str(info.value)
    assert "cannot restore" in str(info.value)
    assert current_scope() is None


def test_restore_error_lists_every_failing_source(snapshot: Snapshot) -> None:
    before = snapshot()
    sources: list[str | Source] = [
        "python",
        Box("a", fail_at="restore"),
        "numpy",
        Box("b", fail_at="restore"),
    ]
    with pytest.raises(RestoreError) as info, deterministic(1, sources=sources):
        pass
    assert sorted(name for name, _ in info.value.errors) == ["a", "b"]
    assert snapshot() == before


def test_restore_error_keeps_the_blocks_exception_as_context(snapshot: Snapshot) -> None:
    before = snapshot()
    with (
        pytest.raises(RestoreError) as info,
        deterministic(1, sources=[Box("x", fail_at="restore")]),
    ):
        raise Boom("from the block")
    assert isinstance(info.value.__context__, Boom)
    assert snapshot() == before


def test_scopes_work_normally_after_a_restore_error(streams: Streams) -> None:
    with pytest.raises(RestoreError), deterministic(1, sources=[Box("x", fail_at="restore")]):
        pass
    expected = streams.recipe(2, 2)
    with deterministic(2):
        assert [streams.draw(), streams.draw()] == expected


def test_a_failing_seed_raises_at_entry_and_restores_everything(
    snapshot: Snapshot, streams: Streams
) -> None:
    failing = Box("unseedable", fail_at="seed")
    streams.seed(6)
    before = snapshot()
    scope = deterministic(1, strict=True, sources=[*BUILTIN_NAMES, failing])
    with pytest.raises(OSError, match="unseedable cannot seed"), scope:
        pytest.fail("the block must not run")
    assert snapshot() == before
    assert failing.value == "outer"
    assert current_scope() is None


def test_a_failing_capture_raises_at_entry_and_changes_nothing(
    snapshot: Snapshot, streams: Streams
) -> None:
    failing = Box("unreadable", fail_at="capture")
    other = Box("fine")
    streams.seed(6)
    before = snapshot()
    scope = deterministic(1, sources=[*BUILTIN_NAMES, other, failing])
    with pytest.raises(OSError, match="unreadable cannot capture"), scope:
        pytest.fail("the block must not run")
    assert snapshot() == before
    assert "seed" not in other.calls
    assert current_scope() is None


def test_exiting_twice_raises_and_changes_nothing(snapshot: Snapshot) -> None:
    scope = deterministic(1)
    scope.__enter__()
    random.random()
    scope.__exit__(None, None, None)
    after_exit = snapshot()
    with pytest.raises(RuntimeError, match=r"deterministic\(1\) is not active"):
        scope.__exit__(None, None, None)
    assert snapshot() == after_exit


def test_async_with_restores_state_when_the_block_raises(
    snapshot: Snapshot, streams: Streams
) -> None:
    async def main() -> None:
        async with deterministic(1, strict=True):
            streams.draw()
            await asyncio.sleep(0)
            raise Boom

    before = snapshot()
    with pytest.raises(Boom):
        asyncio.run(main())
    assert snapshot() == before
