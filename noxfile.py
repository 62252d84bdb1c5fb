"""Development sessions: tests, lint, type checks, docs, benchmarks and the demo.

``python3 -m nox`` with no ``-s`` runs what CI runs (see ``.ci/run``).

Every install that can pull in torch goes through ``-c constraints.txt``, so
every session gets the same pinned torch rather than whatever build (several GB
with CUDA) an unpinned install would resolve to.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
CONSTRAINTS = ("-c", "constraints.txt")
WITH_EXTRAS = ".[numpy,torch]"
MAIN_PYTHON = "3.11"
SUPPORTED_PYTHONS = ("3.10", "3.11", "3.12", "3.13")
CI_SESSIONS = ["tests", "tests_minimal", "lint", "typecheck", "docs"]

nox.options.sessions = CI_SESSIONS
nox.options.error_on_missing_interpreters = True
nox.options.error_on_external_run = True
if hasattr(nox.options, "download_python"):
    # Only interpreters already on the machine: nothing is downloaded.
    nox.options.download_python = "never"


# -- finding interpreters ---------------------------------------------------------


def _reported_version(executable: str) -> str | None:
    """``"3.X"`` if ``executable`` runs, else None (a pyenv shim of an inactive version fails)."""
    try:
        result = subprocess.run(
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _patch_level(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path))


def _candidates(version: str) -> Iterator[str]:
    on_path = shutil.which(f"python{version}")
    if on_path:
        yield on_path
    # Version managers keep interpreters that are installed but not active,
    # which PATH (and so nox's own search) does not show.
    managed = [
        os.path.join(
            os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv")),
            "versions",
            f"{version}.*",
            "bin",
            f"python{version}",
        ),
        os.path.join(
            os.path.expanduser("~/.local/share/uv/python"),
            f"cpython-{version}.*",
            "bin",
            f"python{version}",
        ),
    ]
    for pattern in managed:
        yield from sorted(glob.glob(pattern), key=_patch_level, reverse=True)


@functools.cache
def find_python(version: str) -> str | None:
    """The path of a working CPython ``version`` interpreter on this machine, if any."""
    for candidate in _candidates(version):
        if _reported_version(candidate) == version:
            return candidate
    return None


def _installed_pythons() -> list[tuple[str, str]]:
    found = [(version, find_python(version)) for version in SUPPORTED_PYTHONS]
    return [(version, path) for version, path in found if path is not None]


INSTALLED_PYTHONS = _installed_pythons()


def _minimal_params() -> list[object]:
    if INSTALLED_PYTHONS:
        return [nox.param(path, id=version) for version, path in INSTALLED_PYTHONS]
    # None found: let nox report the missing interpreters as errors.
    return [nox.param(version, id=version) for version in SUPPORTED_PYTHONS]


# The path when found; otherwise the version, so that nox reports it missing.
MAIN_INTERPRETER = find_python(MAIN_PYTHON) or MAIN_PYTHON


# -- sessions ---------------------------------------------------------------------


@nox.session(python=MAIN_INTERPRETER)
def tests(session: nox.Session) -> None:
    """The full test suite, with numpy and torch, on Python 3.11."""
    session.install(*CONSTRAINTS, WITH_EXTRAS, "-r", "requirements/tests.txt")
    session.run("pytest", *session.posargs)


@nox.session
@nox.parametrize("python", _minimal_params())
def tests_minimal(session: nox.Session) -> None:
    """The test suite without numpy or torch, on every supported Python found here."""
    session.install(*CONSTRAINTS, ".", "-r", "requirements/tests.txt")
    session.run(
        "python",
        "-c",
        "import importlib.util, sys; "
        "present = [m for m in ('numpy', 'torch') if importlib.util.find_spec(m)]; "
        "sys.exit(f'tests_minimal must run without {present}' if present else 0)",
    )
    session.run("pytest", *session.posargs)


@nox.session(python=MAIN_INTERPRETER)
def lint(session: nox.Session) -> None:
    """ruff's lint rules and formatting check."""
    session.install(*CONSTRAINTS, "-r", "requirements/lint.txt")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=MAIN_INTERPRETER)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package and on the decorator typing checks."""
    session.install(*CONSTRAINTS, "-e", WITH_EXTRAS, "-r", "requirements/typecheck.txt")
    session.run(
        "mypy", "--strict", "seedscope", "tests/typing/check_decorator_types.py", *session.posargs
    )


@nox.session(python=MAIN_INTERPRETER)
def docs(session: nox.Session) -> None:
    """Build the docs with warnings as errors, then run every example in them as a doctest.

    Examples are ``>>>`` sessions: those in README.md and docs/*.md and the
    docstrings in seedscope all run. Python examples must use that form, so a
    ``python`` code fence (which nothing would run) is refused.
    """
    requirements = ("-r", "requirements/docs.txt", "-r", "requirements/tests.txt")
    session.install(*CONSTRAINTS, "-e", WITH_EXTRAS, *requirements)
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    untested = _untested_code_blocks(pages)
    if untested:
        session.error(
            "code blocks that no doctest runs: write Python as ```pycon with >>> prompts, "
            "and label other blocks (```console, ```text, ```toml):\n  " + "\n  ".join(untested)
        )
    build = ROOT / "docs" / "_build"
    shutil.rmtree(build, ignore_errors=True)
    session.run(
        "sphinx-build", "-W", "--keep-going", "-E", "-b", "html", "docs", str(build / "html")
    )
    doctest_flags = ("-o", "doctest_optionflags=ELLIPSIS NORMALIZE_WHITESPACE")
    session.run("pytest", *doctest_flags, "--doctest-modules", "seedscope")
    session.run(
        "pytest",
        *doctest_flags,
        "--doctest-glob=*.md",
        *(str(page.relative_to(ROOT)) for page in pages),
    )


_FENCE = re.compile(r"^(`{3,}|~{3,})\s*(.*)$")
_DIRECTIVE = re.compile(r"^\{([\w-]+)\}\s*(.*)$")
_CODE_DIRECTIVES = {"code-block", "code", "sourcecode", "code-cell"}
_UNTESTED_LANGUAGES = {"", "python", "py", "python3", "py3", "ipython", "ipython3"}


def _untested_code_blocks(pages: list[Path]) -> list[str]:
    """Fenced code blocks that are Python (or unlabelled) but not ``pycon`` doctests."""
    problems = []
    for page in pages:
        fence: str | None = None
        lines = page.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            stripped = line.strip()
            if fence is not None:
                if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                    fence = None
                continue
            match = _FENCE.match(stripped)
            if match is None:
                continue
            fence, info = match.group(1), match.group(2).strip()
            directive = _DIRECTIVE.match(info)
            if directive is not None:
                if directive.group(1) not in _CODE_DIRECTIVES:
                    continue  # toctree, eval-rst, include, ...
                info = directive.group(2).strip()
            language = info.split()[0].lower() if info else ""
            if language in _UNTESTED_LANGUAGES:
                problems.append(f"{page.relative_to(ROOT)}:{number}: {stripped}")
    return problems


@nox.session(python=MAIN_INTERPRETER)
def bench(session: nox.Session) -> None:
    """Every benchmark: scopes, training-run helpers, the pytest plugin, verify's compare and
    the cost of tracing (``verify --locate``).

    lightning-fabric, pytest-randomly and opt_einsum (whose tests are the real suite the
    plugin is timed on) are benchmark-only dependencies.
    Arguments (``-- --quick``) go to the scope benchmark.
    """
    session.install(*CONSTRAINTS, WITH_EXTRAS, "-r", "requirements/bench.txt")
    session.run("python", "benchmarks/bench_scope.py", *session.posargs)
    session.run("python", "benchmarks/bench_training.py")
    session.run("python", "benchmarks/bench_pytest_plugin.py")
    session.run("python", "benchmarks/bench_pytest_real_suite.py")
    session.run("python", "benchmarks/bench_verify.py")
    session.run("python", "benchmarks/bench_trace.py")


DEMO = ("seedscope", "verify", "--", "python", "examples/reproducible_training.py")


@nox.session(python=MAIN_INTERPRETER)
def demo(session: nox.Session) -> None:
    """seedscope verify on the reproducible training example, with numpy and torch.

    With arguments, runs them instead as a command in the demo's environment
    (the README's line spells out the default: ``nox -s demo -- seedscope verify
    -- python examples/reproducible_training.py``).
    """
    session.install(*CONSTRAINTS, WITH_EXTRAS)
    session.run(*(session.posargs or DEMO))
