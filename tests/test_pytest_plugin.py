"""The pytest plugin: marker, option, header, failure lines, fixture, bad input.

Each test writes a small test project with ``pytester`` and runs pytest on it,
mostly in-process. The generated tests draw from ``random`` only, so this
file needs neither numpy nor torch; ``test_pytest_plugin_leaks.py`` and
``test_pytest_plugin_interplay.py`` cover those and the other plugins.
"""

from __future__ import annotations

import json
import random
import re
import shlex
import subprocess
import sys

import pytest
from _plugin_projects import CONFTEST, QUIET, Log, new_project, read_log

from seedscope import derive_seed

# Four tests that log their seed and two draws, one of them failing.
DRAWS = """
import random

import pytest


def test_a(record, seedscope_scope):
    record(seedscope_scope.seed, random.random(), random.random())


@pytest.mark.parametrize("n", [1, 2])
def test_b(record, seedscope_scope, n):
    record(seedscope_scope.seed, random.random(), random.random())


class TestC:
    def test_c(self, record, seedscope_scope):
        record(seedscope_scope.seed, random.random(), random.random())


def test_fails(record, seedscope_scope):
    record(seedscope_scope.seed, random.random(), random.random())
    assert False
"""

NO_HYPOTHESIS = ("-p", "no:hypothesispytest")
USAGE_ERROR = pytest.ExitCode.USAGE_ERROR


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    return new_project(pytester, monkeypatch)


def expected_draws(seed: int, n: int = 2) -> list[float]:
    generator = random.Random(seed)
    return [generator.random() for _ in range(n)]


def assert_seeded_from(log: Log, root: int) -> None:
    assert log
    for nodeid, (seed, *draws) in log.items():
        assert seed == derive_seed(root, nodeid), nodeid
        assert draws == expected_draws(seed, len(draws)), nodeid


# -- the option, the header and per-test seeds ----------------------------------------


def test_option_runs_every_test_in_a_scope_seeded_from_n_and_its_node_id(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_draws=DRAWS)
    result = project.runpytest(*QUIET, "--seedscope-seed=1234")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        ["seedscope: --seedscope-seed=1234 (given): every test runs in a scope*; leak checks: warn"]
    )
    log = read_log(project)
    assert len(log) == 5
    assert_seeded_from(log, 1234)
    assert len({seed for seed, *_ in log.values()}) == 5  # one seed per test


def test_ini_option_sets_the_seed_and_the_command_line_overrides_it(
    project: pytest.Pytester,
) -> None:
    project.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\nseedscope_seed = 77\n"
    )
    project.makepyfile(test_draws=DRAWS)
    project.runpytest(*QUIET).stdout.fnmatch_lines(["seedscope: --seedscope-seed=77 (given)*"])
    assert_seeded_from(read_log(project), 77)
    project.runpytest(*QUIET, "--seedscope-seed=78")
    assert_seeded_from(read_log(project), 78)


def test_without_the_option_unmarked_tests_run_outside_scopes(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_plain="""
        def test_plain(seedscope_scope):
            assert seedscope_scope is None
        """
    )
    result = project.runpytest(*QUIET)
    result.assert_outcomes(passed=1)
    assert "seedscope:" not in result.stdout.str()  # no option given: no header line
    result = project.runpytest(*QUIET, "--seedscope-leaks=rng")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "seedscope: no --seedscope-seed: only tests marked deterministic run in scopes; "
            "leak checks: rng"
        ]
    )


def test_random_picks_n_prints_it_and_last_reuses_it(project: pytest.Pytester) -> None:
    project.makepyfile(test_draws=DRAWS)
    first = project.runpytest("-p", "no:randomly", *NO_HYPOTHESIS, "--seedscope-seed=random")
    header = re.search(
        r"^seedscope: --seedscope-seed=(\d+) \(picked at random\)", first.stdout.str(), re.M
    )
    assert header is not None
    picked = int(header.group(1))
    assert_seeded_from(read_log(project), picked)
    again = project.runpytest("-p", "no:randomly", *NO_HYPOTHESIS, "--seedscope-seed=last")
    again.stdout.fnmatch_lines([f"seedscope: --seedscope-seed={picked} (the last run's)*"])
    assert_seeded_from(read_log(project), picked)
    # An explicit N is remembered too.
    project.runpytest("-p", "no:randomly", *NO_HYPOTHESIS, "--seedscope-seed=5")
    project.runpytest(
        "-p", "no:randomly", *NO_HYPOTHESIS, "--seedscope-seed=last"
    ).stdout.fnmatch_lines(["seedscope: --seedscope-seed=5 (the last run's)*"])


