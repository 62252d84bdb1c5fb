"""``seedscope run``: start a program with a fixed hash seed, inside ``deterministic(seed)``.

The hash seed of an interpreter is fixed when it starts, so unless this
process already has the right one, :func:`run` replaces it (``os.execve``:
same process id, signals and exit status go straight to the program) with a
fresh interpreter started with ``PYTHONHASHSEED`` set. That interpreter runs
:func:`_child`, which runs the target the way ``python script.py`` and
``python -m module`` do: a fresh ``__main__`` module, ``sys.argv`` and
``sys.path[0]`` as Python sets them, and exceptions left to propagate to the
interpreter, so exit codes, ``SystemExit`` and ``KeyboardInterrupt`` behave
natively. A ``sys.excepthook`` wrapper hides this module's frames from
tracebacks.

The scope is entered and never exited: the whole program, including threads
that outlive the main module and ``atexit`` handlers, runs seeded, and there
is nothing to restore in a process that is ending.
"""

from __future__ import annotations

import builtins
import importlib.machinery
import importlib.util
import marshal
import os
import subprocess
import sys
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from ._hashseed import has_hash_seed, startup_hash_seed
from ._seed import SEED_ENV_VAR, parse_seed
from .sources.environ import _CUBLAS_DETERMINISTIC_VALUES, CUBLAS_CONFIG, CUBLAS_DETERMINISTIC

