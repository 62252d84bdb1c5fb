"""The pytest plugin with unittest, async tests, Hypothesis, pytest-xdist and pytest-randomly."""

from __future__ import annotations

import importlib.util
import json
import random
import re
import zlib

import pytest

from seedscope import derive_seed

np = pytest.importorskip("numpy")
pytest.importorskip("numpy.random")
pytest.importorskip("hypothesis")

# Imported before any in-process run (such a run drops the modules it imported).
HAS_RANDOMLY = importlib.util.find_spec("pytest_randomly") is not None
if HAS_RANDOMLY:
    import pytest_randomly  # noqa: F401

CONFTEST = """
import json
import os
import pathlib

import pytest

LOG = pathlib.Path(__file__).with_name("log.jsonl")


def log(nodeid, *values):
    with LOG.open("a") as f:
        f.write(json.dumps([nodeid, *values]) + "\\n")


@pytest.fixture
def record(request):
    def write(*values):
        log(request.node.nodeid, *values)

    return write
"""

QUIET = ("-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:hypothesispytest")


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("SEEDSCOPE_SEED", raising=False)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(CONFTEST)
    return pytester


def read_log(pytester: pytest.Pytester) -> list[list[object]]:
    path = pytester.path / "log.jsonl"
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    path.unlink()
    return entries


def draws(seed: int, n: int) -> list[float]:
    generator = random.Random(seed)
    return [generator.random() for _ in range(n)]


# -- unittest and async tests -----------------------------------------------------------


def test_unittest_setup_test_and_teardown_run_in_the_tests_scope(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_cases="""
        import random
        import unittest

        import pytest

        from conftest import log


        class TestPlain(unittest.TestCase):
            def setUp(self):
                log(self.id(), "setUp", random.random())

            def test_it(self):
                log(self.id(), "test", random.random())

            def tearDown(self):
                log(self.id(), "tearDown", random.random())


        @pytest.mark.deterministic(5)
        class TestMarked(unittest.TestCase):
            def setUp(self):
                log(self.id(), "setUp", random.random())

            def test_it(self):
                log(self.id(), "test", random.random())

            def tearDown(self):
                log(self.id(), "tearDown", random.random())
        """
    )
    project.runpytest(*QUIET, "--seedscope-seed=8").assert_outcomes(passed=2)
    by_test: dict[str, list[object]] = {}
    for test_id, phase, value in read_log(project):
        by_test.setdefault(str(test_id).rpartition(".")[0], []).append((phase, value))
    plain_seed = derive_seed(8, "test_cases.py::TestPlain::test_it")
    for name, seed in (("TestPlain", plain_seed), ("TestMarked", 5)):
        phases = by_test[f"test_cases.{name}"]
        assert [phase for phase, _ in phases] == ["setUp", "test", "tearDown"]
        assert [value for _, value in phases] == draws(seed, 3), name


ASYNC_TESTS = """
import random

import pytest
import pytest_asyncio


@pytest_asyncio.fixture
async def async_fixture(record):
    record("fixture", random.random())
    yield
    record("teardown", random.random())


@pytest.mark.asyncio
async def test_asyncio(async_fixture, record, seedscope_scope):
    record("call", seedscope_scope.seed, random.random())


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_anyio(record, seedscope_scope):
    record("call", seedscope_scope.seed, random.random(), random.random())
"""


def test_async_tests_of_pytest_asyncio_and_anyio_run_in_their_scopes(
    project: pytest.Pytester,
) -> None:
    pytest.importorskip("pytest_asyncio")
    pytest.importorskip("anyio")
    project.makepyfile(test_async=ASYNC_TESTS)
    project.runpytest(*QUIET, "--seedscope-seed=6").assert_outcomes(passed=2)
    log = read_log(project)
    asyncio_entries = [entry[1:] for entry in log if entry[0] == "test_async.py::test_asyncio"]
    seed = derive_seed(6, "test_async.py::test_asyncio")
    (_, fixture), (_, logged_seed, call), (_, teardown) = asyncio_entries
    assert logged_seed == seed
    assert [fixture, call, teardown] == draws(seed, 3)
    ((_, anyio_seed, *anyio_draws),) = [e[1:] for e in log if e[0] == "test_async.py::test_anyio"]
    assert anyio_seed == derive_seed(6, "test_async.py::test_anyio")
    assert anyio_draws == draws(anyio_seed, 2)


# -- Hypothesis --------------------------------------------------------------------------

HYPOTHESIS_TESTS = """
import random

from hypothesis import given, seed, settings, strategies as st

from conftest import log


@settings(max_examples=25)
@given(st.integers(), st.text(max_size=5))
def test_examples(n, text):
    log("test_examples", n, text, random.random())


@seed(1)
@settings(max_examples=25)
@given(st.integers())
def test_own_seed(n):
    log("test_own_seed", n)
"""


def run_hypothesis(project: pytest.Pytester, *args: str) -> dict[str, list[object]]:
    # In a fresh interpreter outside CI: with CI set, Hypothesis loads its "ci"
    # profile (derandomize=True), which a scope leaves alone by design.
    result = project.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=2)
    found: dict[str, list[object]] = {}
    for name, *values in read_log(project):
        found.setdefault(str(name), []).append(values)
    return found