def test_last_without_a_previous_run_picks_a_new_seed(project: pytest.Pytester) -> None:
    project.makepyfile(test_draws=DRAWS)
    result = project.runpytest("-p", "no:randomly", *NO_HYPOTHESIS, "--seedscope-seed=last")
    result.stdout.fnmatch_lines(["seedscope: --seedscope-seed=* (picked at random: no previous*"])


def test_seeds_do_not_depend_on_order_or_selection(project: pytest.Pytester) -> None:
    project.makeconftest(
        CONFTEST
        + """
import os

def pytest_collection_modifyitems(items):
    if os.environ.get("REVERSE_ORDER"):
        items.reverse()
"""
    )
    project.makepyfile(test_draws=DRAWS)
    project.runpytest(*QUIET, "--seedscope-seed=9")
    forward = read_log(project)
    assert_seeded_from(forward, 9)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REVERSE_ORDER", "1")
        reversed_run = project.runpytest(*QUIET, "--seedscope-seed=9", "-v")
    order = re.findall(r"^(test_draws\.py::\S+) ", reversed_run.stdout.str(), re.MULTILINE)
    assert order == list(reversed(list(forward)))  # the order really was reversed
    assert read_log(project) == forward

    project.runpytest(*QUIET, "--seedscope-seed=9", "test_draws.py::TestC::test_c")
    assert read_log(project) == {
        "test_draws.py::TestC::test_c": forward["test_draws.py::TestC::test_c"]
    }

    project.runpytest(*QUIET, "--seedscope-seed=9", "-k", "test_b")
    alone = read_log(project)
    assert set(alone) == {"test_draws.py::test_b[1]", "test_draws.py::test_b[2]"}
    assert all(alone[nodeid] == forward[nodeid] for nodeid in alone)


def test_seeds_follow_the_node_id_not_the_directory_pytest_runs_from(
    project: pytest.Pytester,
) -> None:
    project.mkpydir("sub")
    (project.path / "sub" / "test_deep.py").write_text(DRAWS)
    project.runpytest(*QUIET, "--seedscope-seed=4")
    from_root = read_log(project)
    assert "sub/test_deep.py::test_a" in from_root

    (project.path / "sub" / "conftest.py").write_text("")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project.path / "sub")
        result = project.runpytest(*QUIET, "--seedscope-seed=4", "--rootdir", str(project.path))
    assert read_log(project) == from_root
    # The failure line is relative to where pytest was run, so it can be pasted there.
    result.stdout.fnmatch_lines(
        ["seedscope: reproduce with: pytest test_deep.py::test_fails -p seedscope *"]
    )


# -- the marker ------------------------------------------------------------------------


def test_marker_puts_function_fixtures_call_and_teardown_in_one_scope(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_marked="""
        import random

        import pytest


        @pytest.fixture(scope="module")
        def module_draw():
            return random.random()  # outside the scope: not the scope's first draw


        @pytest.fixture
        def around(record, module_draw):
            record("setup", random.random())
            yield
            record("teardown", random.random())


        @pytest.mark.deterministic
        def test_marked(around, record, seedscope_scope):
            record("call", seedscope_scope.seed, random.random())


        def test_unmarked(record, seedscope_scope):
            record("unmarked", seedscope_scope)
        """
    )
    project.runpytest(*QUIET).assert_outcomes(passed=2)
    lines = [json.loads(line) for line in (project.path / "log.jsonl").read_text().splitlines()]
    marked = [entry[1:] for entry in lines if entry[0] == "test_marked.py::test_marked"]
    (_, setup), (_, seed, call), (_, teardown) = marked
    assert seed == derive_seed(0, "test_marked.py::test_marked")  # N defaults to 0
    assert [setup, call, teardown] == expected_draws(seed, 3)
    assert ["unmarked", None] in [entry[1:] for entry in lines]


