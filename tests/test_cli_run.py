"""``seedscope run``: a program started with a fixed hash seed, otherwise as plain python runs it.

Every test runs real interpreters. Needs neither numpy nor torch.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _cli import (
    SEEDSCOPE,
    assert_no_seedscope_traceback,
    environment,
    python,
    run,
    seedscope,
    write,
)

REPORT = """
    import json, os, random, sys
    import seedscope
    scope = seedscope.current_scope()
    print(json.dumps({
        "argv": sys.argv,
        "name": __name__,
        "file": __file__,
        "main_is_this": sys.modules["__main__"].__dict__ is globals(),
        "path0": sys.path[0],
        "scope_seed": None if scope is None else scope.seed,
        "strict": None if scope is None else scope.strict,
        "random": random.random(),
        "env": {k: os.environ.get(k) for k in
                ("PYTHONHASHSEED", "SEEDSCOPE_SEED", "CUBLAS_WORKSPACE_CONFIG")},
    }))
    if len(sys.argv) > 2 and sys.argv[1] == "exit":
        sys.exit(int(sys.argv[2]))
"""

# The usual in-process recipe: setting PYTHONHASHSEED here is too late for this
# interpreter. 300 strings: two start-ups with different hash seeds order them
# the same way with negligible probability.
SET_ORDER = """
    import json, os, random
    os.environ["PYTHONHASHSEED"] = "0"
    random.seed(0)
    words = {f"word-{i}" for i in range(300)}
    print(json.dumps(list(words)))
