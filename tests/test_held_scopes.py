"""Scopes that a decorated generator or coroutine holds open across ``yield`` and ``await``.

A step suspends everything the generator entered: its own entry and every
scope it opened since, and the next step brings them all back in order. So
the caller's state is back at every suspension, the generator draws what the
same body would draw run straight through, and the caller's draws between
steps neither see nor shift the generator's.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from _recording import SeedRecorder

from seedscope import (
    Scope,
    current_scope,
    deterministic,
    isolated,
    private_stream,
)

Draw = tuple[float, float, float]


def draw() -> Draw:
    return random.random(), float(np.random.rand()), torch.rand(()).item()


def seed_caller(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def caller_draws(seed: int, count: int) -> list[Draw]:
    """What the caller's streams give after ``seed_caller(seed)``, with no scope in between."""
    seed_caller(seed)
    return [draw() for _ in range(count)]


def assert_caller_draws_between_steps(
    values: Callable[[], Iterable[Draw]],
    expected: list[Draw],
    check: Callable[[], object] = lambda: None,
) -> None:
    """Step through ``values()`` with the caller drawing after each step: the steps give
    ``expected`` and the caller what it gives alone; at each step no scope is current
    and ``check()`` passes."""
    expected_caller = caller_draws(7, len(expected))
    seed_caller(7)
    got, caller = [], []
    for value in values():
        assert current_scope() is None
        check()
        got.append(value)
        caller.append(draw())
    assert got == expected
    assert caller == expected_caller


def test_isolated_held_across_a_yield_restores_everything_at_the_end() -> None:
    @deterministic(1)
    def batches() -> Generator[float, None, None]:
        with isolated():
            yield random.random()

    hash_seed = os.environ.get("PYTHONHASHSEED")
    random.seed(5)
    assert len(list(batches())) == 1
    assert current_scope() is None
    assert os.environ.get("PYTHONHASHSEED") == hash_seed
    after = random.random()
    random.seed(5)
    assert after == random.random()


def straight_through() -> list[Draw]:
    """The body of the generators below, run without suspending."""
    with deterministic(1):
        values = [draw()]
        with isolated():
            values += [draw(), draw()]
        with deterministic(5):
            values += [draw(), draw()]
        values.append(draw())
    return values


def body_with_held_scopes() -> Iterator[Draw]:
    yield draw()
    with isolated():
        yield draw()
        yield draw()
    with deterministic(5):
        yield draw()
        yield draw()
    yield draw()


def test_a_generator_holding_scopes_draws_what_its_body_draws_run_straight_through() -> None:
    @deterministic(1)
    def values() -> Generator[Draw, None, None]:
        yield from body_with_held_scopes()

    # The caller's own state at every yield: no scope, its hash seed, its streams.
    hash_seed = os.environ.get("PYTHONHASHSEED")

    def same_hash_seed() -> None:
        assert os.environ.get("PYTHONHASHSEED") == hash_seed

    assert_caller_draws_between_steps(values, straight_through(), same_hash_seed)


def test_the_caller_sees_its_own_scope_at_every_yield() -> None:
    @deterministic(1)
    def values() -> Generator[Draw, None, None]:
        yield from body_with_held_scopes()

    with deterministic(9) as outer:
        for _ in values():
            assert current_scope() is outer
            assert os.environ["PYTHONHASHSEED"] == "9"


def test_a_coroutine_holding_an_async_scope_across_awaits_draws_as_run_straight_through() -> None:
    expected = straight_through()
    caller_expected = caller_draws(7, 6)

    @deterministic(1)
    async def work() -> list[Draw]:
        values = [draw()]
        await asyncio.sleep(0)
        async with isolated():
            values.append(draw())
            await asyncio.sleep(0)
            values.append(draw())
        async with deterministic(5):
            values.append(draw())
            await asyncio.sleep(0)
            values.append(draw())
        await asyncio.sleep(0)
        values.append(draw())
        return values

    async def bystander(log: list[Draw]) -> None:
        for _ in range(6):
            log.append(draw())
            await asyncio.sleep(0)

    async def main() -> tuple[list[Draw], list[Draw]]:
        log: list[Draw] = []
        seed_caller(7)
        task = asyncio.create_task(bystander(log))
        values = await work()
        await task
        return values, log

    values, log = asyncio.run(main())
    assert values == expected
    assert log == caller_expected
    assert current_scope() is None


def test_an_async_generator_holding_a_scope_across_yields_restores_the_caller() -> None:
    @deterministic(1)
    async def values() -> AsyncGenerator[Draw, None]:
        for value in body_with_held_scopes():
            await asyncio.sleep(0)
            yield value

    async def main() -> tuple[list[Draw], list[Draw]]:
        got, caller = [], []
        async for value in values():
            assert current_scope() is None
            got.append(value)
            caller.append(draw())
        return got, caller

    expected = straight_through()
    expected_caller = caller_draws(7, len(expected))
    seed_caller(7)
    got, caller = asyncio.run(main())
    assert got == expected
    assert caller == expected_caller


