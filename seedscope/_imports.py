"""Seed libraries that are first imported while a scope is active.

Code often imports numpy or torch lazily, inside the function a scope wraps.
Their global generators are created by that import, after the scope took its
snapshot, so the engine must hear about the import to seed the new state and,
on exit, put back the state the import produced. A meta path finder does this
while any scope is active and is removed when the last scope ends.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

__all__ = ["ImportWatch", "install", "uninstall", "unwatch", "watch"]


# Duck-typed rather than importlib.abc subclasses: importing importlib.abc
# costs about 10 ms at start-up, more than the rest of seedscope together.


class _NotifyingLoader:
    """Runs the real loader, then tells the engine the module exists."""

    def __init__(self, loader: Any, on_import: Callable[[str], None]) -> None:
        self._loader = loader
        self._on_import = on_import

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        create: Callable[[ModuleSpec], ModuleType | None] | None = getattr(
            self._loader, "create_module", None
        )
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        # Put the real loader back first, so the module never sees this wrapper.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        self._on_import(module.__name__)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class ImportWatch:
    """A meta path finder that finds nothing itself: it wraps the loader of modules it wants."""

    def __init__(self, wants: Callable[[str], bool], on_import: Callable[[str], None]) -> None:
        self._wants = wants
        self._on_import = on_import

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if not self._wants(fullname):
            return None
        # Only the finders after this one, as the import system would ask them:
        # two watches that want the same module then both wrap it, in turn,
        # rather than asking each other for ever.
        meta_path = sys.meta_path
        after = meta_path[meta_path.index(self) + 1 :] if self in meta_path else meta_path
        for finder in after:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec: ModuleSpec | None = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _NotifyingLoader(spec.loader, self._on_import)  # type: ignore[assignment]
        return spec


def watch(finder: ImportWatch | None) -> None:
    """Put ``finder`` first on ``sys.meta_path`` (which is None at interpreter shutdown).

    Callers keep ``finder`` before calling this, so that an interruption here
    can never leave on ``sys.meta_path`` a finder nobody knows to remove.
    """
    meta_path = getattr(sys, "meta_path", None)
    if finder is not None and meta_path is not None:
        meta_path.insert(0, finder)


def unwatch(finder: ImportWatch) -> None:
    # ValueError: someone rebuilt sys.meta_path; AttributeError: shutdown.
    with contextlib.suppress(ValueError, AttributeError):
        sys.meta_path.remove(finder)


# The engine's finder, there while any scope is active.
_finder: ImportWatch | None = None


def install(wants: Callable[[str], bool], on_import: Callable[[str], None]) -> None:
    global _finder
    if _finder is None:
        _finder = ImportWatch(wants, on_import)
        watch(_finder)


def uninstall() -> None:
    global _finder
    if _finder is not None:
        unwatch(_finder)
        _finder = None
