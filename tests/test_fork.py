"""A process forked in a seeding scope reseeds its streams from ``derive_seed(seed, "fork", n)``.

Children are made with ``os.fork()`` (or by a fork ``multiprocessing`` pool)
and report their draws through a pipe. A child always ends with
``os._exit``, whatever happens in it, so that it never goes on to run the
rest of the test session.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Generator
from contextlib import ExitStack
from typing import Any

import numpy as np
import pytest
import torch
from _recording import SeedRecorder
from _subprocess import in_child

from seedscope import Source, derive_seed, deterministic, isolated

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


Draw = tuple[float, float, float]


def draw() -> Draw:
    """One value from each global stream: ``random``, numpy and torch."""
    return random.random(), float(np.random.rand()), torch.rand(()).item()


def recipe(seed: int) -> Draw:
    """The first draw of each stream after seeding it with ``seed``, from generators of its own."""
    generator = torch.Generator().manual_seed(seed)
    return (
        random.Random(seed).random(),
        float(np.random.RandomState(seed).rand()),
        torch.rand((), generator=generator).item(),
    )


def forked(seed: int, n: int) -> Draw:
    """What the ``n``-th child forked inside an entry seeded with ``seed`` draws first."""
    return recipe(derive_seed(seed, "fork", n))


def fork_and_draw() -> Draw:
    """Fork; return the child's first draw from each stream."""
    return in_child(draw)


# -- os.fork ---------------------------------------------------------------------------


def test_the_nth_child_forked_in_a_scope_is_seeded_with_derive_seed_of_fork_and_n() -> None:
    with deterministic(42):
        children = [fork_and_draw() for _ in range(3)]
        parent = draw()
    assert children == [forked(42, n) for n in (1, 2, 3)]
    assert len({*children, parent}) == 4


def test_every_run_forks_the_same_children() -> None:
    def run() -> list[Draw]:
        with deterministic(42):
            return [fork_and_draw() for _ in range(3)]

    assert run() == run()


def test_forking_leaves_the_parents_streams_as_if_it_had_never_forked_and_restored_after(
    snapshot: Callable[[], Any],
) -> None:
    with deterministic(42):
        unforked = [draw() for _ in range(3)]
    before = snapshot()
    parent, children = [], []
    with deterministic(42):
        for _ in range(3):
            parent.append(draw())
            children.append(fork_and_draw())
    assert parent == unforked
    assert children == [forked(42, n) for n in (1, 2, 3)]
    assert snapshot() == before


def test_a_child_that_leaves_the_scope_gets_the_state_from_before_the_scope_back() -> None:
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    with ExitStack() as stack:
        stack.enter_context(deterministic(42))

        def leave_in_child() -> tuple[Draw, Draw]:
            inside = draw()
            stack.close()  # in the child: exits the scope there
            return inside, draw()

        inside, after = in_child(leave_in_child)
    assert inside == forked(42, 1)
    assert after == recipe(5)


def test_a_fork_after_the_scope_is_left_alone() -> None:
    with deterministic(42):
        assert fork_and_draw() == forked(42, 1)
    np.random.seed(5)
    torch.manual_seed(5)
    _, child_numpy, child_torch = fork_and_draw()
    _, parent_numpy, parent_torch = draw()
    # The child goes on with the parent's streams (random is reseeded by CPython).
    assert (child_numpy, child_torch) == (parent_numpy, parent_torch)


def test_a_fork_under_isolated_is_left_alone_and_not_counted_by_the_scope_around_it() -> None:
    with deterministic(42):
        first = fork_and_draw()
        with isolated():
            _, child_numpy, child_torch = fork_and_draw()
            _, parent_numpy, parent_torch = draw()
        second = fork_and_draw()
    assert (child_numpy, child_torch) == (parent_numpy, parent_torch)
    assert [first, second] == [forked(42, 1), forked(42, 2)]


def test_the_innermost_seeding_scope_seeds_the_child_and_keeps_its_own_count() -> None:
    with deterministic(42):
        outer_first = fork_and_draw()
        with deterministic(7):
            inner = [fork_and_draw() for _ in range(2)]
        outer_second = fork_and_draw()
    assert inner == [forked(7, 1), forked(7, 2)]
    assert [outer_first, outer_second] == [forked(42, 1), forked(42, 2)]


def test_each_entry_counts_its_forks_from_one() -> None:
    scope = deterministic(42)
    with scope:
        first_entry = fork_and_draw()
    with scope:
        second_entry = fork_and_draw()
    assert first_entry == second_entry == forked(42, 1)


# -- decorated generators and coroutines ---------------------------------------------------


@deterministic(7)
def forking_steps() -> Generator[Draw, None, None]:
    """Fork in each of two steps and yield the child's draws."""
    yield fork_and_draw()
    yield fork_and_draw()