"""


def report(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.stdout, result.stderr
    parsed: dict[str, object] = json.loads(result.stdout.splitlines()[0])
    return parsed


def test_script_sees_argv_main_and_path_as_under_python(tmp_path: Path) -> None:
    script = write(tmp_path / "app" / "report.py", REPORT)
    ours = report(seedscope("run", "app/report.py", "a", "--b", "-m", cwd=tmp_path))
    plain = report(python("app/report.py", "a", "--b", "-m", cwd=tmp_path))
    for key in ("argv", "name", "file", "main_is_this", "path0"):
        assert ours[key] == plain[key], key
    assert ours["argv"] == ["app/report.py", "a", "--b", "-m"]
    assert ours["file"] == str(script)
    assert ours["path0"] == str(script.parent)


def test_program_runs_inside_deterministic_seed(tmp_path: Path) -> None:
    write(tmp_path / "report.py", REPORT)
    ours = report(seedscope("run", "--seed", "7", "report.py", cwd=tmp_path))
    import random

    assert ours["scope_seed"] == 7
    assert ours["strict"] is False
    assert ours["random"] == random.Random(7).random()
    assert ours["env"] == {
        "PYTHONHASHSEED": "7",
        "SEEDSCOPE_SEED": "7",
        "CUBLAS_WORKSPACE_CONFIG": None,
    }


def test_seed_defaults_to_seedscope_seed_then_zero(tmp_path: Path) -> None:
    write(tmp_path / "report.py", REPORT)
    from_env = seedscope("run", "report.py", cwd=tmp_path, env=environment(SEEDSCOPE_SEED="12"))
    assert report(from_env)["scope_seed"] == 12
    assert report(seedscope("run", "report.py", cwd=tmp_path))["scope_seed"] == 0


def test_strict_sets_cublas_config_before_the_program_starts(tmp_path: Path) -> None:
    write(tmp_path / "report.py", REPORT)
    ours = report(seedscope("run", "--strict", "--warn-only", "report.py", cwd=tmp_path))
    assert ours["strict"] is True
    assert ours["env"]["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"  # type: ignore[index]


def test_exit_code_and_system_exit_pass_through(tmp_path: Path) -> None:
    write(tmp_path / "report.py", REPORT)
    assert seedscope("run", "report.py", "exit", "7", cwd=tmp_path).returncode == 7
    write(tmp_path / "message.py", "raise SystemExit('bye')\n")
    result = seedscope("run", "message.py", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (1, "bye\n")


def test_module_runs_as_python_dash_m_does(tmp_path: Path) -> None:
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "tool.py", REPORT)
    write(tmp_path / "pkg" / "__main__.py", REPORT)
    for target in ("pkg.tool", "pkg"):
        ours = report(seedscope("run", "--seed", "3", "-m", target, "x", "-y", cwd=tmp_path))
        plain = report(python("-m", target, "x", "-y", cwd=tmp_path))
        for key in ("argv", "name", "file", "main_is_this", "path0"):
            assert ours[key] == plain[key], (target, key)
        assert ours["scope_seed"] == 3
    joined = report(seedscope("run", "-mpkg.tool", cwd=tmp_path))
    assert joined["argv"] == [str(tmp_path / "pkg" / "tool.py")]


def test_directory_with_main_runs_like_python(tmp_path: Path) -> None:
    write(tmp_path / "app" / "__main__.py", REPORT)
    ours = report(seedscope("run", "app", "1", cwd=tmp_path))
    plain = report(python("app", "1", cwd=tmp_path))
    assert ours["argv"] == plain["argv"] == ["app", "1"]
    assert ours["path0"] == plain["path0"]


def test_set_order_of_strings_is_reproducible_under_run_only(tmp_path: Path) -> None:
    write(tmp_path / "order.py", SET_ORDER)
    plain = [python("order.py", cwd=tmp_path).stdout for _ in range(2)]
    assert plain[0]
    assert plain[0] != plain[1]
    ours = [seedscope("run", "--seed", "5", "order.py", cwd=tmp_path).stdout for _ in range(2)]
    assert ours[0]
    assert ours[0] == ours[1]
    # The order is that of an interpreter started with PYTHONHASHSEED=5.
    fixed = python("order.py", cwd=tmp_path, env=environment(PYTHONHASHSEED="5")).stdout
    assert ours[0] == fixed


def test_a_process_with_the_right_hash_seed_runs_the_program_itself(tmp_path: Path) -> None:
    write(tmp_path / "order.py", SET_ORDER)
    write(tmp_path / "report.py", REPORT)
    env = environment(PYTHONHASHSEED="5")
    in_process = seedscope("run", "--seed", "5", "order.py", cwd=tmp_path, env=env)
    execed = seedscope("run", "--seed", "5", "order.py", cwd=tmp_path)
    assert in_process.stdout == execed.stdout
    ours = report(seedscope("run", "--seed", "5", "report.py", "a", cwd=tmp_path, env=env))
    assert ours["argv"] == ["report.py", "a"]
    assert ours["path0"] == str(tmp_path)
    assert ours["main_is_this"] is True


def test_uncaught_exception_traceback_is_pythons(tmp_path: Path) -> None:
    write(
        tmp_path / "fail.py",
        """
        def inner():
            raise ValueError("boom")
        inner()
        """,
    )
    ours = seedscope("run", "fail.py", cwd=tmp_path)
    plain = python("fail.py", cwd=tmp_path)
    assert ours.returncode == plain.returncode == 1
    assert ours.stderr == plain.stderr
    assert ours.stderr.startswith("Traceback (most recent call last):\n  File ")


def test_syntax_error_is_reported_as_python_does(tmp_path: Path) -> None:
    write(tmp_path / "broken.py", "x = (\n")
    ours = seedscope("run", "broken.py", cwd=tmp_path)
    plain = python("broken.py", cwd=tmp_path)
    assert ours.returncode == plain.returncode == 1
    assert ours.stderr == plain.stderr


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signals_reach_the_program_as_under_python(tmp_path: Path, signum: int) -> None:
    write(
        tmp_path / "wait.py",
        """
        import os, time
        print(os.getpid(), flush=True)
        time.sleep(60)
        """,
    )
    outcomes = []
    for command in ([*SEEDSCOPE, "run", "wait.py"], [sys.executable, "wait.py"]):
        with subprocess.Popen(
            command,
            cwd=tmp_path,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            assert process.stdout is not None
            pid = int(process.stdout.readline())
            process.send_signal(signum)
            _, stderr = process.communicate(timeout=30)
        assert pid == process.pid  # the program replaced the launcher: signals go straight to it
        outcomes.append((process.returncode, stderr))
    (ours, our_stderr), (plain, plain_stderr) = outcomes
    assert ours == plain == -signum
    if signum == signal.SIGINT:
        # Where the interrupt lands (print or sleep) is a race; the shape is not.
        for stderr in (our_stderr, plain_stderr):
            assert stderr.startswith('Traceback (most recent call last):\n  File "'), stderr
            assert stderr.endswith("KeyboardInterrupt\n")
        assert str(tmp_path / "wait.py") in our_stderr.splitlines()[1]
    else:
        assert our_stderr == plain_stderr == ""


def test_interpreter_options_carry_over(tmp_path: Path) -> None:
    write(tmp_path / "flags.py", "import sys; print(sys.flags.dev_mode, sys.warnoptions)\n")
    result = run(
        sys.executable, "-X", "dev", "-W", "error::UserWarning", "-m", "seedscope", "run",
        "flags.py", cwd=tmp_path,
    )  # fmt: skip
    assert result.stdout.startswith("True"), result.stderr
    assert "error::UserWarning" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.py"], "can't open file 'missing.py'"),
        (["-m", "no_such_module_here"], "no module named 'no_such_module_here'"),
        (["-m", "no_such_package.sub"], "no module named 'no_such_package'"),
        (["-m", "emptypkg"], "'emptypkg' is a package and cannot be directly executed"),
        (["-m"], "expected a module name"),
        ([], "give a script to run"),
        (["--bogus", "x.py"], "unrecognized arguments: --bogus"),
        (["--seed", "-1", "x.py"], "--seed"),
        (["--seed", "abc", "x.py"], "--seed must be an int"),
        (["--seed", str(2**32), "x.py"], "--seed must be an int in [0, 4294967295]"),
        (["--warn-only", "x.py"], "--warn-only only applies to strict mode"),
        (["emptydir"], "can't find '__main__' module in 'emptydir'"),
    ],
)
def test_bad_input_is_a_clear_message_and_exit_code_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    write(tmp_path / "x.py", "print('ran')\n")
    write(tmp_path / "emptypkg" / "__init__.py", "")
    (tmp_path / "emptydir").mkdir()
    result = seedscope("run", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "seedscope run: error:" in result.stderr
    assert result.stdout == ""
    assert_no_seedscope_traceback(result)


def test_invalid_seedscope_seed_is_a_usage_error(tmp_path: Path) -> None:
    write(tmp_path / "x.py", "print('ran')\n")
    result = seedscope("run", "x.py", cwd=tmp_path, env=environment(SEEDSCOPE_SEED="many"))
    assert result.returncode == 2
    assert "SEEDSCOPE_SEED" in result.stderr
    assert_no_seedscope_traceback(result)


# Strings int() takes (or, empty, refuses) that are not a seed written with ASCII digits.
NOT_ASCII_DIGITS = [" 5", "5 ", "+5", "-0", "5_000", "\u0663", "\uff15", ""]
SEED_TEXT = "an int in [0, 4294967295] (0 to 2**32 - 1) written with ASCII digits 0-9"


@pytest.mark.parametrize("value", NOT_ASCII_DIGITS, ids=repr)
def test_a_seed_option_not_written_in_ascii_digits_alone_is_a_usage_error(
    tmp_path: Path, value: str
) -> None:
    write(tmp_path / "x.py", "print('ran')\n")
    result = seedscope("run", "--seed", value, "x.py", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"seedscope run: error: --seed must be {SEED_TEXT}, got {value!r}\n" in result.stderr
    assert result.stdout == ""
    assert_no_seedscope_traceback(result)


@pytest.mark.parametrize("value", NOT_ASCII_DIGITS, ids=repr)
def test_a_seedscope_seed_not_written_in_ascii_digits_alone_is_a_usage_error(
    tmp_path: Path, value: str
) -> None:
    write(tmp_path / "x.py", "print('ran')\n")
    result = seedscope("run", "x.py", cwd=tmp_path, env=environment(SEEDSCOPE_SEED=value))
    assert result.returncode == 2, result.stderr
    assert (
        f"seedscope run: error: environment variable SEEDSCOPE_SEED must be {SEED_TEXT}, "
        f"got {value!r}\n"
    ) in result.stderr
    assert result.stdout == ""
    assert_no_seedscope_traceback(result)


@pytest.mark.parametrize("how", ["--seed", "SEEDSCOPE_SEED"])
def test_a_seed_with_leading_zeros_is_read_as_decimal_and_passed_on_without_them(
    tmp_path: Path, how: str
) -> None:
    write(tmp_path / "report.py", REPORT)
    if how == "--seed":
        result = seedscope("run", "--seed", "0010", "report.py", cwd=tmp_path)
    else:
        env = environment(SEEDSCOPE_SEED="0010")
        result = seedscope("run", "report.py", cwd=tmp_path, env=env)
    ours = report(result)
    assert ours["scope_seed"] == 10
    assert ours["env"]["PYTHONHASHSEED"] == ours["env"]["SEEDSCOPE_SEED"] == "10"  # type: ignore[index]


def test_an_import_error_inside_the_package_is_the_programs_own(tmp_path: Path) -> None:
    write(tmp_path / "pkg" / "__init__.py", "import no_such_dependency\n")
    write(tmp_path / "pkg" / "tool.py", "")
    ours = seedscope("run", "-m", "pkg.tool", cwd=tmp_path)
    assert ours.returncode == 1
    assert "ModuleNotFoundError: No module named 'no_such_dependency'" in ours.stderr
    assert 'pkg/__init__.py", line 1' in ours.stderr


def test_console_script_and_python_dash_m(tmp_path: Path) -> None:
    scripts = importlib.metadata.entry_points(group="console_scripts")
    assert [entry.value for entry in scripts if entry.name == "seedscope"] == ["seedscope.cli:main"]
    write(tmp_path / "report.py", REPORT)
    console = Path(sys.executable).with_name("seedscope")
    if console.exists():  # installed into this environment
        result = run(console, "run", "report.py", "z", cwd=tmp_path)
        assert report(result)["argv"] == ["report.py", "z"]
        assert_no_seedscope_traceback(result)
    help_text = seedscope("--help", cwd=tmp_path)
    assert help_text.returncode == 0
    assert all(command in help_text.stdout for command in ("run", "verify", "doctor"))
    version = seedscope("--version", cwd=tmp_path)
    assert version.returncode == 0
    assert version.stdout.startswith("seedscope ")
    for args in ([], ["frobnicate"], ["--frobnicate"]):
        result = seedscope(*args, cwd=tmp_path)
        assert result.returncode == 2, args
        assert_no_seedscope_traceback(result)
