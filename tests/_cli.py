"""Helpers for the command-line tests: every command runs in a real subprocess."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.find_spec("seedscope")
assert _spec is not None
assert _spec.origin is not None
PACKAGE_DIR = str(Path(_spec.origin).parent)
EXAMPLES = ROOT / "examples"
SEEDSCOPE = (sys.executable, "-m", "seedscope")
# Variables the tests control: each test starts from none of them set.
CONTROLLED = ("PYTHONHASHSEED", "SEEDSCOPE_SEED", "CUBLAS_WORKSPACE_CONFIG")


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without the controlled variables, plus ``extra``."""
    environ = {name: value for name, value in os.environ.items() if name not in CONTROLLED}
    environ.update(extra)
    return environ


def run(
    *command: str | os.PathLike[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [os.fspath(part) for part in command],
        cwd=cwd,
        env=environment() if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def seedscope(
    *args: str | os.PathLike[str], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m seedscope ARGS`` in ``cwd``."""
    return run(*SEEDSCOPE, *args, cwd=cwd, env=env)


def python(
    *args: str | os.PathLike[str], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run(sys.executable, *args, cwd=cwd, env=env)


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def assert_no_seedscope_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert PACKAGE_DIR not in result.stderr, result.stderr


def compare_in_fresh_process(
    first: Path, second: Path, imports: tuple[str, ...] = ()
) -> tuple[float, str | None]:
    """``seedscope verify``'s comparison of two files, in a fresh interpreter (Linux only).

    Returns how much the peak resident memory (``VmHWM``) grew during the comparison,
    in MiB, and the report's text for the file (None when the files agree). The
    modules in ``imports`` are imported before, so that their memory does not count.
    """
    code = f"""
        import importlib, json
        from seedscope._verify import _compare_files

        for module in {imports!r}:
            importlib.import_module(module)

        def peak():
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024

        before = peak()
        report = _compare_files("out", {os.fspath(first)!r}, {os.fspath(second)!r}, (1, 2))
        print(json.dumps([peak() - before, report]))
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    growth, report = json.loads(result.stdout)
    return growth, report
