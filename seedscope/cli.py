"""The ``seedscope`` command: ``run``, ``verify`` and ``doctor``.

Exit codes: ``run`` passes on the program's own; ``verify`` exits 0 when
every run agrees, 1 when they differ, 3 when a run fails or an output cannot
be read; every command exits 2 on a usage error.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import __version__
from ._seed import SEED_ENV_VAR, parse_seed, seed_from_environment

__all__ = ["main"]

USAGE_ERROR = 2

_DESCRIPTION = """\
Reproducible runs from the command line.

commands:
  run      run a Python script or module with a fixed hash seed, inside deterministic(seed)
  verify   run a command several times and compare its output and output files
  doctor   report what affects reproducibility here, and what would break it

`seedscope COMMAND -h` shows a command's options.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors kept to one clear line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def _fail(prog: str, message: str, code: int = USAGE_ERROR) -> int:
    sys.stderr.write(f"{prog}: error: {message}\n")
    return code


def _seed(parser: _Parser, raw: str | None) -> int:
    try:
        return seed_from_environment() if raw is None else parse_seed(raw, what="--seed")
    except ValueError as exc:
        parser.error(str(exc))


# -- run ---------------------------------------------------------------------------------


def _run_parser() -> _Parser:
    parser = _Parser(
        prog="seedscope run",
        usage="seedscope run [-h] [--seed N] [--strict] [--warn-only] "
        "(script.py | -m module) [args ...]",
        description="Run a Python script or module as `python script.py` or `python -m "
        "module` would, but in an interpreter started with PYTHONHASHSEED=N (so str "
        "hashes and set ordering are the same every run) and inside deterministic(N). "
        "The program's sys.argv, __main__, exit code, tracebacks and signals are those "
        "of plain python. SEEDSCOPE_SEED=N is set for the program and its children.",
        epilog="Options must come before the script or -m; everything after it goes to "
        "the program. Exit code: the program's; 2 when the script or module cannot be "
        "found or an option is wrong.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--seed",
        metavar="N",
        help=f"the seed, 0 to 2**32 - 1 in ASCII digits 0-9 (default: ${SEED_ENV_VAR}, "
        "or 0 when unset)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="strict mode: deterministic algorithms, TF32 off, and CUBLAS_WORKSPACE_CONFIG "
        "set before the program (and CUDA) starts",
    )
    parser.add_argument(
        "--warn-only",
        action="store_true",
        help="with --strict: warn instead of raising for operations without a "
        "deterministic implementation",
    )
    return parser


def _split_run(args: list[str]) -> tuple[list[str], str | None, str | None, list[str]]:
    """Split ``run``'s arguments into (options, script, module, program arguments)."""
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            if i + 1 < len(args):
                return args[:i], args[i + 1], None, args[i + 2 :]
            return args[:i], None, None, []
        if token == "-m":
            if i + 1 < len(args):
                return args[:i], None, args[i + 1], args[i + 2 :]
            return args[:i], None, "", []
        if token.startswith("-m") and not token.startswith("--"):
            return args[:i], None, token[2:], args[i + 1 :]
        if token == "--seed":
            i += 2
            continue
        if token.startswith("-") and token != "-":
            i += 1  # an option: argparse checks it
            continue
        return args[:i], token, None, args[i + 1 :]
    return args, None, None, []


def _run(args: list[str]) -> int:
    from ._run import RunError, RunOptions, run

    parser = _run_parser()
    options, script, module, program_args = _split_run(args)
    parsed = parser.parse_args(options)
    if module == "":
        parser.error("argument -m: expected a module name")
    if script is None and module is None:
        parser.error("give a script to run, or -m and a module")
    if parsed.warn_only and not parsed.strict:
        parser.error("--warn-only only applies to strict mode: add --strict")
    seed = _seed(parser, parsed.seed)
    target = module if module is not None else script
    assert target is not None
    run_options = RunOptions(
        seed=seed,
        strict=parsed.strict,
        warn_only=parsed.warn_only,
        module=module is not None,
        target=target,
        args=tuple(program_args),
    )
    try:
        return run(run_options)
    except RunError as exc:
        return _fail("seedscope run", str(exc))


# -- verify ------------------------------------------------------------------------------


