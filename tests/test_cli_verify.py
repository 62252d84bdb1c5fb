"""``seedscope verify``: several runs of a command, their stdout and files compared.

Each test runs the real command, but for those of the comparison of big files,
which call its parts. Needs neither numpy nor torch (tensor files are in
test_cli_verify_tensors.py).
"""

from __future__ import annotations

import io
import random
import sys
from pathlib import Path

import pytest
from _cli import (
    EXAMPLES,
    assert_no_seedscope_traceback,
    compare_in_fresh_process,
    environment,
    seedscope,
    write,
)
from _verify_runs import verify_versions

from seedscope._verify import _CHUNK, _first_difference, _text_difference

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


@pytest.mark.parametrize("value", [" 5", "+5", "-0", "5_000", "\u0663", "\uff15", ""], ids=repr)
def test_a_seed_option_not_written_in_ascii_digits_alone_is_a_usage_error(
    tmp_path: Path, value: str
) -> None:
    write(tmp_path / "x.py", "print('ran')\n")
    result = seedscope("verify", "--seed", value, "--", PY, "x.py", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert (
        "seedscope verify: error: --seed must be an int in [0, 4294967295] (0 to 2**32 - 1) "
        f"written with ASCII digits 0-9, got {value!r}\n"
    ) in result.stderr
    assert result.stdout == ""
    assert_no_seedscope_traceback(result)


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


# -- big files: compared a chunk at a time -------------------------------------------------

SMALL_CHUNK = 16
DATA = bytes(range(7, 57))  # 50 bytes: three chunks of 16 and two bytes more


def changed(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1 :]


@pytest.mark.parametrize("locate", ["numpy", "memcmp bisection"])
@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        pytest.param(DATA, DATA, None, id="equal"),
        pytest.param(b"", b"", None, id="both empty"),
        pytest.param(DATA, changed(DATA, 0), 0, id="first byte"),
        pytest.param(DATA, changed(DATA, SMALL_CHUNK - 1), SMALL_CHUNK - 1, id="end of a chunk"),
        pytest.param(DATA, changed(DATA, SMALL_CHUNK), SMALL_CHUNK, id="start of a chunk"),
        pytest.param(DATA, changed(DATA, SMALL_CHUNK + 1), SMALL_CHUNK + 1, id="after a boundary"),
        pytest.param(DATA, changed(DATA, 2 * SMALL_CHUNK), 2 * SMALL_CHUNK, id="third chunk"),
        pytest.param(DATA, changed(DATA, len(DATA) - 1), len(DATA) - 1, id="last byte"),
        pytest.param(DATA, changed(changed(DATA, 40), 20), 20, id="two differences"),
        pytest.param(DATA, DATA[:SMALL_CHUNK], SMALL_CHUNK, id="prefix of one chunk"),
        pytest.param(DATA[: 2 * SMALL_CHUNK], DATA, 2 * SMALL_CHUNK, id="prefix of two chunks"),
        pytest.param(DATA, DATA[:-1], len(DATA) - 1, id="one byte shorter"),
        pytest.param(DATA, DATA + b"\0", len(DATA), id="one byte longer"),
        pytest.param(b"", DATA, 0, id="empty"),
        pytest.param(bytes(300), bytes(299) + b"\1", 299, id="past the bisection's 64 bytes"),
    ],
)
def test_chunked_compare_finds_the_first_differing_byte_at_chunk_boundaries(
    monkeypatch: pytest.MonkeyPatch, locate: str, first: bytes, second: bytes, expected: int | None
) -> None:
    if locate == "numpy":
        pytest.importorskip("numpy")  # used when already imported
    else:
        monkeypatch.setitem(sys.modules, "numpy", None)
    for a, b in ((first, second), (second, first)):
        assert _first_difference(io.BytesIO(a), io.BytesIO(b), SMALL_CHUNK) == expected
        assert _first_difference(io.BytesIO(a), io.BytesIO(b)) == expected  # one chunk


