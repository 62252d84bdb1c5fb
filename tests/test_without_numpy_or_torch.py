"""The core with the standard library alone: what the minimal install must do.

This module needs neither numpy nor torch, so it runs in both environments
(``nox -s tests_minimal`` collects only it). It puts ``random`` and the
environment back itself instead of relying on the full environment's fixtures.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections.abc import Iterator

import pytest

from seedscope import current_scope, deterministic, isolated


@pytest.fixture(autouse=True)
def _restore_random_and_environment() -> Iterator[None]:
    state = random.getstate()
    hash_seed = os.environ.get("PYTHONHASHSEED")
    yield
    random.setstate(state)
    if hash_seed is None:
        os.environ.pop("PYTHONHASHSEED", None)
    else:
        os.environ["PYTHONHASHSEED"] = hash_seed


def recipe(seed: int, draws: int) -> list[float]:
    saved = random.getstate()
    random.seed(seed)
    values = [random.random() for _ in range(draws)]
    random.setstate(saved)
    return values


def test_importing_seedscope_needs_neither_numpy_nor_torch() -> None:
    code = "import sys, seedscope; print(sorted({'numpy', 'torch'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_random_inside_a_scope_draws_the_recipe_stream() -> None:
    with deterministic(21):
        got = [random.random() for _ in range(3)]
    assert got == recipe(21, 3)


def test_outer_random_stream_continues_after_the_block() -> None:
    random.seed(5)
    expected = [random.random() for _ in range(2)]
    random.seed(5)
    first = random.random()
    with deterministic(1):
        random.random()
    assert [first, random.random()] == expected


def test_hash_seed_variable_is_set_inside_and_unset_again_after() -> None:
    os.environ.pop("PYTHONHASHSEED", None)
    with deterministic(77):
        inside = os.environ.get("PYTHONHASHSEED")
    assert (inside, os.environ.get("PYTHONHASHSEED")) == ("77", None)


def test_strict_mode_works_without_torch_loaded_or_installed() -> None:
    with deterministic(3, strict=True) as scope:
        assert scope.strict
        assert random.random() == recipe(3, 1)[0]


def test_isolated_draws_from_the_callers_stream_without_shifting_it() -> None:
    random.seed(2)
    expected = random.random()
    random.seed(2)
    with isolated():
        inside = random.random()
    assert [inside, random.random()] == [expected, expected]


def test_bad_seed_is_refused_before_anything_changes() -> None:
    state = random.getstate()
    with pytest.raises(ValueError, match=r"4294967296.*|.*\[0, 4294967295\]"):
        deterministic(2**32)
    assert random.getstate() == state


def test_nested_scopes_unwind_in_order() -> None:
    outer = deterministic(1)
    with outer:
        with deterministic(2):
            assert current_scope() is not None
            assert current_scope().seed == 2  # type: ignore[union-attr]
        assert random.random() == recipe(1, 1)[0]
    assert current_scope() is None


def test_decorated_function_draws_the_same_on_every_call() -> None:
    @deterministic(8)
    def draw() -> float:
        return random.random()

    assert draw() == draw() == recipe(8, 1)[0]


def test_decorated_generator_keeps_its_stream_while_the_consumer_draws() -> None:
    @deterministic(9)
    def numbers() -> Iterator[float]:
        for _ in range(3):
            yield random.random()

    random.seed(100)
    consumer_expected = [random.random() for _ in range(3)]
    random.seed(100)
    got, consumer = [], []
    for value in numbers():
        got.append(value)
        consumer.append(random.random())
    assert got == recipe(9, 3)
    assert consumer == consumer_expected


def test_decorated_coroutine_keeps_its_stream_across_awaits() -> None:
    @deterministic(10)
    async def numbers() -> list[float]:
        values = []
        for _ in range(3):
            values.append(random.random())
            await asyncio.sleep(0)
        return values

    async def noise() -> None:
        for _ in range(5):
            random.random()
            await asyncio.sleep(0)

    async def main() -> list[float]:
        values, _ = await asyncio.gather(numbers(), noise())
        return values

    assert asyncio.run(main()) == recipe(10, 3)
