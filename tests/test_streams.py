"""The streams a scope produces, and the streams it leaves the caller."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest
import torch
from conftest import Streams

from seedscope import ActiveScope, current_scope, deterministic, isolated


@pytest.mark.parametrize("seed", [0, 1, 42, 2**31, 2**32 - 1])
def test_draws_inside_equal_the_usual_recipe_bit_for_bit(streams: Streams, seed: int) -> None:
    expected = streams.recipe(seed, 3)
    with deterministic(seed):
        drawn = [streams.draw() for _ in range(3)]
    assert drawn == expected


def test_every_kind_of_draw_equals_the_recipe() -> None:
    def draw_everything() -> list[object]:
        return [
            random.random(),
            random.randint(0, 10**9),
            random.gauss(0.0, 1.0),
            np.random.rand(4).tobytes(),
            np.random.randn(3).tobytes(),
            np.random.randint(0, 2**31, size=5).tobytes(),
            torch.rand(7).numpy().tobytes(),
            torch.randn(5).numpy().tobytes(),
            torch.randn(20).numpy().tobytes(),
            torch.randint(0, 1000, (6,)).numpy().tobytes(),
            torch.randperm(10).numpy().tobytes(),
        ]

    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    expected = draw_everything()
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    with deterministic(123):
        drawn = draw_everything()
    assert drawn == expected


def test_gaussian_caches_from_before_the_block_do_not_leak_into_it(streams: Streams) -> None:
    # An odd number of gaussian draws leaves numpy's (and random's) second
    # Box-Muller value cached; the scope must start from a clean cache.
    streams.seed(9)
    for _ in range(3):
        streams.draw_gaussian()
    with deterministic(5):
        inside = [streams.draw_gaussian() for _ in range(3)]
    streams.seed(5)
    expected = [streams.draw_gaussian() for _ in range(3)]
    assert inside == expected


def test_gaussian_cache_of_the_caller_survives_the_block(streams: Streams) -> None:
    streams.seed(9)
    first = streams.draw_gaussian()
    second = streams.draw_gaussian()
    streams.seed(9)
    assert streams.draw_gaussian() == first
    with deterministic(5):
        streams.draw_gaussian()
    assert streams.draw_gaussian() == second


def test_outer_stream_continues_after_block(streams: Streams) -> None:
    expected = streams.recipe(7, 4)
    streams.seed(7)
    before = [streams.draw(), streams.draw()]
    with deterministic(1):
        for _ in range(5):
            streams.draw()
    after = [streams.draw(), streams.draw()]
    assert before + after == expected


def test_isolated_draws_continue_the_callers_stream(streams: Streams) -> None:
    expected = streams.recipe(3, 3)
    streams.seed(3)
    assert streams.draw() == expected[0]
    with isolated():
        inside = [streams.draw(), streams.draw()]
    assert inside == expected[1:]


def test_isolated_does_not_shift_the_callers_stream(streams: Streams) -> None:
    expected = streams.recipe(3, 3)
    streams.seed(3)
    with isolated():
        for _ in range(10):
            streams.draw()
    assert [streams.draw() for _ in range(3)] == expected


def test_isolated_binds_an_entry_without_a_seed() -> None:
    with isolated() as scope:
        assert isinstance(scope, ActiveScope)
        assert scope.seed is None


def test_scope_seed_is_the_seed_given() -> None:
    with deterministic(42) as scope:
        assert scope.seed == 42
        assert current_scope() is scope
    assert current_scope() is None


def test_a_scope_gives_the_same_stream_every_time_it_is_entered(streams: Streams) -> None:
    scope = deterministic(11)
    with scope:
        first = [streams.draw() for _ in range(3)]
    streams.draw()
    with scope:
        second = [streams.draw() for _ in range(3)]
    assert first == second


def test_async_with_seeds_and_restores(streams: Streams) -> None:
    expected = streams.recipe(8, 2)

    async def main() -> tuple[int | None, list[tuple[float, float, float]]]:
        async with deterministic(8) as scope:
            first = streams.draw()
            await asyncio.sleep(0)
            return scope.seed, [first, streams.draw()]

    streams.seed(2)
    outer_expected = streams.recipe(2, 1)
    seed, drawn = asyncio.run(main())
    assert seed == 8
    assert drawn == expected
    assert streams.draw() == outer_expected[0]


def test_async_isolated_restores_the_callers_stream(streams: Streams) -> None:
    async def main() -> None:
        async with isolated():
            streams.draw()

    expected = streams.recipe(4, 1)
    streams.seed(4)
    asyncio.run(main())
    assert streams.draw() == expected[0]