def test_marker_on_a_class_or_module_applies_to_each_test_and_explicit_seeds_win(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_module_mark="""
        import random

        import pytest

        pytestmark = pytest.mark.deterministic


        def test_module_level(record, seedscope_scope):
            record(seedscope_scope.seed, random.random())
        """,
        test_class_mark="""
        import random

        import pytest


        @pytest.mark.deterministic
        class TestMarked:
            def test_one(self, record, seedscope_scope):
                record(seedscope_scope.seed, random.random())

            @pytest.mark.deterministic(seed=7)
            def test_own_seed(self, record, seedscope_scope):
                record(seedscope_scope.seed, random.random())


        @pytest.mark.deterministic(7)
        def test_positional_seed(record, seedscope_scope):
            record(seedscope_scope.seed, random.random())
        """,
    )
    for args in ((), ("--seedscope-seed=3",)):
        project.runpytest(*QUIET, *args).assert_outcomes(passed=4)
        root = 3 if args else 0
        log = read_log(project)
        for nodeid in (
            "test_module_mark.py::test_module_level",
            "test_class_mark.py::TestMarked::test_one",
        ):
            seed, draw = log[nodeid]
            assert seed == derive_seed(root, nodeid)
            assert [draw] == expected_draws(seed, 1)
        for nodeid in (
            "test_class_mark.py::TestMarked::test_own_seed",
            "test_class_mark.py::test_positional_seed",
        ):
            assert log[nodeid] == [7, *expected_draws(7, 1)]


def test_marker_strict_runs_the_test_in_a_strict_scope(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_strict="""
        import pytest


        @pytest.mark.deterministic(strict=True)
        def test_strict(seedscope_scope):
            assert seedscope_scope.strict


        @pytest.mark.deterministic
        def test_not_strict(seedscope_scope):
            assert not seedscope_scope.strict
        """
    )
    project.runpytest(*QUIET).assert_outcomes(passed=2)


def test_marked_tests_derive_from_seedscope_seed_env_var_without_the_option(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(
        test_env="""
        import random

        import pytest


        @pytest.mark.deterministic
        def test_marked(record, seedscope_scope):
            record(seedscope_scope.seed, random.random())
        """
    )
    monkeypatch.setenv("SEEDSCOPE_SEED", "21")
    project.runpytest(*QUIET).assert_outcomes(passed=1)
    assert_seeded_from(read_log(project), 21)


def test_the_scope_ends_with_the_test_and_gives_the_callers_state_back(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_state="""
        import random

        import pytest

        import seedscope


        @pytest.mark.deterministic
        def test_marked(seedscope_scope):
            assert seedscope.current_scope() is seedscope_scope
            random.seed(999)  # inside the scope: given back afterwards


        def test_after():
            assert seedscope.current_scope() is None
        """
    )
    state = random.getstate()
    project.runpytest(*QUIET, "-p", "no:randomly").assert_outcomes(passed=2)
    assert random.getstate() == state


def test_a_test_that_leaves_an_inner_scope_active_fails_and_is_cleaned_up(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_left="""
        import pytest

        import seedscope


        @pytest.mark.deterministic
        def test_leaves_a_scope():
            seedscope.deterministic(3).__enter__()


        def test_next():
            assert seedscope.current_scope() is None
        """
    )
    result = project.runpytest(*QUIET, "-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*test_left.py::test_leaves_a_scope left scope(s) deterministic(3) active*"]
    )


def test_a_test_that_leaves_a_relaxed_region_open_gets_the_same_report(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_left="""
        import pytest
        import torch

        import seedscope


        @pytest.mark.deterministic(strict=True)
        def test_leaves_a_region():
            seedscope.relaxed().__enter__()


        def test_next():
            assert seedscope.current_scope() is None
            assert torch.are_deterministic_algorithms_enabled() is False
        """
    )
    result = project.runpytest(*QUIET, "-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*test_left.py::test_leaves_a_region left scope(s) relaxed() active*"]
    )


# -- failure reports -------------------------------------------------------------------


def rerun_command(output: str, nodeid_part: str) -> list[str]:
    for line in output.splitlines():
        match = re.match(r"seedscope: reproduce with: pytest (.*)$", line)
        if match and nodeid_part in line:
            return shlex.split(match.group(1))
    raise AssertionError(f"no reproduce line for {nodeid_part} in:\n{output}")


