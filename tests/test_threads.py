"""Scopes in several threads and tasks: each has its own stack; overlap is warned about.

Global random state is shared by every thread and every asyncio task, so two
scopes that are active at once cannot both be reproducible, and the one that
exits last may put back a state the other one seeded.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import random
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import torch
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


# -- overlapping entries: the last one out restores the state from before the first one in


class ScopeThread:
    """A thread that enters and exits one scope when told to, so a test sets the interleaving."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.commands: queue.Queue[str] = queue.Queue()
        self.done: queue.Queue[BaseException | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        for command in iter(self.commands.get, "stop"):
            try:
                if command == "enter":
                    self.scope.__enter__()
                else:
                    self.scope.__exit__(None, None, None)
                self.done.put(None)
            except BaseException as exc:
                self.done.put(exc)

    def do(self, command: str) -> None:
        self.commands.put(command)
        error = self.done.get(timeout=10)
        assert error is None, error

    def stop(self) -> None:
        self.commands.put("stop")
        self.thread.join(timeout=10)


def first_in_first_out(first: Scope, second: Scope) -> None:
    """``first`` entered in one thread, then ``second`` in another; ``first`` exits first."""
    a, b = ScopeThread(first), ScopeThread(second)
    try:
        a.do("enter")
        b.do("enter")
        a.do("exit")
        b.do("exit")
    finally:
        a.stop()
        b.stop()


@pytest.mark.filterwarnings("ignore::seedscope.ConcurrentScopesWarning")
@pytest.mark.parametrize("exit_order", list(itertools.permutations(range(3))))
def test_overlapping_scopes_of_three_threads_leave_nothing_seeded_in_any_exit_order(
    snapshot: Callable[[], GlobalState], exit_order: tuple[int, ...]
) -> None:
    before = snapshot()
    threads = [
        ScopeThread(deterministic(1, strict=True)),
        ScopeThread(deterministic(2, strict=True, warn_only=True)),
        ScopeThread(isolated()),
    ]
    try:
        for thread in threads:
            thread.do("enter")
            random.random()
        for index in exit_order:
            threads[index].do("exit")
    finally:
        for thread in threads:
            thread.stop()
    assert snapshot() == before


@pytest.mark.filterwarnings("ignore::seedscope.ConcurrentScopesWarning")
def test_the_issue_interleaving_leaves_neither_hash_seed_nor_strict_flags_on() -> None:
    hash_seed = os.environ.get("PYTHONHASHSEED")
    first_in_first_out(deterministic(1, strict=True), deterministic(2, strict=True))
    assert os.environ.get("PYTHONHASHSEED") == hash_seed
    assert not torch.backends.cudnn.deterministic
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.filterwarnings("ignore::seedscope.ConcurrentScopesWarning")
def test_a_thread_nested_inside_its_own_scope_overlapping_another_restores_at_the_end(
    snapshot: Callable[[], GlobalState],
) -> None:
    before = snapshot()
    outer, inner = deterministic(1), deterministic(2)
    other = ScopeThread(deterministic(3, strict=True))
    try:
        outer.__enter__()
        other.do("enter")
        inner.__enter__()
        outer_exits_out_of_order = pytest.raises(RuntimeError, match="reverse order")
        with outer_exits_out_of_order:
            outer.__exit__(None, None, None)  # exits inner too
        other.do("exit")
    finally:
        other.stop()
    assert current_scope() is None
    assert snapshot() == before


@pytest.mark.filterwarnings("ignore::seedscope.ConcurrentScopesWarning")
def test_overlapping_scopes_that_save_the_same_own_generator_give_it_back() -> None:
    generator = torch.Generator().manual_seed(11)
    expected = torch.Generator().manual_seed(11).get_state()
    first_in_first_out(deterministic(1, generators=[generator]), isolated(generators=[generator]))
    assert torch.equal(generator.get_state(), expected)


@pytest.mark.filterwarnings("ignore::seedscope.ConcurrentScopesWarning")
@pytest.mark.parametrize("first_out", ["first_in", "last_in"])
def test_overlapping_async_with_blocks_of_two_tasks_leave_nothing_seeded(
    snapshot: Callable[[], GlobalState], first_out: str
) -> None:
    async def hold(scope: Scope, entered: asyncio.Event, leave: asyncio.Event) -> None:
        async with scope:
            entered.set()
            await leave.wait()

    async def main() -> None:
        events = [(asyncio.Event(), asyncio.Event()) for _ in range(2)]
        tasks = []
        for seed, (entered, leave) in zip((1, 2), events, strict=True):
            scope = deterministic(seed, strict=True)
            tasks.append(asyncio.create_task(hold(scope, entered, leave)))
            await entered.wait()
        order = events if first_out == "first_in" else events[::-1]
        for _, leave in order:
            leave.set()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)

    before = snapshot()
    asyncio.run(main())
    assert snapshot() == before
