"""The pytest plugin at collection: test modules imported in seeded scopes, and watched.

With ``--seedscope-seed=N`` each test module (and class) is collected in a
scope seeded with ``derive_seed(N, its node id)``: what it draws at import
(module constants, class attributes, parametrize lists) depends on N and the
module alone. The generated suites draw from ``random``, numpy and torch at
import and log what they drew; the runs that must agree across processes run
in fresh interpreters. What the in-process runs draw from this process's
generators, the suite's autouse fixture puts back after each test.
"""

from __future__ import annotations

import random
import re
import shlex

import pytest
from _plugin_projects import CONFTEST, QUIET, new_project, read_log

from seedscope import derive_seed

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")

# Draws at import from each global generator, in a class body and in a
# parametrize list (so the node ids themselves depend on the draws).
DRAWS_AT_IMPORT = """
import random

import numpy as np
import pytest
import torch

X = random.random()
Y = float(np.random.rand())
Z = torch.rand(1).item()


@pytest.mark.parametrize("v", [round(random.random(), 6) for _ in range(2)])
def test_param(v, record):
    record(X, Y, Z, v)


class TestBody:
    W = random.random()

    def test_body(self, record):
        record(self.W)


def test_fails(record):
    record(X, Y, Z)
    assert X < 0
"""

# Another module that draws at import: collected first, it would shift the
# streams of the modules after it if collection were not scoped per module.
OTHER = """
import random

A = [random.random() for _ in range(5)]


def test_other(record):
    record(A)
"""

OUTSIDE = (*QUIET, "-W", "always::seedscope.SeedscopeWarning")


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    return new_project(pytester, monkeypatch)


def module_values(seed: int) -> tuple[float, float, float]:
    """X, Y and Z of DRAWS_AT_IMPORT collected in a scope seeded with ``seed``."""
    return (
        random.Random(seed).random(),
        float(np.random.RandomState(seed).rand()),
        torch.rand(1, generator=torch.Generator().manual_seed(seed)).item(),
    )


def test_module_level_draws_depend_on_n_and_the_module_alone_and_reproduce_in_a_new_process(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_a_other=OTHER, test_draws=DRAWS_AT_IMPORT)
    suite = project.runpytest_subprocess(*QUIET, "--seedscope-seed=5")
    suite.assert_outcomes(passed=4, failed=1)
    whole = read_log(project)

    # What each module drew is what a scope seeded from N and its node id gives,
    # class bodies and parametrize lists included (both run at import).
    seed = derive_seed(5, "test_draws.py")
    x, y, z = module_values(seed)
    stream = random.Random(seed)
    assert stream.random() == x
    params = [f"test_draws.py::test_param[{round(stream.random(), 6)}]" for _ in range(2)]
    w = stream.random()
    other = random.Random(derive_seed(5, "test_a_other.py"))
    assert whole == {
        "test_a_other.py::test_other": [[other.random() for _ in range(5)]],
        **{nodeid: [x, y, z, float(nodeid.partition("[")[2][:-1])] for nodeid in params},
        "test_draws.py::TestBody::test_body": [w],
        "test_draws.py::test_fails": [x, y, z],
    }

    # The failure's reproduce line, run in a new process, collects its module
    # alone, and the module draws the same values.
    match = re.search(r"^seedscope: reproduce with: pytest (.*)$", suite.stdout.str(), re.M)
    assert match is not None
    command = shlex.split(match.group(1))
    assert command == ["test_draws.py::test_fails", "-p", "seedscope", "--seedscope-seed=5"]
    project.runpytest_subprocess(*QUIET, *command).assert_outcomes(failed=1)
    assert read_log(project) == {"test_draws.py::test_fails": [x, y, z]}

    # Selected by parametrized node id, or with the modules in another order.
    selected = project.runpytest_subprocess(*QUIET, "--seedscope-seed=5", *reversed(params))
    selected.assert_outcomes(passed=2)
    assert read_log(project) == {nodeid: whole[nodeid] for nodeid in params}
    reordered = project.runpytest_subprocess(
        *QUIET, "--seedscope-seed=5", "test_draws.py", "test_a_other.py"
    )
    reordered.assert_outcomes(passed=4, failed=1)
    assert read_log(project) == whole

    # Another N, other values.
    project.runpytest_subprocess(*QUIET, "--seedscope-seed=6", "test_draws.py::test_fails")
    with_6 = list(module_values(derive_seed(6, "test_draws.py")))
    assert read_log(project) == {"test_draws.py::test_fails": with_6}


def test_global_state_is_restored_after_collection(project: pytest.Pytester) -> None:
    project.makeconftest(
        CONFTEST
        + """
import random

import numpy as np
import torch

STATES = {}


def states():
    return [random.getstate(), repr(np.random.get_state()), torch.get_rng_state().tolist()]


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session):
    STATES["before"] = states()


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    with LOG.open("a") as f:
        f.write(json.dumps(["restored", STATES["before"] == states()]) + "\\n")
"""
    )
    project.makepyfile(test_a_other=OTHER, test_draws=DRAWS_AT_IMPORT)
    project.runpytest(*QUIET, "--seedscope-seed=5", "--co")
    assert read_log(project) == {"restored": [True]}
    project.runpytest(*QUIET, "--co")  # without N, modules draw from the global streams
    assert read_log(project) == {"restored": [False]}