__all__ = ["RunError", "RunOptions", "run"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# The child gets this via `-c`: it imports seedscope from the directory this
# process imported it from, before anything on the current directory can shadow it.
_BOOTSTRAP = (
    "import sys\n"
    "if sys.path[:1] == ['']: del sys.path[0]\n"
    "sys.path.insert(0, {path!r})\n"
    "from seedscope._run import _child\n"
    "_child()\n"
)


class RunError(Exception):
    """A problem with the target itself (missing script or module): exit code 2."""


@dataclass(frozen=True)
class RunOptions:
    seed: int
    strict: bool
    warn_only: bool
    module: bool  # target is a module name (-m) rather than a path
    target: str
    args: tuple[str, ...]

    def encode(self) -> list[str]:
        flags = f"{int(self.strict)}{int(self.warn_only)}{'m' if self.module else 's'}"
        return [str(self.seed), flags, self.target, *self.args]

    @classmethod
    def decode(cls, argv: Sequence[str]) -> RunOptions:
        seed, flags, target, *args = argv
        return cls(
            parse_seed(seed, what="seed"),
            flags[0] == "1",
            flags[1] == "1",
            flags[2] == "m",
            target,
            tuple(args),
        )


def check_script(path: str) -> None:
    """Fail like Python does, but before a new interpreter starts, if ``path`` cannot run."""
    if os.path.isdir(path):
        if not any(
            os.path.exists(os.path.join(path, f"__main__{suffix}"))
            for suffix in importlib.machinery.all_suffixes()
        ):
            raise RunError(f"can't find '__main__' module in {path!r}")
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise RunError(f"can't open file {path!r}: [Errno {exc.errno}] {exc.strerror}") from None


def child_environment(options: RunOptions) -> dict[str, str]:
    """The environment of the program: the seed, and cuBLAS's workspace setting in strict mode."""
    environ = dict(os.environ)
    environ["PYTHONHASHSEED"] = str(options.seed)
    environ[SEED_ENV_VAR] = str(options.seed)
    if options.strict and environ.get(CUBLAS_CONFIG) not in _CUBLAS_DETERMINISTIC_VALUES:
        # Harmless where there is no CUDA; must be set before CUDA starts where there is.
        environ[CUBLAS_CONFIG] = CUBLAS_DETERMINISTIC
    return environ


def _interpreter_flags() -> list[str]:
    try:
        flags: list[str] = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    except Exception:  # a private helper; losing -X/-W flags is not worth failing for
        return []
    return flags


def run(options: RunOptions) -> int:
    """Run the target with the hash seed fixed. Returns only when it ran in this process."""
    if not options.module:
        check_script(options.target)
    if startup_hash_seed().seed == options.seed and (
        not options.strict or os.environ.get(CUBLAS_CONFIG) in _CUBLAS_DETERMINISTIC_VALUES
    ):
        os.environ.update(child_environment(options))
        execute(options)
        return 0
    if sys.flags.ignore_environment:
        raise RunError(
            "this Python ignores the environment (-E or -I), so PYTHONHASHSEED cannot fix "
            "the hash seed of the program; start seedscope without those options"
        )
    if not sys.executable:
        raise RunError("cannot find the Python interpreter to start (sys.executable is empty)")
    argv = [
        sys.executable,
        *_interpreter_flags(),
        "-c",
        _BOOTSTRAP.format(path=os.path.dirname(_PACKAGE_DIR)),
        *options.encode(),
    ]
    environ = child_environment(options)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    if os.name == "posix":
        os.execve(sys.executable, argv, environ)
    # No exec that keeps the process on Windows: run a child and pass its exit code on.
    with subprocess.Popen(argv, env=environ) as process:
        while True:
            try:
                return process.wait()
            except KeyboardInterrupt:
                continue  # the console sent the interrupt to the child too


def _child() -> None:
    """The program's interpreter: entered through the ``-c`` bootstrap."""
    del sys.path[0]  # the bootstrap's entry; the program's own comes from execute()
    options = RunOptions.decode(sys.argv[1:])
    if has_hash_seed(options.seed) is False:  # None: cannot be checked here
        _fail(
            f"this interpreter was started with PYTHONHASHSEED={options.seed}, "
            "but its hash seed is not that"
        )
    try:
        execute(options, replace_path0=False)
    except RunError as exc:
        _fail(str(exc))


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"seedscope run: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(2)


def _path0(value: str, *, replace: bool, always: bool = False) -> None:
    """Put the program's ``sys.path[0]`` in place of the launcher's, as Python would.

    Under ``-P`` Python adds no such entry for a script or module (and the
    launcher has none to replace), but it still adds a directory or zip archive
    that it runs, since that is where its ``__main__`` comes from.
    """
    safe_path = getattr(sys.flags, "safe_path", False)
    if replace and sys.path and not safe_path:
        del sys.path[0]
    if always or not safe_path:
        sys.path.insert(0, value)


def execute(options: RunOptions, *, replace_path0: bool = True) -> None:
    """Run the target as ``__main__`` in this process, inside ``deterministic(seed)``."""
    from ._scope import deterministic

    _install_excepthook()
    scope = deterministic(options.seed, strict=options.strict, warn_only=options.warn_only)
    # Never exited: the program, its atexit handlers and lingering threads all run in it.
    scope.__enter__()
    target = options.target
    if options.module:
        sys.argv[:] = ["-m", *options.args]
        _path0(os.getcwd(), replace=replace_path0)
        spec, code = _find_module(target)
        sys.argv[0] = spec.origin or target
        module = _module_from_spec(spec)
    elif os.path.isdir(target) or _is_zip(target):
        # A directory or zip archive: Python puts it first on sys.path and runs
        # the __main__ module it finds there, leaving sys.argv alone.
        sys.argv[:] = [target, *options.args]
        _path0(os.path.abspath(target), replace=replace_path0, always=True)
        main = sys.modules.pop("__main__")
        try:
            spec, code = _find_module("__main__")
        except RunError:
            raise RunError(f"can't find '__main__' module in {target!r}") from None
        finally:
            sys.modules["__main__"] = main
        module = _module_from_spec(spec)
    else:
        sys.argv[:] = [target, *options.args]
        path = os.path.abspath(target)
        _path0(os.path.dirname(os.path.realpath(target)), replace=replace_path0)
        code = _compile_file(path)
        module = types.ModuleType("__main__")
        module.__dict__.update(
            __file__=path,
            __cached__=None,
            __loader__=importlib.machinery.SourceFileLoader("__main__", path),
            __builtins__=builtins,
        )
    sys.modules["__main__"] = module
    exec(code, module.__dict__)


def _module_from_spec(spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
    module = types.ModuleType("__main__")
    module.__dict__.update(
        __file__=spec.origin,
        __cached__=spec.cached,
        __loader__=spec.loader,
        __package__=spec.parent,
        __spec__=spec,
        __builtins__=builtins,
    )
    return module


def _is_zip(path: str) -> bool:
    try:
        with open(path, "rb") as file:
            return file.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def _compile_file(path: str) -> types.CodeType:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise RunError(f"can't open file {path!r}: [Errno {exc.errno}] {exc.strerror}") from None
    if data[:4] == importlib.util.MAGIC_NUMBER:
        code = marshal.loads(data[16:])
        if not isinstance(code, types.CodeType):
            raise RunError(f"{path!r} is not a compiled Python file")
        return code
    return compile(data, path, "exec", dont_inherit=True)


def _find_module(name: str) -> tuple[importlib.machinery.ModuleSpec, types.CodeType]:
    """What ``python -m name`` runs: the module's spec and code (after runpy)."""
    if not name or name.startswith("."):
        raise RunError(f"relative module names are not supported: {name!r}")
    parent = name.rpartition(".")[0]
    if parent:
        try:
            __import__(parent)
        except ImportError as exc:
            missing = exc.name
            if missing is None or not (missing == parent or parent.startswith(missing + ".")):
                raise  # an import inside the package failed: the program's own error
            raise RunError(f"no module named {missing!r}") from None
        existing = sys.modules.get(name)
        if existing is not None and not hasattr(existing, "__path__"):
            warnings.warn(
                f"{name!r} found in sys.modules after import of package {parent!r}, but "
                f"prior to execution of {name!r}; this may result in unpredictable behaviour",
                RuntimeWarning,
                stacklevel=1,
            )
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        raise RunError(
            f"error while finding module specification for {name!r} ({type(exc).__name__}: {exc})"
        ) from None
    if spec is None:
        raise RunError(f"no module named {name!r}")
    if spec.submodule_search_locations is not None:
        if name == "__main__" or name.endswith(".__main__"):
            raise RunError("cannot use package as __main__ module")
        try:
            return _find_module(name + ".__main__")
        except RunError as exc:
            raise RunError(
                f"{exc}; {name!r} is a package and cannot be directly executed"
            ) from None
    loader = spec.loader
    if loader is None:
        raise RunError(f"{name!r} is a namespace package and cannot be executed")
    get_code: Callable[[str], types.CodeType | None] | None = getattr(loader, "get_code", None)
    code = get_code(name) if get_code is not None else None
    if code is None:
        raise RunError(f"no code object available for {name!r}")
    return spec, code


# -- tracebacks without seedscope's frames ---------------------------------------

_OUR_MODULES = ("runpy", "seedscope._run", "seedscope.cli", "seedscope.__main__")


def _ours(frame: types.FrameType) -> bool:
    filename = frame.f_code.co_filename
    if filename.startswith(_PACKAGE_DIR + os.sep):
        return True
    return frame.f_globals.get("__name__") in _OUR_MODULES


def _strip(tb: types.TracebackType | None) -> types.TracebackType | None:
    """Drop the launcher's frames from the start of a traceback.

    The outermost frame is always the launcher (the bootstrap, the console
    script, or runpy for ``python -m seedscope``); after it come seedscope's
    and runpy's until the program's first frame.
    """
    if tb is None:
        return None
    tb = tb.tb_next
    while tb is not None and _ours(tb.tb_frame):
        tb = tb.tb_next
    return tb


def _install_excepthook() -> None:
    original = sys.excepthook

    def excepthook(
        kind: type[BaseException], value: BaseException, tb: types.TracebackType | None
    ) -> Any:
        if value is not None and value.__traceback__ is tb:
            tb = _strip(tb)
            value.__traceback__ = tb
        else:
            tb = _strip(tb)
        return original(kind, value, tb)

    sys.excepthook = excepthook