def test_failure_report_names_the_seed_and_a_rerun_line_that_reproduces_the_draws(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_draws=DRAWS)
    result = project.runpytest("-p", "no:randomly", *NO_HYPOTHESIS, "--seedscope-seed=random")
    result.assert_outcomes(passed=4, failed=1)
    first = read_log(project)
    seed = first["test_draws.py::test_fails"][0]
    result.stdout.fnmatch_lines(
        [
            "*- seedscope -*",
            f"this test ran in a scope with seed {seed} "
            "(derived from --seedscope-seed=* and the node id)",
            "seedscope: reproduce with: pytest test_draws.py::test_fails "
            "-p seedscope --seedscope-seed=*",
        ]
    )
    assert result.stdout.str().count("seedscope: reproduce with:") == 1  # passing tests get none

    command = rerun_command(result.stdout.str(), "test_fails")
    rerun = project.runpytest("-p", "no:randomly", *NO_HYPOTHESIS, *command)
    rerun.assert_outcomes(failed=1)
    assert read_log(project) == {"test_draws.py::test_fails": first["test_draws.py::test_fails"]}


def test_rerun_line_of_a_parametrized_test_is_quoted_for_the_shell(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_param="""
        import random

        import pytest


        @pytest.mark.deterministic
        @pytest.mark.parametrize("text", ["a b", "c"])
        def test_param(record, text):
            record(random.random())
            assert text == "c"
        """
    )
    result = project.runpytest(*QUIET)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "seedscope: reproduce with: pytest 'test_param.py::test_param[a b]' "
            "-p seedscope --seedscope-seed=0"
        ]
    )
    first = read_log(project)["test_param.py::test_param[a b]"]
    project.runpytest(*QUIET, *rerun_command(result.stdout.str(), "a b")).assert_outcomes(failed=1)
    assert read_log(project) == {"test_param.py::test_param[a b]": first}


def test_rerun_line_for_an_explicit_marker_seed_needs_no_option(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_fixed="""
        import pytest


        @pytest.mark.deterministic(11)
        def test_fixed():
            assert False
        """
    )
    result = project.runpytest(*QUIET, "--seedscope-seed=5")
    result.stdout.fnmatch_lines(
        [
            "this test ran in a scope with seed 11 (from @pytest.mark.deterministic)",
            "seedscope: reproduce with: pytest test_fixed.py::test_fixed -p seedscope",
        ]
    )


def test_failures_in_setup_and_teardown_get_the_line_too(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_phases="""
        import pytest


        @pytest.fixture
        def broken_setup():
            raise RuntimeError("setup")


        @pytest.fixture
        def broken_teardown():
            yield
            raise RuntimeError("teardown")


        def test_setup_fails(broken_setup):
            pass


        def test_teardown_fails(broken_teardown):
            pass
        """
    )
    result = project.runpytest(*QUIET, "--seedscope-seed=2")
    result.assert_outcomes(passed=1, errors=2)
    output = result.stdout.str()
    for name in ("test_setup_fails", "test_teardown_fails"):
        assert (
            f"reproduce with: pytest test_phases.py::{name} -p seedscope --seedscope-seed=2"
            in output
        )


def test_a_failing_test_outside_a_scope_gets_no_line(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_plain="""
        def test_plain():
            assert False
        """
    )
    result = project.runpytest(*QUIET)
    result.assert_outcomes(failed=1)
    assert "reproduce with" not in result.stdout.str()


# -- bad input -------------------------------------------------------------------------

SEED_RANGE = "an int in [[]0, 4294967295[]] (0 to 2**32 - 1)"
SEED_TEXT = f"{SEED_RANGE} written with ASCII digits 0-9"

# Neither an int nor ASCII digits alone: words, signs, spaces, other digits, nothing.
BAD_SEEDS = ["abc", "-1", "4294967296", "1.5", "0x10", " 5", "5 ", "+5", "-0", "5_000"]
BAD_SEEDS += ["\u0663", "\uff15", ""]