def test_a_private_stream_decorating_a_generator_suspends_the_scopes_it_holds() -> None:
    stream_values = private_stream(1)

    @stream_values
    def values() -> Generator[Draw, None, None]:
        yield from body_with_held_scopes()

    def not_active() -> None:
        assert not stream_values.active

    assert_caller_draws_between_steps(values, straight_through(), not_active)


def test_a_private_stream_held_across_yields_continues_and_leaves_the_caller_alone() -> None:
    stream = private_stream(3)

    @isolated
    def values() -> Generator[Draw, None, None]:
        with stream:
            for _ in range(4):
                yield draw()

    with private_stream(3):
        expected = [draw() for _ in range(4)]
    assert_caller_draws_between_steps(values, expected)
    assert not stream.active


def test_closing_a_generator_early_exits_the_scopes_it_holds() -> None:
    @deterministic(1)
    def values() -> Generator[Draw, None, None]:
        with isolated(), deterministic(5):
            while True:
                yield draw()

    seed_caller(7)
    expected_caller = caller_draws(7, 1)
    seed_caller(7)
    generator = values()
    next(generator)
    next(generator)
    generator.close()
    assert current_scope() is None
    assert [draw()] == expected_caller


def test_generators_that_hold_scopes_interleave_without_touching_each_other() -> None:
    @deterministic(1)
    def first() -> Generator[Draw, None, None]:
        yield from body_with_held_scopes()

    @deterministic(2)
    def second() -> Generator[Draw, None, None]:
        with isolated():
            for _ in range(6):
                yield draw()

    with deterministic(2):
        expected_second = [draw() for _ in range(6)]
    pairs = list(zip(first(), second(), strict=True))
    assert [a for a, _ in pairs] == straight_through()
    assert [b for _, b in pairs] == expected_second
    assert current_scope() is None


# -- suspended entries are not current ----------------------------------------------


def test_a_task_created_inside_a_decorated_coroutine_does_not_see_its_scope() -> None:
    async def child(parent_suspended: asyncio.Event) -> tuple[Any, Draw]:
        await parent_suspended.wait()
        return current_scope(), draw()

    @deterministic(3)
    async def parent() -> tuple[Any, Draw]:
        suspended = asyncio.Event()
        task = asyncio.create_task(child(suspended))
        suspended.set()
        return await task

    expected_caller = caller_draws(7, 1)[0]
    seed_caller(7)
    seen, drawn = asyncio.run(parent())
    assert seen is None
    assert drawn == expected_caller


def test_a_task_created_inside_a_scope_it_then_suspends_sees_the_enclosing_with_block() -> None:
    async def child() -> Any:
        await asyncio.sleep(0)
        return current_scope()

    @deterministic(3)
    async def parent() -> Any:
        return await asyncio.create_task(child())

    async def main() -> tuple[Any, Any]:
        async with isolated() as outer:
            return outer, await parent()

    outer, seen = asyncio.run(main())
    assert seen is outer


def test_an_import_in_a_child_task_is_not_seeded_for_a_suspended_parent(
    late_recorder: SeedRecorder,
) -> None:
    recorder = late_recorder
    scope = deterministic(3, sources=["python", recorder])

    async def child() -> list[int]:
        await asyncio.sleep(0)
        __import__(recorder.module)
        return list(recorder.seeds)

    @scope
    async def parent() -> list[int]:
        return await asyncio.create_task(child())

    async def main() -> list[int]:
        # A live scope waiting for the same module keeps the import hook installed.
        async with isolated(sources=[recorder]):
            return await parent()

    seeded_at_import = asyncio.run(main())
    assert seeded_at_import == []
    # The parent's next step seeds it for the parent's own state, as after any import.
    assert recorder.seeds == [3]


def test_a_module_imported_inside_the_step_itself_is_still_seeded(
    late_recorder: SeedRecorder,
) -> None:
    @deterministic(3, sources=["python", late_recorder])
    async def parent() -> None:
        await asyncio.sleep(0)
        __import__(late_recorder.module)

    asyncio.run(parent())
    assert late_recorder.seeds == [3]


@pytest.mark.parametrize("make_scope", [isolated, lambda: deterministic(4)])
def test_a_held_scope_keeps_its_own_state_between_steps(make_scope: Any) -> None:
    scope: Scope = make_scope()

    @deterministic(1)
    def values() -> Generator[float, None, None]:
        with scope:
            yield random.random()
            yield random.random()

    with deterministic(1), make_scope():
        expected = [random.random(), random.random()]
    generator = values()
    first = next(generator)
    random.seed(123)  # the caller reseeds between steps
    second = next(generator)
    assert [first, second] == expected
    generator.close()
