"""Decorated generators and async generators: each step runs in the generator's own state."""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import AsyncGenerator, Generator
from typing import Any

import pytest
from _recipe import Draw, draw, nothing, recipe, reseed, stream_after

from seedscope import deterministic, isolated


class Rewind(Exception):
    """Thrown into generators."""


@deterministic(7)
def sampler(n: int = 3) -> Generator[Draw, Any, str]:
    """Yield n draws."""
    for _ in range(n):
        yield draw()
    return "done"


@deterministic(7)
async def async_sampler(n: int = 3) -> AsyncGenerator[Draw, Any]:
    """Yield n draws, yielding to the event loop before each."""
    for _ in range(n):
        await asyncio.sleep(0)
        yield draw()


# -- generators ----------------------------------------------------------------


def test_a_decorated_generator_function_is_still_a_generator_function() -> None:
    assert inspect.isgeneratorfunction(sampler)
    assert sampler.__name__ == "sampler"
    assert sampler.__doc__ == "Yield n draws."
    assert str(inspect.signature(sampler)) == "(n: 'int' = 3) -> 'Generator[Draw, Any, str]'"


def test_every_generator_yields_the_recipe_stream() -> None:
    expected = recipe(7)
    assert list(sampler()) == expected
    assert list(sampler()) == expected


def test_the_consumer_draws_between_steps_neither_see_nor_disturb_it() -> None:
    expected = recipe(7)
    consumer_alone = recipe(123)
    reseed(123)
    yielded, consumed = [], []
    for value in sampler():
        yielded.append(value)
        consumed.append(draw())
    assert yielded == expected
    assert consumed == consumer_alone


def test_two_interleaved_instances_each_yield_the_recipe_stream() -> None:
    expected = recipe(7)
    first, second = sampler(), sampler()
    pairs = [(next(first), next(second)) for _ in range(3)]
    assert [a for a, _ in pairs] == expected
    assert [b for _, b in pairs] == expected


def test_the_return_value_reaches_yield_from() -> None:
    def delegate() -> Generator[Any, Any, None]:
        returned = yield from sampler(2)
        yield returned

    assert list(delegate()) == [*recipe(7, 2), "done"]


def test_send_delivers_values_and_keeps_the_stream() -> None:
    @deterministic(7)
    def accumulator() -> Generator[tuple[Any, Draw], Any, None]:
        received = None
        while True:
            received = yield received, draw()

    expected = recipe(7)
    generator = accumulator()
    assert next(generator) == (None, expected[0])
    draw()
    assert generator.send("a") == ("a", expected[1])
    assert generator.send("b") == ("b", expected[2])


def test_throw_is_delivered_inside_the_generators_state() -> None:
    @deterministic(7)
    def recovering() -> Generator[tuple[str, Draw], Any, None]:
        while True:
            try:
                yield "drew", draw()
            except Rewind:
                yield "caught", draw()

    expected = recipe(7)
    generator = recovering()
    assert next(generator) == ("drew", expected[0])
    draw()
    assert generator.throw(Rewind()) == ("caught", expected[1])
    assert next(generator) == ("drew", expected[2])


def test_an_uncaught_throw_propagates_and_restores_the_caller() -> None:
    def action() -> None:
        generator = sampler()
        next(generator)
        with pytest.raises(Rewind):
            generator.throw(Rewind())

    assert stream_after(action) == stream_after(nothing)


def test_closing_early_restores_the_caller() -> None:
    def take_one_then_close() -> None:
        generator = sampler()
        next(generator)
        generator.close()

    assert stream_after(take_one_then_close) == stream_after(nothing)


def test_cleanup_on_close_runs_in_the_generators_state() -> None:
    cleanup: list[Draw] = []

    @deterministic(7)
    def with_cleanup() -> Generator[Draw, None, None]:
        try:
            yield draw()
        finally:
            cleanup.append(draw())

    expected = recipe(7, 2)

    def take_one_then_close() -> None:
        generator = with_cleanup()
        assert next(generator) == expected[0]
        generator.close()

    assert stream_after(take_one_then_close) == stream_after(nothing)
    assert cleanup == [expected[1]]


def test_an_exception_inside_a_step_propagates_and_restores_the_caller() -> None:
    @deterministic(7)
    def fails() -> Generator[Draw, None, None]:
        yield draw()
        draw()
        raise ValueError("boom")

    def action() -> None:
        with pytest.raises(ValueError, match="boom"):
            list(fails())

    assert stream_after(action) == stream_after(nothing)


def test_an_unstarted_generator_touches_nothing() -> None:
    def create_and_drop() -> None:
        generator = sampler()
        generator.close()

    assert stream_after(create_and_drop) == stream_after(nothing)


