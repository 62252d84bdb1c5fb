"""Scopes in several threads and tasks: each has its own stack; overlap is warned about.

Global random state is shared by every thread and every asyncio task, so two
scopes that are active at once cannot both be reproducible, and the one that
exits last may put back a state the other one seeded.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from conftest import GlobalState, Streams

from seedscope import (
    ActiveScope,
    ConcurrentScopesWarning,
    Scope,
    SeedscopeWarning,
    current_scope,
    deterministic,
    isolated,
)


@contextmanager
def held_in_another_thread(scope: Scope) -> Iterator[list[ActiveScope | None]]:
    """Enter ``scope`` in a worker thread and keep it active until the block ends."""
    entered, release = threading.Event(), threading.Event()
    seen: list[ActiveScope | None] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with scope as active:
                seen.append(active)
                entered.set()
                release.wait(timeout=10)
                seen.append(current_scope())
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)
            entered.set()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert entered.wait(timeout=10)
        yield seen
    finally:
        release.set()
        thread.join(timeout=10)
    assert not errors, errors


def run_in_thread(target: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def wrapper() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=wrapper)
    thread.start()
    thread.join(timeout=10)
    assert not errors, errors


def test_concurrent_scopes_warning_is_a_user_warning() -> None:
    assert issubclass(ConcurrentScopesWarning, SeedscopeWarning)
    assert issubclass(ConcurrentScopesWarning, UserWarning)


@pytest.mark.parametrize("make_scope", [lambda: deterministic(2), isolated])
def test_overlapping_scopes_of_two_threads_warn(make_scope: Callable[[], Scope]) -> None:
    with (
        held_in_another_thread(deterministic(1)),
        pytest.warns(ConcurrentScopesWarning, match="other thread"),
        make_scope(),
    ):
        pass


def test_the_warning_points_at_the_callers_line() -> None:
    with (
        held_in_another_thread(deterministic(1)),
        pytest.warns(ConcurrentScopesWarning) as record,
        deterministic(2),
    ):
        pass
    assert record[0].filename == __file__


def test_sequential_scopes_in_two_threads_do_not_warn() -> None:
    def use_a_scope() -> None:
        with deterministic(1):
            pass

    run_in_thread(use_a_scope)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConcurrentScopesWarning)
        with deterministic(2):
            pass
    run_in_thread(use_a_scope)


def test_scopes_no_longer_warn_once_the_other_threads_scope_ended() -> None:
    with (
        held_in_another_thread(deterministic(1)),
        pytest.warns(ConcurrentScopesWarning),
        deterministic(2),
    ):
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConcurrentScopesWarning)
        with deterministic(3), deterministic(4):
            pass


def test_each_thread_sees_only_its_own_scopes() -> None:
    with held_in_another_thread(isolated()) as seen:
        assert current_scope() is None
    worker_entry, worker_current = seen
    assert worker_current is worker_entry
    assert current_scope() is None


def test_a_concurrency_warning_raised_as_an_error_leaves_no_scope_behind(
    snapshot: Callable[[], GlobalState],
) -> None:
    meta_path = list(sys.meta_path)
    with held_in_another_thread(deterministic(1)):
        before = snapshot()
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConcurrentScopesWarning)
            with pytest.raises(ConcurrentScopesWarning):
                deterministic(2).__enter__()
        assert current_scope() is None
        assert snapshot() == before
    assert sys.meta_path == meta_path


def test_overlapping_async_scopes_of_two_tasks_warn() -> None:
    async def hold(entered: asyncio.Event, release: asyncio.Event) -> None:
        async with deterministic(1):
            entered.set()
            await release.wait()

    async def main() -> None:
        entered, release = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(hold(entered, release))
        await entered.wait()
        try:
            with pytest.warns(ConcurrentScopesWarning):
                async with deterministic(2):
                    pass
        finally:
            release.set()
            await holder

    asyncio.run(main())


def test_a_task_awaited_inside_a_scope_nests_in_it_without_warning(streams: Streams) -> None:
    inner_expected = streams.recipe(2, 1)
    outer_expected = streams.recipe(1, 2)

    async def child() -> tuple[float, float, float]:
        async with deterministic(2):
            return streams.draw()

    async def main() -> list[tuple[float, float, float]]:
        async with deterministic(1):
            first = streams.draw()
            inner = await asyncio.create_task(child())
            return [first, inner, streams.draw()]

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConcurrentScopesWarning)
        first, inner, second = asyncio.run(main())
    assert inner == inner_expected[0]
    assert [first, second] == outer_expected
