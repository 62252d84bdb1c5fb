"""``@deterministic`` on pytest test functions and methods, run through ``pytester``."""

from __future__ import annotations

import numpy.random  # noqa: F401
import pytest
import torch  # noqa: F401

import seedscope  # noqa: F401

# numpy.random, torch and seedscope are imported here, before any in-process
# pytester run: those runs drop the modules they import from sys.modules, and
# numpy cannot be imported twice (nor seeded by seedscope once numpy.random is
# missing from sys.modules).

# Shared by every generated test module: draws, the recipe, and an autouse
# fixture that seeds the caller's streams before each test and, after it,
# checks that the test gave them back untouched.
PRELUDE = """
import random

import numpy as np
import pytest
import torch

from seedscope import deterministic, isolated


def draw():
    return random.random(), float(np.random.random()), torch.rand(1).item()


def recipe(seed, n=2):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return [draw() for _ in range(n)]


SEVEN = recipe(7)
ZERO = recipe(0)
FROM_123 = recipe(123)


@pytest.fixture(autouse=True)
def callers_stream_is_given_back():
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    yield
    assert [draw(), draw()] == FROM_123, "the test shifted the caller's streams"


@pytest.fixture
def offset():
    return 10
"""


def run_module(pytester: pytest.Pytester, body: str) -> pytest.RunResult:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_generated=PRELUDE + body)
    # pytest-randomly, where installed, reseeds the streams between test phases;
    # hypothesis's plugin would import (and assertion-rewrite) hypothesis every run.
    return pytester.runpytest(
        "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:hypothesispytest"
    )


def test_decorated_test_functions_with_fixtures_and_parametrize_draw_the_recipe(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEEDSCOPE_SEED", raising=False)
    result = run_module(
        pytester,
        """
@deterministic(7)
def test_with_a_fixture(offset):
    assert offset == 10
    assert [draw(), draw()] == SEVEN


@pytest.mark.parametrize("n", [1, 2])
@deterministic(7)
def test_parametrized_above_the_decorator(n, offset):
    assert offset == 10
    assert [draw() for _ in range(n)] == SEVEN[:n]


@deterministic(seed=7, strict=True)
@pytest.mark.parametrize("n", [1, 2])
def test_parametrized_below_the_decorator(n):
    assert torch.are_deterministic_algorithms_enabled()
    assert [draw() for _ in range(n)] == SEVEN[:n]


@deterministic
def test_bare_decorator_seeds_from_zero():
    assert [draw(), draw()] == ZERO


@isolated
def test_isolated_draws_from_the_callers_stream():
    assert [draw(), draw()] == FROM_123


def test_undecorated_tests_are_left_alone():
    assert not torch.are_deterministic_algorithms_enabled()
""",
    )
    result.assert_outcomes(passed=8)


def test_methods_of_pytest_test_classes_draw_the_recipe(pytester: pytest.Pytester) -> None:
    result = run_module(
        pytester,
        """
class TestModel:
    @deterministic(7)
    def test_method_with_a_fixture(self, offset):
        assert isinstance(self, TestModel)
        assert offset == 10
        assert [draw(), draw()] == SEVEN

    @pytest.mark.parametrize("n", [1, 2])
    @deterministic(7)
    def test_parametrized_method(self, n):
        assert [draw() for _ in range(n)] == SEVEN[:n]

    @deterministic(7)
    @staticmethod
    def test_staticmethod(offset):
        assert [draw(), draw()] == SEVEN

""",
    )
    result.assert_outcomes(passed=4)


def test_async_tests_run_by_pytest_asyncio_draw_the_recipe(pytester: pytest.Pytester) -> None:
    result = run_module(
        pytester,
        """
import asyncio


@pytest.mark.asyncio
@deterministic(7)
async def test_across_awaits(offset):
    first = draw()
    await asyncio.sleep(0)
    assert [first, draw()] == SEVEN
""",
    )
    result.assert_outcomes(passed=1)


def test_assertions_inside_decorated_tests_really_run(pytester: pytest.Pytester) -> None:
    result = run_module(
        pytester,
        """
@deterministic(7)
def test_expects_the_wrong_seed():
    assert [draw(), draw()] == recipe(8)


@deterministic(8)
def test_draws_with_another_seed():
    assert [draw(), draw()] != SEVEN
""",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*FAILED*test_expects_the_wrong_seed*"])


def test_a_test_that_shifts_the_callers_streams_is_caught(pytester: pytest.Pytester) -> None:
    # The control for the fixture that every generated module uses.
    result = run_module(
        pytester,
        """
def test_undecorated_draws():
    draw()
""",
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*the test shifted the caller's streams*"])
