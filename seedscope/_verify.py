"""``seedscope verify``: run a command several times and compare what each run wrote.

Every run gets the same environment, with ``SEEDSCOPE_SEED`` set; standard
input is empty. Standard output is kept in memory and each ``--compare`` file
is copied aside after each run. Bytes are compared first; only outputs whose
bytes differ are opened as tensor files (numpy or torch imported then), so
that the report can name the first differing tensor, index and values.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, TextIO

from ._compare import Mismatch, find_mismatch, format_value
from ._seed import SEED_ENV_VAR

__all__ = ["verify"]

AGREE, DIFFER, USAGE, FAILED = 0, 1, 2, 3
_TAIL_LINES = 20


class _Failure(Exception):
    """A run failed or an output could not be read: exit code 3."""


@dataclass
class _Output:
    label: str  # "stdout" or the path as given
    kind: str  # "stdout" or "file"
    copies: list[str]  # per run: the saved copy (files)


class _Progress:
    """Run-by-run progress on standard error, live on a terminal."""

    def __init__(self, stream: TextIO, runs: int) -> None:
        self.stream = stream
        self.runs = runs
        self.live = stream.isatty()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def start(self, run: int) -> None:
        started = time.monotonic()
        prefix = f"seedscope verify: run {run}/{self.runs}"
        if not self.live:
            self._write(f"{prefix} ...\n")
            return
        self._stop.clear()

        def tick() -> None:
            while not self._stop.wait(0.2):
                self._write(f"\r{prefix}: running, {time.monotonic() - started:.1f} s")

        self._write(f"{prefix}: running")
        self._thread = threading.Thread(target=tick, daemon=True)
        self._thread.start()

    def finish(self, run: int, seconds: float, status: str) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        end = "\r\x1b[K" if self.live else ""
        self._write(f"{end}seedscope verify: run {run}/{self.runs}: {status} in {seconds:.1f} s\n")


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


def _tail(data: bytes) -> str:
    lines = data.decode("utf-8", "replace").rstrip("\n").splitlines()
    shown = lines[-_TAIL_LINES:]
    skipped = (
        f"  ... ({len(lines) - len(shown)} earlier lines)\n" if len(lines) > len(shown) else ""
    )
    return skipped + "".join(f"  | {line}\n" for line in shown)


class _Terminate(Exception):
    pass


def _execute(
    command: Sequence[str], environ: dict[str, str], progress: _Progress, run: int
) -> tuple[bytes, bytes, int, float]:
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environ,
        )
    except FileNotFoundError:
        raise _Usage(f"command not found: {command[0]}") from None
    except PermissionError:
        raise _Usage(f"cannot run {command[0]}: permission denied") from None
    except OSError as exc:
        raise _Usage(f"cannot run {command[0]}: {exc.strerror or exc}") from None
    progress.start(run)
    try:
        while True:
            try:
                stdout, stderr = process.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                continue
    except BaseException:
        # Interrupted (Ctrl-C reaches the child too) or terminated: do not leave it running.
        try:
            process.terminate()
            process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        progress.finish(run, time.monotonic() - started, "interrupted")
        raise
    seconds = time.monotonic() - started
    status = "done" if process.returncode == 0 else _describe_exit(process.returncode)
    progress.finish(run, seconds, status)
    return stdout, stderr, process.returncode, seconds


class _Usage(Exception):
    """A usage problem found while running (a command that cannot start): exit code 2."""


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino


def _collect(path: str, before: tuple[int, int, int] | None, run: int, copy_to: str) -> None:
    after = _stat(path)
    if after is None:
        if not os.path.exists(path):
            raise _Failure(f"run {run} did not write {path}: it does not exist after the run")
    elif before is not None and after == before:
        raise _Failure(
            f"run {run} did not write {path}: it is unchanged since before the run "
            "(a command compared with --compare must write the file every run)"
        )
    try:
        shutil.copyfile(path, copy_to)
    except OSError as exc:
        raise _Failure(f"cannot read {path} after run {run}: {exc.strerror or exc}") from None


# -- comparing ---------------------------------------------------------------------------


def _text_difference(a: bytes, b: bytes, runs: tuple[int, int]) -> str:
    """The first line where two outputs differ, with both versions of it."""
    lines_a = a.decode("utf-8", "replace").splitlines()
    lines_b = b.decode("utf-8", "replace").splitlines()
    end = "<end of output>"
    for number in range(1, max(len(lines_a), len(lines_b)) + 1):
        x = lines_a[number - 1] if number <= len(lines_a) else end
        y = lines_b[number - 1] if number <= len(lines_b) else end
        if x != y:
            return (
                f"line {number} differs:\n"
                f"    run {runs[0]}: {_show_line(x)}\n"
                f"    run {runs[1]}: {_show_line(y)}"
            )
    return _byte_difference(a, b)  # the same lines: line endings or invalid bytes differ


def _show_line(line: str, limit: int = 300) -> str:
    text = line if line.isprintable() else repr(line)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_text(data: bytes) -> bool:
    if b"\0" in data[:8192]:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _kind(path: str) -> str:
    """What a file holds: "npy", "npz", "torch", "text" or "binary"."""
    with open(path, "rb") as file:
        head = file.read(8)
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (OSError, zipfile.BadZipFile):
            return "binary"
        if any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
            return "torch"
        if names and all(name.endswith(".npy") for name in names):
            return "npz"
        return "binary"
    if os.path.splitext(path)[1].lower() in (".pt", ".pth", ".ckpt"):
        return "torch"  # torch's legacy (pre-1.6) format, a pickle
    with open(path, "rb") as file:
        return "text" if _is_text(file.read()) else "binary"


def _load(path: str, kind: str) -> Any:
    if kind in ("npy", "npz"):
        import numpy

        loaded = numpy.load(path, allow_pickle=False)
        if kind == "npz":
            with loaded:
                return {name: loaded[name] for name in loaded.files}
        return loaded
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


_KIND_NAMES = {"npy": "numpy array", "npz": "numpy .npz archive", "torch": "torch.save"}


def _compare_files(label: str, first: str, second: str, runs: tuple[int, int]) -> str | None:
    """None when the two copies agree, else a description of the first difference."""
    with open(first, "rb") as file:
        a = file.read()
    with open(second, "rb") as file:
        b = file.read()
    if a == b:
        return None
    kinds = _kind(first), _kind(second)
    if kinds[0] != kinds[1]:
        return f"run {runs[0]} wrote {kinds[0]} data, run {runs[1]} wrote {kinds[1]} data"
    kind = kinds[0]
    if kind in _KIND_NAMES:
        try:
            x, y = _load(first, kind), _load(second, kind)
        except ImportError as exc:
            note = f"{exc.name or 'a library'} is not installed, so its tensors were not compared"
            return f"{_byte_difference(a, b)} ({note})"
        except Exception as exc:
            return (
                f"{_byte_difference(a, b)} (cannot load it as a {_KIND_NAMES[kind]} file: "
                f"{type(exc).__name__}: {exc})"
            )
        mismatch = find_mismatch(x, y, root="")
        if mismatch is None:
            return None  # every tensor equal: only the layout of the file differs
        return _describe_mismatch(mismatch, runs, "tensor" if kind == "torch" else "array")
    if kind == "text":
        return _text_difference(a, b, runs)
    return _byte_difference(a, b)


def _describe_mismatch(mismatch: Mismatch, runs: tuple[int, int], noun: str) -> str:
    path = mismatch.path
    if mismatch.index is not None:
        where = path[: len(path) - len(_index_text(mismatch.index))]
        what = f"{noun} {where}" if where else f"the {noun}"
        place = f"{what}, index {_index_text(mismatch.index)}"
    else:
        place = path or f"the {noun}"
    return (
        f"{place}: {mismatch.reason}:\n"
        f"    run {runs[0]}: {format_value(mismatch.first)}\n"
        f"    run {runs[1]}: {format_value(mismatch.second)}"
    )


def _index_text(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(i) for i in index) + "]"


def _byte_difference(a: bytes, b: bytes) -> str:
    for offset, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"bytes differ from offset {offset}"
    return f"sizes differ: {len(a)} and {len(b)} bytes"


# -- the command -------------------------------------------------------------------------


def verify(
    command: Sequence[str],
    *,
    runs: int,
    seed: int,
    compare: Sequence[str],
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run ``command`` ``runs`` times and report whether stdout and files agree; the exit code."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    shown = shlex.join(command)
    environ = dict(os.environ)
    environ[SEED_ENV_VAR] = str(seed)
    for path in compare:
        if os.path.isdir(path):
            err.write(f"seedscope verify: error: --compare {path}: is a directory, not a file\n")
            return USAGE
    err.write(
        f"seedscope verify: {runs} runs of `{shown}` with {SEED_ENV_VAR}={seed}"
        + (f", comparing stdout and {', '.join(compare)}" if compare else "")
        + "\n"
    )
    progress = _Progress(err, runs)
    stdouts: list[bytes] = []
    previous_handler = _forward_sigterm()
    try:
        with tempfile.TemporaryDirectory(prefix="seedscope-verify-") as scratch:
            copies: list[list[str]] = [[] for _ in compare]
            for run in range(1, runs + 1):
                before = [_stat(path) for path in compare]
                stdout, stderr, code, _ = _execute(command, environ, progress, run)
                if code != 0:
                    err.write(
                        f"seedscope verify: run {run} of {runs} failed: `{shown}` "
                        f"{_describe_exit(code)}\n"
                    )
                    if stderr.strip():
                        err.write(f"its standard error ended with:\n{_tail(stderr)}")
                    return FAILED
                stdouts.append(stdout)
                if run == 1:
                    _echo(out, stdout)  # what the command printed, once
                for index, path in enumerate(compare):
                    copy_to = os.path.join(scratch, f"run{run}-{index}")
                    _collect(path, before[index], run, copy_to)
                    copies[index].append(copy_to)
            report = _report(stdouts, compare, copies)
    except _Usage as exc:
        err.write(f"seedscope verify: error: {exc}\n")
        return USAGE
    except _Failure as exc:
        err.write(f"seedscope verify: {exc}\n")
        return FAILED
    except KeyboardInterrupt:
        err.write("seedscope verify: interrupted\n")
        return 128 + signal.SIGINT
    except _Terminate:
        err.write("seedscope verify: terminated\n")
        return 128 + signal.SIGTERM
    finally:
        _restore_sigterm(previous_handler)

    differences = [(label, text) for label, text in report if text is not None]
    if not differences:
        out.write(
            f"seedscope verify: reproducible: {runs} runs of `{shown}` agree "
            f"({SEED_ENV_VAR}={seed})\n"
        )
        for label, _ in report:
            out.write(f"  {label}: identical\n")
        return AGREE
    out.write(
        f"seedscope verify: NOT reproducible: the runs of `{shown}` differ "
        f"({SEED_ENV_VAR}={seed})\n"
    )
    for label, text in report:
        out.write(f"  {label}: {'identical' if text is None else text}\n")
    if "PYTHONHASHSEED" not in os.environ:
        out.write(
            "hint: PYTHONHASHSEED is not set, so each run had its own hash seed: if the "
            "output depends on the order of a set of strings, fix it by running the "
            "program with `seedscope run`, and compare with "
            f"`seedscope verify -- seedscope run {_script_hint(command)}`\n"
        )
    return DIFFER


def _echo(out: TextIO, data: bytes) -> None:
    out.flush()
    buffer = getattr(out, "buffer", None)
    if buffer is not None:
        buffer.write(data)
        buffer.flush()
    else:
        out.write(data.decode("utf-8", "replace"))
    if data and not data.endswith(b"\n"):
        out.write("\n")


def _script_hint(command: Sequence[str]) -> str:
    """The command's Python program and arguments, for the hint (``python x.py`` -> ``x.py``)."""
    program = os.path.basename(command[0])
    if program.startswith("python") and len(command) > 1:
        return shlex.join(command[1:])
    return "SCRIPT.py"


def _report(
    stdouts: list[bytes], compare: Sequence[str], copies: list[list[str]]
) -> list[tuple[str, str | None]]:
    report: list[tuple[str, str | None]] = []
    text = None
    for run, stdout in enumerate(stdouts[1:], start=2):
        if stdout != stdouts[0]:
            text = _text_difference(stdouts[0], stdout, (1, run))
            break
    report.append(("stdout", text))
    for path, saved in zip(compare, copies, strict=True):
        text = None
        for run, copy in enumerate(saved[1:], start=2):
            try:
                text = _compare_files(path, saved[0], copy, (1, run))
            except OSError as exc:
                raise _Failure(f"cannot read {path}: {exc.strerror or exc}") from None
            if text is not None:
                break
        report.append((path, text))
    return report


def _forward_sigterm() -> Any:
    """Turn SIGTERM into an exception, so the running command is stopped rather than orphaned."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return None

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminate

    return signal.signal(signal.SIGTERM, handler)


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
