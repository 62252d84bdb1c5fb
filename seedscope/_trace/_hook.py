"""What ``seedscope verify`` puts into each run's interpreter: stdlib only, loaded by path.

``verify`` puts a directory first on ``PYTHONPATH`` that holds a
``sitecustomize.py`` (:data:`SITECUSTOMIZE`): Python imports it at start-up,
before the program. It takes its directory off ``sys.path`` again, loads this
file by path (so that nothing of seedscope is imported yet) and, in the
process ``verify`` started (or the one it execs into, as ``seedscope run``
does), calls :func:`install`; then it imports the ``sitecustomize`` that was
there before, if any. :func:`install` adds an import hook that waits for
torch (to record ops, with ``--locate``) and for seedscope's engine (to note
the seeds of the scopes the program enters): nothing is imported early, and a
program that imports neither runs as it would.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import types
from collections.abc import Callable, Sequence
from typing import Any

PARENT = "_SEEDSCOPE_TRACE_PARENT"  # the pid of the verify process
FILE = "_SEEDSCOPE_TRACE_FILE"  # where this run's trace goes
OPS = "_SEEDSCOPE_TRACE_OPS"  # "1": record torch ops (--locate); else only scopes
HOOK = "_SEEDSCOPE_TRACE_HOOK"  # this file
PATH = "_SEEDSCOPE_TRACE_PATH"  # the directory seedscope was imported from, as a fallback

SITECUSTOMIZE = f'''\
"""Installed by seedscope verify for the runs it makes; it removes itself from sys.path."""


def _seedscope_verify():
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    if os.environ.get("{PARENT}") == str(os.getppid()):
        try:
            import importlib.util

            spec = importlib.util.spec_from_file_location(
                "_seedscope_trace_hook", os.environ["{HOOK}"]
            )
            hook = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(hook)
            hook.install()
        except Exception as exc:
            sys.stderr.write(f"seedscope verify: cannot trace this run: {{exc!r}}\\n")
    # The sitecustomize this one hides, if there is one.
    ours = sys.modules.pop("sitecustomize", None)
    try:
        import sitecustomize  # noqa: F401
    except ImportError as exc:
        if exc.name != "sitecustomize":
            raise
        if ours is not None:
            sys.modules["sitecustomize"] = ours


_seedscope_verify()
del _seedscope_verify
'''


class _Loader(importlib.abc.Loader):
    """The module's own loader, and a call once the module has run."""

    def __init__(self, loader: Any, then: Callable[[types.ModuleType], None]) -> None:
        self.loader = loader
        self.then = then

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        create = getattr(self.loader, "create_module", None)
        return None if create is None else create(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        self.then(module)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of the watched modules the others find."""

    def __init__(self, watched: dict[str, Callable[[types.ModuleType], None]]) -> None:
        self.watched = watched

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        then = self.watched.pop(fullname, None)
        if then is None:
            return None
        if not self.watched and self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader, then)
        return spec  # type: ignore[no-any-return]


def _child() -> Any:
    """seedscope's recording side: from this interpreter's seedscope, else from verify's."""
    try:
        from seedscope._trace import _child
    except ImportError:
        fallback = os.environ.get(PATH)
        if not fallback or "seedscope" in sys.modules:
            raise
        sys.path.append(fallback)
        try:
            from seedscope._trace import _child
        finally:
            sys.path.remove(fallback)
    return _child


def _warn(exc: BaseException) -> None:
    sys.stderr.write(f"seedscope verify: cannot trace this run: {type(exc).__name__}: {exc}\n")


def _on_torch(module: types.ModuleType) -> None:
    try:
        _child().record_ops(os.environ[FILE])
    except Exception as exc:
        _warn(exc)


def _on_engine(module: types.ModuleType) -> None:
    try:
        _child().watch_scopes(module, os.environ[FILE])
    except Exception as exc:
        _warn(exc)


def install() -> None:
    """Watch for torch and for seedscope's engine being imported."""
    # An empty trace says "hooked, nothing recorded": a Python program, no torch, no scope.
    with open(os.environ[FILE], "wb"):
        pass
    watched: dict[str, Callable[[types.ModuleType], None]] = {"seedscope._scope": _on_engine}
    if os.environ.get(OPS) == "1":
        watched["torch"] = _on_torch
    for name, then in list(watched.items()):
        module = sys.modules.get(name)
        if module is not None:  # imported already (by another sitecustomize, say)
            del watched[name]
            then(module)
    if watched:
        sys.meta_path.insert(0, _Finder(watched))