def _verify_parser() -> _Parser:
    parser = _Parser(
        prog="seedscope verify",
        usage="seedscope verify [-h] [--runs N] [--seed N] [--compare PATH ...] [--locate] "
        "-- COMMAND [args ...]",
        description="Run COMMAND several times with the same seed settings "
        f"({SEED_ENV_VAR}=N in its environment) and compare what each run wrote to "
        "standard output and to each --compare file. Tensor files (torch.save "
        "outputs, .npy, .npz) are compared tensor by tensor. PYTHONHASHSEED is passed "
        "on as it is: when it is unset, each run has its own hash seed, as separate "
        "runs of `python script.py` do, and `seedscope run` is what fixes it. With "
        "--locate, each run also records a trace of its torch operations, and when the "
        "runs differ the report names the first operation where they part, its module, "
        "its source line and why.",
        epilog="Exit code: 0 when every run agrees, 1 when they differ, 2 on a usage "
        "error (including a command that cannot be started), 3 when a run fails or a "
        "--compare file is missing or unreadable after a run.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--runs", type=int, default=2, metavar="N", help="how many runs (default: 2)"
    )
    parser.add_argument(
        "--seed",
        metavar="N",
        help=f"{SEED_ENV_VAR} for every run (default: ${SEED_ENV_VAR}, or 0 when unset)",
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        action="extend",
        default=[],
        metavar="PATH",
        help="a file each run writes, to compare between runs (repeatable)",
    )
    parser.add_argument(
        "--locate",
        action="store_true",
        help="trace every torch operation of each run (exact digests of inputs and "
        "outputs) and report the first one where the runs part, and why",
    )
    return parser


def _verify(args: list[str]) -> int:
    parser = _verify_parser()
    if "--" in args:
        split = args.index("--")
        options, command = args[:split], args[split + 1 :]
    else:
        options, command = args, []
    parsed, extra = parser.parse_known_args(options)
    if extra:
        if "--" not in args and not extra[0].startswith("-"):
            parser.error(
                f"put the command after --, as in: seedscope verify -- {shlex.join(extra)}"
            )
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not command:
        parser.error("give the command to run after --, as in: seedscope verify -- python train.py")
    if parsed.runs < 2:
        parser.error(f"--runs must be at least 2, got {parsed.runs}")
    seed = _seed(parser, parsed.seed)
    from ._verify import verify

    try:
        return verify(
            command, runs=parsed.runs, seed=seed, compare=parsed.compare, locate=parsed.locate
        )
    except BrokenPipeError:
        _silence_stdout()
        return 1


# -- doctor ------------------------------------------------------------------------------


def _doctor(args: list[str]) -> int:
    parser = _Parser(
        prog="seedscope doctor",
        description="Report what affects reproducibility in this environment: versions, "
        "accelerators, whether the interpreter's hash seed was fixed at start-up, "
        "torch's determinism settings and environment variables; then what would break "
        "reproducibility, each with its fix.",
        epilog="Exit code: 0 (2 on a usage error).",
        allow_abbrev=False,
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parsed = parser.parse_args(args)
    from ._doctor import collect, render_text

    report = collect()
    if parsed.json:
        import json

        return _write(json.dumps(report, indent=2) + "\n")
    return _write(render_text(report))


def _write(text: str) -> int:
    """Print a report; a reader that stops early (``| head``) is not an error."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    return 0


def _silence_stdout() -> None:
    # Python would report the broken pipe again when it flushes stdout at exit.
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


# -- entry point -------------------------------------------------------------------------

_COMMANDS = {"run": _run, "verify": _verify, "doctor": _doctor}


def main(argv: Sequence[str] | None = None) -> int:
    """The ``seedscope`` console script (and ``python -m seedscope``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    top = _Parser(
        prog="seedscope",
        usage="seedscope [-h] [--version] {run,verify,doctor} ...",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    top.add_argument("--version", action="version", version=f"seedscope {__version__}")
    if not args:
        top.print_help(sys.stderr)
        return USAGE_ERROR
    command = _COMMANDS.get(args[0])
    if command is None:
        if args[0].startswith("-"):
            top.parse_args(args[:1])  # -h, --version, or an unknown option
        top.error(f"unknown command {args[0]!r} (choose from run, verify, doctor)")
    return command(args[1:])