def test_pytest_randomly_does_not_change_what_modules_draw(project: pytest.Pytester) -> None:
    pytest.importorskip("pytest_randomly")
    project.makepyfile(test_a_other=OTHER, test_draws=DRAWS_AT_IMPORT)
    plain = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--seedscope-seed=5")
    logs = []
    for randomly in (
        "-p no:randomly",
        "-p randomly --randomly-seed=1",
        "-p randomly --randomly-seed=2",
    ):
        project.runpytest(*randomly.split(), *plain)
        logs.append(read_log(project))
    assert logs[0] == logs[1] == logs[2]


def test_xdist_workers_collect_the_same_parametrizations(project: pytest.Pytester) -> None:
    # Without a seed, each worker would build its own random parametrize list and
    # xdist would refuse the run ("Different tests were collected").
    pytest.importorskip("xdist")
    project.makepyfile(test_draws=DRAWS_AT_IMPORT)
    result = project.runpytest_subprocess(*QUIET, "-n", "2", "--seedscope-seed=5")
    result.assert_outcomes(passed=3, failed=1)
    spread = read_log(project)
    project.runpytest(*QUIET, "--seedscope-seed=5").assert_outcomes(passed=3, failed=1)
    assert read_log(project) == spread
    assert len(spread) == 4
    unseeded = project.runpytest_subprocess(*QUIET, "-n", "2")
    assert unseeded.ret != 0
    unseeded.stdout.fnmatch_lines(["*Different tests were collected between gw*"])


# -- rng: modules that draw at collection are named --------------------------------------

QUIET_MODULE = """
def test_quiet():
    pass
"""

GENERATES = """
import random


def pytest_generate_tests(metafunc):
    if "n" in metafunc.fixturenames:
        metafunc.parametrize("n", [random.randrange(10)])


def test_generated(n):
    pass


class TestGenerated:
    def test_method(self, n):
        pass
"""


def collection_warnings(reprec: pytest.HookRecorder) -> list[str]:
    from seedscope.pytest_plugin import LeakWarning

    return [
        str(call.warning_message.message)
        for call in reprec.getcalls("pytest_warning_recorded")
        if issubclass(call.warning_message.category, LeakWarning) and call.when == "collect"
    ]


def test_rng_mode_names_each_module_that_draws_while_being_collected(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_draws=DRAWS_AT_IMPORT, test_quiet=QUIET_MODULE, test_generates=GENERATES
    )
    reprec = project.inline_run(*OUTSIDE, "--seedscope-leaks=rng", "--co")
    messages = collection_warnings(reprec)
    assert len(messages) == 3, messages
    draws, generates, in_class = sorted(messages)
    # Class bodies and parametrize lists run at import: they count for the module.
    assert draws.startswith(
        "seedscope: test_draws.py changed global random state while being collected: "
        "random, numpy.random, torch ("
    )
    # pytest_generate_tests runs when the module, and each class, is collected.
    assert generates.startswith(
        "seedscope: test_generates.py changed global random state while being collected: random ("
    )
    assert in_class.startswith(
        "seedscope: test_generates.py::TestGenerated changed global random state while being "
        "collected: random ("
    )


def test_rng_mode_with_n_names_modules_that_draw_in_their_scope_and_the_seed(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_other=OTHER, test_quiet=QUIET_MODULE)
    reprec = project.inline_run(*OUTSIDE, "--seedscope-leaks=rng", "--seedscope-seed=5", "--co")
    seed = derive_seed(5, "test_other.py")
    assert collection_warnings(reprec) == [
        "seedscope: test_other.py drew from global random state while being collected: random "
        f"(in its collection scope, seed {seed} derived from --seedscope-seed=5 and its node "
        "id, and put back afterwards: what it drew depends on N)"
    ]


def test_a_collection_leak_made_an_error_is_a_collection_error(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_other=OTHER, test_quiet=QUIET_MODULE)
    result = project.runpytest(
        *QUIET, "--seedscope-leaks=rng", "-W", "error::seedscope.SeedscopeWarning"
    )
    # A collection error like any other (pytest stops before running tests), not a crash.
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["ERROR test_other.py - seedscope: test_other.py changed global random state*"]
    )
    assert "INTERNALERROR" not in result.stdout.str()


def test_without_rng_mode_or_n_collection_is_not_watched(project: pytest.Pytester) -> None:
    project.makepyfile(test_other=OTHER)
    reprec = project.inline_run(*OUTSIDE)
    reprec.assertoutcome(passed=1)
    assert collection_warnings(reprec) == []