@pytest.mark.parametrize("value", BAD_SEEDS, ids=repr)
def test_a_seed_option_not_written_in_ascii_digits_alone_is_a_usage_error_and_nothing_runs(
    project: pytest.Pytester, value: str
) -> None:
    project.makepyfile(test_draws=DRAWS)
    result = project.runpytest(*QUIET, f"--seedscope-seed={value}")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: --seedscope-seed must be {SEED_TEXT}, 'random' or 'last', got {value!r}"]
    )
    assert read_log(project) == {}


@pytest.mark.parametrize("value", ["x", "+5", "-0", "5_000"])
def test_an_unparsable_ini_seed_is_a_usage_error_naming_the_ini_option(
    project: pytest.Pytester, value: str
) -> None:
    project.makeini(
        f"[pytest]\nasyncio_default_fixture_loop_scope = function\nseedscope_seed = {value}\n"
    )
    project.makepyfile(test_draws=DRAWS)
    result = project.runpytest(*QUIET)
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: ini option seedscope_seed must be {SEED_TEXT}, 'random' or 'last', got {value!r}"]
    )
    assert read_log(project) == {}


def test_a_seed_option_with_leading_zeros_is_read_as_decimal(project: pytest.Pytester) -> None:
    project.makepyfile(test_draws=DRAWS)
    result = project.runpytest(*QUIET, "--seedscope-seed=0012")
    result.stdout.fnmatch_lines(["seedscope: --seedscope-seed=12 (given)*"])
    assert_seeded_from(read_log(project), 12)


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (
            ("--seedscope-leaks=sometimes",),
            "",
            "ERROR: --seedscope-leaks must be one of off, warn, error, rng, got 'sometimes'",
        ),
        (
            (),
            "seedscope_leaks = loud\n",
            "ERROR: ini option seedscope_leaks must be one of off, warn, error, rng, got 'loud'",
        ),
    ],
)
def test_unknown_leak_mode_is_a_usage_error(
    project: pytest.Pytester, args: tuple[str, ...], ini: str, message: str
) -> None:
    project.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n" + ini)
    project.makepyfile(test_draws=DRAWS)
    result = project.runpytest(*QUIET, *args)
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert read_log(project) == {}


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("deterministic(-1)", f"seed must be {SEED_RANGE}, got -1"),
        ("deterministic(seed=2**32)", f"seed must be {SEED_RANGE}, got 4294967296"),
        ("deterministic('7')", f"seed must be {SEED_RANGE}, not str '7'"),
        ("deterministic(1.5)", f"seed must be {SEED_RANGE}, not float 1.5"),
        ("deterministic(strict='yes')", "strict must be True or False, not 'yes'"),
        ("deterministic(warn_only=True)", "warn_only=True only applies to strict mode*"),
        ("deterministic(sed=1)", "*unexpected keyword argument 'sed'*"),
        ("deterministic(1, 2, 3, 4)", "*positional arguments*"),
    ],
)
def test_bad_marker_arguments_are_a_usage_error_naming_the_test(
    project: pytest.Pytester, marker: str, message: str
) -> None:
    project.makepyfile(
        test_bad=f"""
        import pytest


        def test_fine(record):
            record("ran")


        @pytest.mark.{marker}
        def test_bad(record):
            record("ran")
        """
    )
    result = project.runpytest(*QUIET)
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: @pytest.mark.deterministic on test_bad.py::test_bad: {message}"]
    )
    assert read_log(project) == {}


def test_bad_seedscope_seed_env_var_is_a_usage_error_when_a_marked_test_needs_it(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(
        test_env="""
        import pytest


        def test_unmarked(record):
            record("ran")
        """
    )
    monkeypatch.setenv("SEEDSCOPE_SEED", "nope")
    project.runpytest(*QUIET).assert_outcomes(passed=1)  # not needed: not an error
    project.makepyfile(
        test_env="""
        import pytest


        @pytest.mark.deterministic
        def test_marked(record):
            record("ran")
        """
    )
    read_log(project)
    result = project.runpytest(*QUIET)
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: environment variable SEEDSCOPE_SEED must be {SEED_RANGE}*"]
    )
    assert read_log(project) == {}


def test_last_needs_the_cache(project: pytest.Pytester) -> None:
    result = project.runpytest(*QUIET, "--seedscope-seed=last")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --seedscope-seed=last needs pytest's cache*"])