def test_hypothesis_tests_in_scopes_are_reproducible(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    project.makepyfile(test_props=HYPOTHESIS_TESTS)
    first = run_hypothesis(project, "--seedscope-seed=3")
    assert len(first["test_examples"]) == 25
    assert run_hypothesis(project, "--seedscope-seed=3") == first
    other = run_hypothesis(project, "--seedscope-seed=4")
    assert other["test_examples"] != first["test_examples"]
    # A test's own @seed wins over the scope's.
    assert other["test_own_seed"] == first["test_own_seed"]
    # Without a scope, Hypothesis picks a fresh seed for each run.
    unscoped = [run_hypothesis(project)["test_examples"] for _ in range(2)]
    assert unscoped[0] != unscoped[1]


# -- pytest-xdist ------------------------------------------------------------------------

XDIST_TESTS = """
import os
import random

import pytest


@pytest.mark.parametrize("i", range(8))
def test_many(i, record, seedscope_scope):
    record(os.environ.get("PYTEST_XDIST_WORKER", "main"), seedscope_scope.seed, random.random())


class TestGroup:
    @pytest.mark.parametrize("i", range(4))
    def test_method(self, i, record, seedscope_scope):
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        record(worker, seedscope_scope.seed, random.random())
"""


def test_xdist_workers_derive_the_same_seeds_as_one_process(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    project.makepyfile(test_spread=XDIST_TESTS)
    distributed = project.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:hypothesispytest", "-n", "2", "--seedscope-seed=random"
    )
    distributed.assert_outcomes(passed=12)
    header = re.search(
        r"^seedscope: --seedscope-seed=(\d+) \(picked at random\)", distributed.stdout.str(), re.M
    )
    assert header is not None, distributed.stdout.str()
    root = int(header.group(1))
    spread = {entry[0]: entry[1:] for entry in read_log(project)}
    assert {worker for worker, *_ in spread.values()} == {"gw0", "gw1"}

    project.runpytest(*QUIET, f"--seedscope-seed={root}").assert_outcomes(passed=12)
    single = {entry[0]: entry[1:] for entry in read_log(project)}
    assert {nodeid: values[1:] for nodeid, values in spread.items()} == {
        nodeid: values[1:] for nodeid, values in single.items()
    }
    for nodeid, (_, seed, draw) in single.items():
        assert seed == derive_seed(root, nodeid)
        assert [draw] == draws(seed, 1)


def test_a_bad_marker_under_xdist_stops_the_run_with_its_message(
    project: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist")
    project.makepyfile(
        test_bad="""
        import pytest


        @pytest.mark.deterministic(-1)
        def test_bad(record):
            record("ran")
        """
    )
    result = project.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:hypothesispytest", "-n", "2"
    )
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.deterministic on test_bad.py::test_bad: seed must be an int in*got -1"]
    )
    assert read_log(project) == []


# -- pytest-randomly --------------------------------------------------------------------

RANDOMLY_TESTS = """
import random

import numpy as np
import pytest


@pytest.fixture
def drawing_fixture(record):
    record("setup", random.random())
    yield
    record("teardown", random.random())


@pytest.mark.deterministic
def test_scoped(drawing_fixture, record, seedscope_scope):
    record("call", seedscope_scope.seed, random.random(), float(np.random.random()))


def test_unscoped(record):
    record("call", random.random())


@pytest.mark.deterministic(12)
def test_scoped_without_fixtures(record):
    record("call", random.random())
"""


@pytest.mark.skipif(not HAS_RANDOMLY, reason="pytest-randomly is not installed")
def test_with_pytest_randomly_scoped_tests_see_the_scopes_seed(project: pytest.Pytester) -> None:
    project.makepyfile(test_randomly=RANDOMLY_TESTS)
    result = project.runpytest(
        "-p",
        "randomly",
        "--randomly-seed=123",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:hypothesispytest",
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["Using --randomly-seed=123"])
    log: dict[str, list[list[object]]] = {}
    for nodeid, *values in read_log(project):
        log.setdefault(str(nodeid), []).append(values)

    seed = derive_seed(0, "test_randomly.py::test_scoped")
    (_, setup), (_, logged_seed, call, numpy_draw), (_, teardown) = log[
        "test_randomly.py::test_scoped"
    ]
    assert logged_seed == seed
    assert [setup, call, teardown] == draws(seed, 3)
    assert numpy_draw == np.random.RandomState(seed).random_sample()
    assert log["test_randomly.py::test_scoped_without_fixtures"] == [["call", *draws(12, 1)]]

    # pytest-randomly still reseeds the tests outside scopes, before their call.
    crc = zlib.crc32(b"test_randomly.py::test_unscoped")
    assert log["test_randomly.py::test_unscoped"] == [["call", *draws(123 + crc, 1)]]


@pytest.mark.skipif(not HAS_RANDOMLY, reason="pytest-randomly is not installed")
def test_rng_leak_checks_leave_what_pytest_randomly_reseeds_alone(
    project: pytest.Pytester,
) -> None:
    torch = pytest.importorskip("torch")
    project.makepyfile(
        test_rng="""
        import random

        import torch


        def test_seeds_random():
            random.seed(1)


        def test_seeds_torch():
            torch.manual_seed(1)
        """
    )
    state = random.getstate(), torch.get_rng_state()
    try:
        reprec = project.inline_run(
            "-p",
            "randomly",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
            "--seedscope-leaks=rng",
            "-W",
            "always::seedscope.SeedscopeWarning",
        )
    finally:
        random.setstate(state[0])
        torch.set_rng_state(state[1])
    reprec.assertoutcome(passed=2)
    warned = [
        call.nodeid
        for call in reprec.getcalls("pytest_warning_recorded")
        if "left global random state changed" in str(call.warning_message.message)
    ]
    assert warned == ["test_rng.py::test_seeds_torch"]