def test_a_decorated_generator_that_forks_seeds_the_child_from_its_own_entry() -> None:
    with deterministic(42):
        steps = forking_steps()
        from_generator = next(steps)
        from_caller = fork_and_draw()
        steps.close()
    assert from_generator == forked(7, 1)
    assert from_caller == forked(42, 1)


def test_a_generators_fork_count_goes_on_from_step_to_step() -> None:
    with deterministic(42):
        steps = forking_steps()
        first_step = next(steps)
        between = fork_and_draw()
        second_step = next(steps)
        steps.close()
    assert [first_step, second_step] == [forked(7, 1), forked(7, 2)]
    assert between == forked(42, 1)
    assert list(forking_steps()) == [forked(7, 1), forked(7, 2)]


def test_a_decorated_coroutine_that_forks_seeds_the_child_from_its_own_entry() -> None:
    @deterministic(7)
    async def forking_coroutine() -> list[Draw]:
        first = fork_and_draw()
        await asyncio.sleep(0)
        return [first, fork_and_draw()]

    assert asyncio.run(forking_coroutine()) == [forked(7, 1), forked(7, 2)]


# -- multiprocessing ------------------------------------------------------------------------

# Set in each pool worker by its initializer (workers are forked: they share this module).
_first_draws: Draw | None = None
_all_busy: Any = None


def _record_first_draws(barrier: Any) -> None:
    global _first_draws, _all_busy
    _first_draws = draw()
    _all_busy = barrier


def _report_first_draws(_: int) -> tuple[int, Draw | None]:
    _all_busy.wait(timeout=60)  # each of the three tasks is held until all three workers have one
    return os.getpid(), _first_draws


def pool_first_draws() -> list[Draw]:
    """The first draws of each worker of a fork pool of three made in ``deterministic(42)``."""
    context = multiprocessing.get_context("fork")
    with deterministic(42), context.Pool(3, _record_first_draws, (context.Barrier(3),)) as pool:
        reports = pool.map(_report_first_draws, range(3), chunksize=1)
    assert len({pid for pid, _ in reports}) == 3
    return sorted(draws for _, draws in reports if draws is not None)


# python 3.12 warns about any fork in a process with threads, such as torch's.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_the_workers_of_a_fork_pool_made_in_a_scope_draw_distinct_streams_in_every_run() -> None:
    first_run = pool_first_draws()
    assert len(set(first_run)) == 3
    assert first_run == sorted(forked(42, n) for n in (1, 2, 3))
    assert pool_first_draws() == first_run


# -- what the child goes on with ---------------------------------------------------------


def test_a_library_first_imported_in_the_child_is_seeded_from_the_childs_own_seed(
    late_recorder: SeedRecorder,
) -> None:
    """numpy 2 imports numpy.random only when first used: a child may be the first."""

    def import_and_report() -> list[int]:
        __import__(late_recorder.module)
        return late_recorder.seeds

    with deterministic(42, sources=["python", late_recorder]):
        children = [in_child(import_and_report) for _ in range(2)]
    assert late_recorder.module not in sys.modules
    assert children == [[derive_seed(42, "fork", n)] for n in (1, 2)]


def test_a_child_of_a_child_draws_other_streams_than_its_parents_siblings() -> None:
    def child_then_grandchild() -> tuple[Draw, Draw]:
        return draw(), fork_and_draw()

    with deterministic(42):
        (child, grandchild), second_child = in_child(child_then_grandchild), fork_and_draw()
    assert child == forked(42, 1)
    assert second_child == forked(42, 2)
    assert grandchild == forked(derive_seed(42, "fork", 1), 1)
    assert len({child, grandchild, second_child}) == 3


@pytest.mark.filterwarnings("ignore::seedscope.ConcurrentScopesWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads
def test_a_fork_while_another_thread_enters_and_leaves_scopes_never_hangs_the_child() -> None:
    with deterministic(1):
        pass  # sources and entry points loaded before the thread starts
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            with deterministic(1):
                pass

    def enter_a_scope() -> int | None:
        signal.alarm(10)  # a child that hangs is killed, and the test fails
        return deterministic(2).__enter__().seed

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for _ in range(40):
            assert in_child(enter_a_scope) == 2
    finally:
        stop.set()
        thread.join(timeout=10)


def test_a_source_that_cannot_be_reseeded_after_a_fork_warns_and_the_others_are_reseeded() -> None:
    class Refuses(Source):
        name = "refuses"
        module = None

        def capture(self) -> Any:
            return None

        def seed(self, seed: int) -> None:
            if os.getpid() != parent:
                raise RuntimeError("not in a child")

        def restore(self, state: Any) -> None:
            pass

    parent = os.getpid()

    def numpy_after_warning() -> tuple[float, list[str]]:
        return float(np.random.rand()), [str(w.message) for w in caught]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with deterministic(42, sources=[Refuses(), "numpy"]):
            value, messages = in_child(numpy_after_warning)
    assert value == forked(42, 1)[1]
    assert len(messages) == 1
    assert "could not reseed source 'refuses' after a fork" in messages[0]