def test_generator_methods_bind_self() -> None:
    class Dataset:
        @deterministic(7)
        def batches(self, n: int) -> Generator[tuple[Dataset, float], None, None]:
            for _ in range(n):
                yield self, random.random()

    dataset = Dataset()
    random.seed(7)
    expected = [(dataset, random.random()) for _ in range(2)]
    assert list(dataset.batches(2)) == expected


def test_isolated_generators_continue_their_own_stream_between_steps() -> None:
    @isolated
    def drawer() -> Generator[Draw, None, None]:
        for _ in range(3):
            yield draw()

    from_123 = recipe(123)
    reseed(123)
    yielded, consumed = [], []
    for value in drawer():
        yielded.append(value)
        consumed.append(draw())
    assert yielded == consumed == from_123


# -- async generators ------------------------------------------------------------


def collect(agen: AsyncGenerator[Draw, Any], consumer_draws: bool = False) -> list[Any]:
    async def main() -> list[Any]:
        values = []
        async for value in agen:
            values.append((value, draw()) if consumer_draws else value)
        return values

    return asyncio.run(main())


def test_a_decorated_async_generator_function_is_still_one() -> None:
    assert inspect.isasyncgenfunction(async_sampler)
    assert async_sampler.__name__ == "async_sampler"
    assert async_sampler.__doc__ == "Yield n draws, yielding to the event loop before each."


def test_every_async_generator_yields_the_recipe_stream() -> None:
    expected = recipe(7)
    assert collect(async_sampler()) == expected
    assert collect(async_sampler()) == expected


def test_the_async_consumer_draws_between_steps_neither_see_nor_disturb_it() -> None:
    expected = recipe(7)
    consumer_alone = recipe(123)
    reseed(123)
    pairs = collect(async_sampler(), consumer_draws=True)
    assert [value for value, _ in pairs] == expected
    assert [consumed for _, consumed in pairs] == consumer_alone


def test_other_tasks_draw_undisturbed_while_the_async_generator_awaits() -> None:
    async def other() -> list[Draw]:
        draws = []
        for _ in range(3):
            draws.append(draw())
            await asyncio.sleep(0)
        return draws

    async def consume() -> list[Draw]:
        return [value async for value in async_sampler()]

    async def together() -> list[Any]:
        return list(await asyncio.gather(consume(), other()))

    expected = recipe(7)
    reseed(123)
    other_alone = asyncio.run(other())
    reseed(123)
    assert asyncio.run(together()) == [expected, other_alone]


def test_two_interleaved_async_generators_each_yield_the_recipe_stream() -> None:
    async def main() -> list[tuple[Draw, Draw]]:
        first, second = async_sampler(), async_sampler()
        return [(await anext(first), await anext(second)) for _ in range(3)]

    expected = recipe(7)
    pairs = asyncio.run(main())
    assert [a for a, _ in pairs] == expected
    assert [b for _, b in pairs] == expected


def test_asend_and_athrow_work_in_the_generators_state() -> None:
    @deterministic(7)
    async def accumulator() -> AsyncGenerator[tuple[Any, Draw], Any]:
        received = None
        while True:
            try:
                await asyncio.sleep(0)
                received = yield received, draw()
            except Rewind:
                received = "rewound"

    async def main() -> list[Any]:
        agen = accumulator()
        steps = [await agen.asend(None)]
        draw()
        steps.append(await agen.asend("a"))
        steps.append(await agen.athrow(Rewind()))
        await agen.aclose()
        return steps

    expected = recipe(7)
    assert asyncio.run(main()) == [
        (None, expected[0]),
        ("a", expected[1]),
        ("rewound", expected[2]),
    ]


def test_an_uncaught_athrow_propagates_and_restores_the_caller() -> None:
    async def main() -> None:
        agen = async_sampler()
        await anext(agen)
        with pytest.raises(Rewind):
            await agen.athrow(Rewind())

    assert stream_after(lambda: asyncio.run(main())) == stream_after(nothing)


def test_closing_an_async_generator_early_restores_the_caller() -> None:
    cleanup: list[Draw] = []

    @deterministic(7)
    async def with_cleanup() -> AsyncGenerator[Draw, None]:
        try:
            yield draw()
            yield draw()
        finally:
            await asyncio.sleep(0)
            cleanup.append(draw())

    expected = recipe(7, 2)

    async def take_one_then_close() -> None:
        agen = with_cleanup()
        assert await anext(agen) == expected[0]
        await agen.aclose()

    assert stream_after(lambda: asyncio.run(take_one_then_close())) == stream_after(nothing)
    assert cleanup == [expected[1]]


def test_breaking_out_of_async_for_restores_the_caller() -> None:
    async def take_one() -> None:
        agen = async_sampler()
        async for _ in agen:
            break
        await agen.aclose()

    assert stream_after(lambda: asyncio.run(take_one())) == stream_after(nothing)
