"""``@deterministic`` on ``async def``: the scope's state follows the coroutine across awaits."""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Coroutine
from typing import Any

import pytest
import torch
from _recipe import Draw, draw, recipe, reseed, stream_after

from seedscope import current_scope, deterministic, isolated


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


@deterministic(7)
async def draws_across_awaits(n: int = 3) -> list[Draw]:
    """Draw n times, yielding to the event loop before each draw."""
    draws = []
    for _ in range(n):
        await asyncio.sleep(0)
        draws.append(draw())
    return draws


async def undecorated_drawer(n: int = 3) -> list[Draw]:
    draws = []
    for _ in range(n):
        draws.append(draw())
        await asyncio.sleep(0)
    return draws


def test_a_decorated_coroutine_function_is_still_a_coroutine_function() -> None:
    assert inspect.iscoroutinefunction(draws_across_awaits)
    assert inspect.iscoroutinefunction(isolated(undecorated_drawer))
    assert draws_across_awaits.__name__ == "draws_across_awaits"
    assert (
        draws_across_awaits.__doc__ == "Draw n times, yielding to the event loop before each draw."
    )
    assert str(inspect.signature(draws_across_awaits)) == "(n: 'int' = 3) -> 'list[Draw]'"


def test_every_call_draws_the_recipe_stream_across_awaits() -> None:
    expected = recipe(7)
    assert run(draws_across_awaits()) == expected
    assert run(draws_across_awaits()) == expected


def test_other_tasks_see_the_state_they_would_see_without_it() -> None:
    async def alone() -> list[Draw]:
        return await undecorated_drawer()

    async def together() -> list[Any]:
        return list(await asyncio.gather(draws_across_awaits(), undecorated_drawer()))

    expected = recipe(7)
    reseed(123)
    other_alone = run(alone())
    reseed(123)
    decorated, other = run(together())
    assert decorated == expected
    assert other == other_alone


def test_two_concurrent_calls_each_draw_the_recipe_stream() -> None:
    async def both() -> list[Any]:
        return list(await asyncio.gather(draws_across_awaits(), draws_across_awaits()))

    expected = recipe(7)
    assert run(both()) == [expected, expected]


def test_the_callers_streams_are_unchanged_after_the_coroutine() -> None:
    assert stream_after(lambda: run(draws_across_awaits())) == stream_after(lambda: None)


def test_the_scope_is_current_inside_the_coroutine_and_not_in_other_tasks() -> None:
    seen: dict[str, Any] = {}

    @deterministic(7)
    async def decorated() -> None:
        await asyncio.sleep(0)
        seen["decorated"] = current_scope()

    async def other() -> None:
        await asyncio.sleep(0)
        seen["other"] = current_scope()

    async def main() -> None:
        await asyncio.gather(decorated(), other())

    run(main())
    assert seen["decorated"] is not None
    assert seen["decorated"].seed == 7
    assert seen["other"] is None


def test_strict_settings_follow_the_coroutine_and_not_the_other_task() -> None:
    seen: dict[str, list[bool]] = {"decorated": [], "other": []}

    @deterministic(seed=7, strict=True)
    async def decorated() -> None:
        for _ in range(3):
            seen["decorated"].append(torch.are_deterministic_algorithms_enabled())
            await asyncio.sleep(0)

    async def other() -> None:
        for _ in range(3):
            seen["other"].append(torch.are_deterministic_algorithms_enabled())
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(decorated(), other())

    run(main())
    assert seen == {"decorated": [True] * 3, "other": [False] * 3}
    assert not torch.are_deterministic_algorithms_enabled()


def test_methods_and_arguments_work_for_async_methods() -> None:
    class Model:
        @deterministic(7)
        async def sample(self, n: int) -> tuple[Model, list[float]]:
            await asyncio.sleep(0)
            return self, [random.random() for _ in range(n)]

    model = Model()
    random.seed(7)
    expected = [random.random() for _ in range(2)]
    assert run(model.sample(2)) == (model, expected)


def test_an_exception_after_an_await_propagates_and_restores_the_caller() -> None:
    @deterministic(7)
    async def fails() -> None:
        draw()
        await asyncio.sleep(0)
        draw()
        raise ValueError("boom")

    def call() -> None:
        with pytest.raises(ValueError, match="boom"):
            run(fails())

    assert stream_after(call) == stream_after(lambda: None)


def test_cancelling_a_suspended_coroutine_restores_the_caller() -> None:
    @deterministic(7)
    async def sleeps_forever() -> None:
        draw()
        await asyncio.Event().wait()

    async def main() -> None:
        task = asyncio.ensure_future(sleeps_forever())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert stream_after(lambda: run(main())) == stream_after(lambda: None)


def test_isolated_coroutines_keep_their_own_stream_across_awaits() -> None:
    # Started from seed 123, the coroutine continues that stream; the other task,
    # also drawing from seed 123's stream, is not shifted by it.
    async def together() -> list[Any]:
        return list(await asyncio.gather(isolated(undecorated_drawer)(), undecorated_drawer()))

    reseed(123)
    expected = [draw() for _ in range(3)]
    reseed(123)
    mine, other = run(together())
    assert mine == other == expected


def test_awaiting_another_decorated_coroutine_nests_its_scope() -> None:
    @deterministic(8)
    async def inner() -> list[Draw]:
        await asyncio.sleep(0)
        return [draw(), draw()]

    @deterministic(7)
    async def outer() -> tuple[Draw, list[Draw], Draw]:
        first = draw()
        middle = await inner()
        return first, middle, draw()

    seven, eight = recipe(7, 2), recipe(8, 2)
    assert run(outer()) == (seven[0], eight, seven[1])
