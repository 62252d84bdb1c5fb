"""``@deterministic`` on ``unittest.TestCase`` classes: every test runs in its own scope.

The TestCase classes are made inside functions so that pytest does not collect them.
"""

from __future__ import annotations

import asyncio
import unittest
from typing import Any

import pytest
import torch
from _recipe import draw, nothing, recipe, reseed, stream_after

from seedscope import current_scope, deterministic, isolated

Log = list[tuple[str, str, Any]]


def run_tests(case: type[unittest.TestCase], *names: str) -> unittest.TestResult:
    """Run the named tests of ``case`` in the given order."""
    result = unittest.TestResult()
    unittest.TestSuite([case(name) for name in names]).run(result)
    return result


def by_test(log: Log) -> dict[str, list[tuple[str, Any]]]:
    grouped: dict[str, list[tuple[str, Any]]] = {}
    for test, phase, value in log:
        grouped.setdefault(test, []).append((phase, value))
    return grouped


def make_case(decorate: Any, log: Log) -> type[unittest.TestCase]:
    @decorate
    class DrawingCase(unittest.TestCase):
        def setUp(self) -> None:
            log.append((self._testMethodName, "setUp", draw()))
            self.addCleanup(lambda: log.append((self._testMethodName, "cleanup", draw())))

        def test_a(self) -> None:
            log.append(("test_a", "test", draw()))

        def test_b(self) -> None:
            log.append(("test_b", "test", draw()))
            log.append(("test_b", "test", draw()))

        def tearDown(self) -> None:
            log.append((self._testMethodName, "tearDown", draw()))

    return DrawingCase


def test_decorating_returns_the_class_itself() -> None:
    class Case(unittest.TestCase):
        def test_nothing(self) -> None:
            pass

    assert deterministic(7)(Case) is Case
    assert Case.run.__name__ == "run"
    assert Case.debug.__name__ == "debug"


def test_setup_test_teardown_and_cleanups_draw_the_recipe_stream() -> None:
    log: Log = []
    case = make_case(deterministic(7), log)
    seven = recipe(7, 5)
    reseed(99)
    assert run_tests(case, "test_a", "test_b").wasSuccessful()
    assert by_test(log) == {
        "test_a": [
            ("setUp", seven[0]),
            ("test", seven[1]),
            ("tearDown", seven[2]),
            ("cleanup", seven[3]),
        ],
        "test_b": [
            ("setUp", seven[0]),
            ("test", seven[1]),
            ("test", seven[2]),
            ("tearDown", seven[3]),
            ("cleanup", seven[4]),
        ],
    }