BIG = 2 * _CHUNK + 5  # two chunks as verify reads files, and 5 bytes more


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(0, "bytes differ from offset 0", id="first byte"),
        pytest.param(_CHUNK - 1, f"bytes differ from offset {_CHUNK - 1}", id="end of a chunk"),
        pytest.param(_CHUNK, f"bytes differ from offset {_CHUNK}", id="start of a chunk"),
        pytest.param(BIG - 1, f"bytes differ from offset {BIG - 1}", id="last byte"),
        pytest.param(None, f"sizes differ: {BIG} and {_CHUNK} bytes", id="only the first chunk"),
    ],
)
def test_verify_names_the_first_differing_byte_of_files_larger_than_a_chunk(
    tmp_path: Path, change: int | None, expected: str
) -> None:
    first = (bytes(range(256)) * (BIG // 256 + 1))[:BIG]
    second = first[:_CHUNK] if change is None else changed(first, change)
    result = verify_versions(
        tmp_path, "blob.bin", lambda path, run: path.write_bytes(first if run == 1 else second)
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"  blob.bin: {expected}\n" in result.stdout


def report_of_whole_texts(a: bytes, b: bytes) -> str | None:
    """The report as it was made before texts were read in pieces: from every line at once."""
    lines_a = a.decode("utf-8", "replace").splitlines()
    lines_b = b.decode("utf-8", "replace").splitlines()

    def show(line: str) -> str:
        text = line if line.isprintable() else repr(line)
        return text if len(text) <= 300 else text[:297] + "..."

    for number in range(1, max(len(lines_a), len(lines_b)) + 1):
        x = lines_a[number - 1] if number <= len(lines_a) else "<end of output>"
        y = lines_b[number - 1] if number <= len(lines_b) else "<end of output>"
        if x != y:
            return f"line {number} differs:\n    run 1: {show(x)}\n    run 2: {show(y)}"
    return None


def text_pairs() -> list[tuple[bytes, bytes]]:
    long = "x" * 700
    pairs = [
        ("a\r\nb\n", "a\r\nc\n"),
        ("a\r\nb", "a\rb"),  # the same lines
        ("a\nb\n", "a\n"),
        ("", "\n"),
        ("\r\r\n\n", "\r\n\r\n"),
        (long + "y\n", long + "z\n"),
        (f"'\t{long}\"\n", f"'\t{long}'\n"),  # long lines that repr() quotes
        (f"\t{long}'", f'\t{long}"'),
        ("é\u2028ü\x85x\x1cy", "é\u2028ü\x85x\x1dy"),
        ("é\u2028ü\n", "é\u2028ü\r\n"),
    ]
    texts = [(a.encode(), b.encode()) for a, b in pairs]
    texts.append((b"a\xffb\n", b"a\xfeb\n"))  # invalid bytes, replaced alike
    texts.append((b"a\n\xe2\x80", b"a\n\xe2\x81"))  # cut off inside a character
    pieces = ["a", "'", '"', "\n", "\r", "\r\n", "\x0b", "\u2028", "é", "\t", long]
    rng = random.Random(0)
    for _ in range(300):
        a = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))
        b = list(a)
        if b:
            b[rng.randrange(len(b))] = rng.choice(pieces)
        texts.append((a.encode(), "".join(b).encode()))
    return texts


def test_text_read_in_pieces_is_reported_as_the_whole_text_was() -> None:
    for a, b in text_pairs():
        for x, y in ((a, b), (b, a)):
            expected = report_of_whole_texts(x, y)
            for size in (1, 2, 3, 5, 8, 64, 1 << 20):
                report = _text_difference(io.BytesIO(x), io.BytesIO(y), (1, 2), size)
                assert report == expected, (x, y, size)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_comparing_large_files_keeps_memory_flat(tmp_path: Path) -> None:
    size = 300 << 20
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    for path in (first, second):  # sparse: no disk taken, read back as zeros
        with path.open("wb") as file:
            file.truncate(size)
    with second.open("r+b") as file:
        file.seek(size - 1)
        file.write(b"\1")
    growth, report = compare_in_fresh_process(first, second)
    assert report == f"bytes differ from offset {size - 1}"
    assert growth < 64, f"peak memory grew by {growth:.0f} MiB comparing two files of 300 MiB"

    lines = b"".join(b"line %d of a long text\n" % n for n in range(1_500_000))  # 37 MB
    first.write_bytes(lines + b"the end\n")
    second.write_bytes(lines + b"the END\n")
    growth, report = compare_in_fresh_process(first, second)
    assert report == "line 1500001 differs:\n    run 1: the end\n    run 2: the END"
    assert growth < 64, f"peak memory grew by {growth:.0f} MiB comparing two texts of 37 MB"


# -- the seed the runs used, and the hook that notes it --------------------------------------

SCOPED = """
    from seedscope import deterministic, isolated

    with isolated():
        pass
    with deterministic() as scope:
        print(scope.seed)
"""


def test_the_summary_shows_the_seed_the_program_used(tmp_path: Path) -> None:
    write(tmp_path / "scoped.py", SCOPED)
    result = seedscope(
        "verify", "--", PY, "-m", "seedscope", "run", "--seed", "1", "scoped.py", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("1\n")
    assert "agree (seed 1)\n" in result.stdout  # not SEEDSCOPE_SEED=0
    assert "with SEEDSCOPE_SEED=0" in result.stderr  # what each run was given
    plain = seedscope("verify", "--seed", "5", "--", PY, "scoped.py", cwd=tmp_path)
    assert "agree (seed 5)\n" in plain.stdout


def test_a_program_that_enters_no_scope_is_told_about_seedscope_run(tmp_path: Path) -> None:
    write(tmp_path / "counted.py", COUNTED)
    result = seedscope(
        "verify", "--", PY, "counted.py", cwd=tmp_path, env=environment(DIFFER_IN_RUN="2")
    )
    assert result.returncode == 1
    assert "differ (SEEDSCOPE_SEED=0, no seedscope scope entered)\n" in result.stdout
    assert (
        "note: the command never entered a seedscope scope, so seedscope seeded nothing: run "
        "the program with `seedscope run`"
    ) in result.stdout
    assert "`seedscope verify -- seedscope run counted.py`" in result.stdout
    agreeing = seedscope("verify", "--", PY, "counted.py", cwd=tmp_path)
    assert "agree (SEEDSCOPE_SEED=0, no seedscope scope entered)\n" in agreeing.stdout


def test_a_command_that_is_not_a_hooked_python_keeps_the_plain_summary(tmp_path: Path) -> None:
    write(tmp_path / "scoped.py", SCOPED)
    result = seedscope("verify", "--", PY, "-I", "scoped.py", cwd=tmp_path)  # ignores PYTHONPATH
    assert result.returncode == 0, result.stdout + result.stderr
    assert "agree (SEEDSCOPE_SEED=0)\n" in result.stdout


def test_the_hook_leaves_sys_path_alone_and_runs_an_existing_sitecustomize(
    tmp_path: Path,
) -> None:
    write(tmp_path / "custom" / "sitecustomize.py", "import builtins\nbuiltins.CUSTOMIZED = 1\n")
    write(
        tmp_path / "show.py",
        """
        import sys
        print(CUSTOMIZED, [p for p in sys.path if "seedscope-verify-" in p])
        hooked = [f for f in sys.meta_path if type(f).__module__ == "_seedscope_trace_hook"]
        print(len(hooked), "seedscope" in sys.modules)
        """,
    )
    env = environment(PYTHONPATH=str(tmp_path / "custom"))
    result = seedscope("verify", "--", PY, "show.py", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    # The hook is loaded, but nothing of seedscope is imported into the program.
    assert result.stdout.startswith("1 []\n1 False\n")