# -- installed and unused: silent -------------------------------------------------------

# Every kind of outcome, so that each part of the output (header, progress,
# failures, warnings, short summary) is compared.
OUTCOMES = """
import warnings

import pytest


def test_passes():
    pass


def test_fails():
    assert 1 == 2


@pytest.mark.skip(reason="skipped")
def test_skipped():
    pass


@pytest.mark.xfail(reason="expected")
def test_xfails():
    assert False


def test_warns():
    warnings.warn("a warning of the suite's own", UserWarning)
"""


def normalized_output(result: pytest.RunResult) -> list[str]:
    """The output, less what differs between any two runs (durations, plugin versions)."""
    lines = []
    for line in result.stdout.lines:
        if line.startswith("plugins:"):  # lists the installed plugins, seedscope among them
            continue
        lines.append(re.sub(r" in \d+\.\d+s", " in N s", line))
    return lines


def test_installed_and_unused_the_plugin_changes_no_line_of_the_output(
    project: pytest.Pytester,
) -> None:
    # Suites that check pytest's output line by line (pytest-randomly's own
    # tests read header lines by index) see the same output with seedscope
    # installed: no header line, no summary line, nothing.
    project.makepyfile(test_outcomes=OUTCOMES)
    args = ("-p", "no:randomly", "-p", "no:cacheprovider", "-rA")
    without = project.runpytest_subprocess("-p", "no:seedscope", *args)
    installed = project.runpytest_subprocess(*args)
    without.assert_outcomes(passed=2, failed=1, skipped=1, xfailed=1, warnings=1)
    assert normalized_output(installed) == normalized_output(without)
    assert any(line.startswith("plugins:") and "seedscope" in line for line in installed.outlines)
    # Given an option, it says what it does in the header.
    chosen = project.runpytest_subprocess("--seedscope-leaks=warn", *args)
    lines = normalized_output(chosen)
    header = "seedscope: no --seedscope-seed: only tests marked deterministic run in scopes; "
    assert header + "leak checks: warn" in lines
    lines.remove(header + "leak checks: warn")
    assert lines == normalized_output(without)


# -- cost ------------------------------------------------------------------------------

HEAVY = ("numpy", "torch", "hypothesis", "xdist", "pytest_asyncio", "anyio")


def run_python(code: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return done.stdout.strip()


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    loaded = run_python(
        "import sys, seedscope.pytest_plugin; "
        f"print(sorted(m for m in sys.modules if m.partition('.')[0] in {HEAVY!r}))"
    )
    assert loaded == "[]"


def test_a_run_with_the_plugin_alone_imports_nothing_heavy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_light=f"""
        import sys

        import pytest


        @pytest.mark.deterministic
        def test_marked():
            pass


        def test_unmarked():
            pass


        def test_nothing_heavy_was_imported():
            assert sorted(m for m in sys.modules if m.partition(".")[0] in {HEAVY!r}) == []
        """
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        result = pytester.runpytest_subprocess(
            "-p",
            "seedscope",
            "-p",
            "no:cacheprovider",
            "--seedscope-leaks=rng",
            "-p",
            "no:pytester",
        )
    result.assert_outcomes(passed=3)


def test_installed_but_unused_registers_no_per_test_hooks(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_one="def test_one(): pass")
    seen: list[list[str]] = []

    class Probe:
        @pytest.hookimpl(trylast=True)
        def pytest_collection_finish(self, session: pytest.Session) -> None:
            manager = session.config.pluginmanager
            seen.append(
                [name for name, _ in manager.list_name_plugin() if name.startswith("seedscope-")]
            )

    pytester.runpytest(*QUIET, "--seedscope-leaks=off", plugins=[Probe()])
    pytester.runpytest(*QUIET, plugins=[Probe()])
    pytester.runpytest(*QUIET, "--seedscope-seed=1", plugins=[Probe()])
    pytester.runpytest(*QUIET, "--seedscope-leaks=rng", plugins=[Probe()])
    assert seen == [
        ["seedscope-session"],
        ["seedscope-session", "seedscope-runner"],
        ["seedscope-session", "seedscope-collection", "seedscope-runner", "seedscope-reports"],
        ["seedscope-session", "seedscope-collection", "seedscope-runner"],
    ]