@pytest.mark.parametrize(
    "decorate",
    [deterministic, deterministic(7), deterministic(seed=7, strict=True), isolated, isolated()],
)
def test_results_do_not_depend_on_test_order(
    decorate: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEEDSCOPE_SEED", raising=False)
    forwards: Log = []
    backwards: Log = []
    reseed(99)
    assert run_tests(make_case(decorate, forwards), "test_a", "test_b").wasSuccessful()
    reseed(99)
    assert run_tests(make_case(decorate, backwards), "test_b", "test_a").wasSuccessful()
    assert by_test(forwards) == by_test(backwards)


def test_undecorated_results_do_depend_on_test_order() -> None:
    # The control for the test above: without the decorator the order shows.
    forwards: Log = []
    backwards: Log = []
    reseed(99)
    run_tests(make_case(lambda cls: cls, forwards), "test_a", "test_b")
    reseed(99)
    run_tests(make_case(lambda cls: cls, backwards), "test_b", "test_a")
    assert by_test(forwards) != by_test(backwards)


def test_bare_deterministic_seeds_each_test_from_SEEDSCOPE_SEED(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEEDSCOPE_SEED", "11")
    log: Log = []
    assert run_tests(make_case(deterministic, log), "test_a").wasSuccessful()
    assert log[0] == ("test_a", "setUp", recipe(11)[0])


def make_troubled_case(log: Log) -> type[unittest.TestCase]:
    @deterministic(7)
    class TroubledCase(unittest.TestCase):
        def setUp(self) -> None:
            log.append((self._testMethodName, "setUp", draw()))
            if self._testMethodName == "test_setup_raises":
                raise RuntimeError("setUp failed")
            if self._testMethodName == "test_skipped_in_setup":
                self.skipTest("not today")

        def test_setup_raises(self) -> None:
            pass

        def test_skipped_in_setup(self) -> None:
            pass

        @unittest.skip("never")
        def test_skipped(self) -> None:
            pass

        def test_fails(self) -> None:
            draw()
            self.fail("fails")

        def test_raises(self) -> None:
            draw()
            raise ValueError("raises")

        @unittest.expectedFailure
        def test_expected_failure(self) -> None:
            draw()
            raise AssertionError

        def test_passes(self) -> None:
            draw()

    return TroubledCase


def test_streams_are_restored_however_each_test_ends() -> None:
    log: Log = []
    case = make_troubled_case(log)
    names = [name for name in unittest.defaultTestLoader.getTestCaseNames(case)]
    results: list[unittest.TestResult] = []

    def run() -> None:
        results.append(run_tests(case, *names))

    assert stream_after(run) == stream_after(nothing)
    (result,) = results
    assert result.testsRun == 7
    assert len(result.errors) == 2
    assert len(result.failures) == 1
    assert len(result.skipped) == 2
    assert len(result.expectedFailures) == 1
    first = recipe(7, 1)[0]
    assert {value for _, phase, value in log if phase == "setUp"} == {first}


def test_debug_runs_in_the_scope_too() -> None:
    log: Log = []
    case = make_case(deterministic(7), log)

    def debug() -> None:
        case("test_a").debug()

    assert stream_after(debug) == stream_after(nothing)
    assert [value for _, _, value in log] == recipe(7, 4)


def test_debug_restores_the_streams_when_the_test_fails() -> None:
    @deterministic(7)
    class Case(unittest.TestCase):
        def test_fails(self) -> None:
            draw()
            self.fail("fails")

    def debug() -> None:
        with pytest.raises(AssertionError, match="fails"):
            Case("test_fails").debug()

    assert stream_after(debug) == stream_after(nothing)


def test_subclasses_inherit_the_scope() -> None:
    log: Log = []
    base = make_case(deterministic(7), log)

    class Child(base):  # type: ignore[valid-type,misc]
        def test_c(self) -> None:
            log.append(("test_c", "test", draw()))

    reseed(99)
    assert run_tests(Child, "test_c").wasSuccessful()
    assert [value for _, _, value in log] == recipe(7, 4)


def test_strict_test_cases_see_deterministic_algorithms_only_inside() -> None:
    seen: list[bool] = []

    @deterministic(seed=7, strict=True)
    class Case(unittest.TestCase):
        def test_flag(self) -> None:
            seen.append(torch.are_deterministic_algorithms_enabled())

    assert run_tests(Case, "test_flag").wasSuccessful()
    assert seen == [True]
    assert not torch.are_deterministic_algorithms_enabled()


# -- IsolatedAsyncioTestCase -----------------------------------------------------


def make_async_case(log: Log) -> type[unittest.IsolatedAsyncioTestCase]:
    @deterministic(7)
    class AsyncCase(unittest.IsolatedAsyncioTestCase):
        async def asyncSetUp(self) -> None:
            log.append((self._testMethodName, "asyncSetUp", draw()))

        async def test_a(self) -> None:
            await asyncio.sleep(0)
            log.append(("test_a", "test", draw()))

        async def test_b(self) -> None:
            log.append(("test_b", "test", draw()))
            await asyncio.sleep(0)
            log.append(("test_b", "test", draw()))

        async def test_draws_then_fails(self) -> None:
            draw()
            self.fail("fails")

        async def asyncTearDown(self) -> None:
            await asyncio.sleep(0)
            log.append((self._testMethodName, "asyncTearDown", draw()))

    return AsyncCase


def test_async_test_cases_draw_the_recipe_stream_in_any_order() -> None:
    forwards: Log = []
    backwards: Log = []
    reseed(99)
    assert run_tests(make_async_case(forwards), "test_a", "test_b").wasSuccessful()
    reseed(99)
    assert run_tests(make_async_case(backwards), "test_b", "test_a").wasSuccessful()
    seven = recipe(7, 4)
    assert by_test(forwards) == by_test(backwards)
    assert by_test(forwards) == {
        "test_a": [("asyncSetUp", seven[0]), ("test", seven[1]), ("asyncTearDown", seven[2])],
        "test_b": [
            ("asyncSetUp", seven[0]),
            ("test", seven[1]),
            ("test", seven[2]),
            ("asyncTearDown", seven[3]),
        ],
    }


def test_async_test_cases_restore_the_streams_even_when_a_test_fails() -> None:
    log: Log = []
    case = make_async_case(log)
    results: list[unittest.TestResult] = []

    def run() -> None:
        results.append(run_tests(case, "test_draws_then_fails", "test_a"))

    assert stream_after(run) == stream_after(nothing)
    assert len(results[0].failures) == 1


def test_async_tests_see_their_scope_as_the_current_one() -> None:
    seen: list[Any] = []

    @deterministic(7)
    class AsyncCase(unittest.IsolatedAsyncioTestCase):
        def setUp(self) -> None:
            seen.append(current_scope())

        async def asyncSetUp(self) -> None:
            seen.append(current_scope())

        async def test_scope(self) -> None:
            seen.append(current_scope())

    assert run_tests(AsyncCase, "test_scope").wasSuccessful()
    assert [scope is not None and scope.seed for scope in seen] == [7, 7, 7]
    assert current_scope() is None
