"""``seedscope verify``: several runs of a command, their stdout and files compared.

Each test runs the real command. Needs neither numpy nor torch (tensor files
are in test_cli_verify_tensors.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _cli import EXAMPLES, assert_no_seedscope_traceback, environment, seedscope, write

PY = sys.executable

# Prints a line that differs in run number RUN (counted in a file), else the same.
COUNTED = """
    import os, pathlib, sys
    counter = pathlib.Path("count.txt")
    run = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(run))
    different = str(run) == os.environ.get("DIFFER_IN_RUN")
    print("header")
    print("loss 0.25" if not different else "loss 0.2500001")
    pathlib.Path("out.txt").write_text("a\\nb\\n" if not different else "a\\nB\\n")
    if str(run) == os.environ.get("FAIL_IN_RUN"):
        print("something went wrong", file=sys.stderr)
        sys.exit(4)
"""


def test_agreeing_runs_exit_0_with_progress(tmp_path: Path) -> None:
    write(tmp_path / "counted.py", COUNTED)
    result = seedscope("verify", "--compare", "out.txt", "--", PY, "counted.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "seedscope verify: reproducible: 2 runs" in result.stdout
    assert "  stdout: identical" in result.stdout
    assert "  out.txt: identical" in result.stdout
    assert result.stdout.startswith("header\nloss 0.25\n")  # run 1's output, once
    for run in (1, 2):
        assert f"run {run}/2" in result.stderr
    assert (tmp_path / "count.txt").read_text() == "2"


def test_differing_stdout_and_file_exit_1_naming_the_lines(tmp_path: Path) -> None:
    write(tmp_path / "counted.py", COUNTED)
    result = seedscope(
        "verify", "--runs", "3", "--compare", "out.txt", "--", PY, "counted.py",
        cwd=tmp_path, env=environment(DIFFER_IN_RUN="3"),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "NOT reproducible" in out
    assert "  stdout: line 2 differs:\n    run 1: loss 0.25\n    run 3: loss 0.2500001\n" in out
    assert "  out.txt: line 2 differs:\n    run 1: b\n    run 3: B\n" in out
    assert (tmp_path / "count.txt").read_text() == "3"


def test_seed_reaches_every_run_through_seedscope_seed(tmp_path: Path) -> None:
    write(tmp_path / "seed.py", "import os; print(os.environ['SEEDSCOPE_SEED'])\n")
    result = seedscope("verify", "--seed", "7", "--", PY, "seed.py", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("7\n")
    default = seedscope(
        "verify", "--", PY, "seed.py", cwd=tmp_path, env=environment(SEEDSCOPE_SEED="9")
    )
    assert default.stdout.startswith("9\n")


def test_set_order_example_differs_under_python_and_agrees_under_run(tmp_path: Path) -> None:
    example = str(EXAMPLES / "vocabulary.py")
    plain = seedscope("verify", "--", PY, example, cwd=tmp_path)
    assert plain.returncode == 1, plain.stdout + plain.stderr
    assert "NOT reproducible" in plain.stdout
    assert "run 1: ids of 'the seed fixes the streams of random numbers': [" in plain.stdout
    assert "hint: PYTHONHASHSEED is not set" in plain.stdout
    assert f"seedscope verify -- seedscope run {example}" in plain.stdout

    ours = seedscope("verify", "--", PY, "-m", "seedscope", "run", example, cwd=tmp_path)
    assert ours.returncode == 0, ours.stdout + ours.stderr
    assert "seedscope verify: reproducible: 2 runs" in ours.stdout


def test_a_failing_run_is_named_with_its_exit_code(tmp_path: Path) -> None:
    write(tmp_path / "counted.py", COUNTED)
    result = seedscope(
        "verify", "--", PY, "counted.py", cwd=tmp_path, env=environment(FAIL_IN_RUN="2")
    )
    assert result.returncode == 3
    assert "run 2 of 2 failed" in result.stderr
    assert "exited with code 4" in result.stderr
    assert "| something went wrong" in result.stderr
    assert_no_seedscope_traceback(result)


def test_a_run_killed_by_a_signal_is_reported(tmp_path: Path) -> None:
    if sys.platform == "win32":
        pytest.skip("POSIX signals")
    write(tmp_path / "kill.py", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)\n")
    result = seedscope("verify", "--", PY, "kill.py", cwd=tmp_path)
    assert result.returncode == 3
    assert "run 1 of 2 failed" in result.stderr
    assert "was killed by SIGKILL" in result.stderr


def test_compare_files_that_are_missing_or_not_rewritten(tmp_path: Path) -> None:
    write(tmp_path / "quiet.py", "print('hi')\n")
    missing = seedscope("verify", "--compare", "nothing.txt", "--", PY, "quiet.py", cwd=tmp_path)
    assert missing.returncode == 3
    assert "run 1 did not write nothing.txt: it does not exist after the run" in missing.stderr
    assert_no_seedscope_traceback(missing)

    (tmp_path / "stale.txt").write_text("from before\n")
    stale = seedscope("verify", "--compare", "stale.txt", "--", PY, "quiet.py", cwd=tmp_path)
    assert stale.returncode == 3
    assert "run 1 did not write stale.txt: it is unchanged since before the run" in stale.stderr


def test_binary_files_name_the_first_differing_byte(tmp_path: Path) -> None:
    write(
        tmp_path / "blob.py",
        """
        import os
        with open("blob.bin", "wb") as f:
            f.write(b"\\x00\\x01\\x02" + os.urandom(16))
        """,
    )
    result = seedscope("verify", "--compare", "blob.bin", "--", PY, "blob.py", cwd=tmp_path)
    assert result.returncode == 1
    assert "  blob.bin: bytes differ from offset " in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([PY, "x.py"], "put the command after --, as in: seedscope verify -- "),
        (["--"], "give the command to run after --"),
        ([], "give the command to run after --"),
        (["--runs", "1", "--", PY, "x.py"], "--runs must be at least 2, got 1"),
        (["--runs", "two", "--", PY, "x.py"], "invalid int value: 'two'"),
        (["--seed", "-3", "--", PY, "x.py"], "--seed"),
        (["--bogus", "--", PY, "x.py"], "unrecognized arguments: --bogus"),
        (["--compare", "--", PY, "x.py"], "expected at least one argument"),
        (["--compare", ".", "--", PY, "x.py"], "is a directory, not a file"),
        (["--", "no-such-command-seedscope"], "command not found: no-such-command-seedscope"),
        (["--", "./x.py"], "cannot run ./x.py: permission denied"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(
    tmp_path: Path, args: list[str], message: str
) -> None:
    write(tmp_path / "x.py", "print('ran')\n")  # not executable
    result = seedscope("verify", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "error:" in result.stderr
    assert_no_seedscope_traceback(result)
