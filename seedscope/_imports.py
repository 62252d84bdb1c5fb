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

__all__ = ["install", "uninstall", "unwatch", "watch"]


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


class _SeedOnImport:
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
        for finder in sys.meta_path:
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


def watch(wants: Callable[[str], bool], on_import: Callable[[str], None]) -> _SeedOnImport | None:
    """Call ``on_import(name)`` after each module that ``wants(name)`` is first imported.

    Returns the finder, to pass to :func:`unwatch`; None at interpreter shutdown.
    """
    meta_path = getattr(sys, "meta_path", None)
    if meta_path is None:  # None at interpreter shutdown
        return None
    finder = _SeedOnImport(wants, on_import)
    meta_path.insert(0, finder)
    return finder


def unwatch(finder: _SeedOnImport) -> None:
    # ValueError: someone rebuilt sys.meta_path; AttributeError: shutdown.
    with contextlib.suppress(ValueError, AttributeError):
        sys.meta_path.remove(finder)


# The engine's finder, there while any scope is active.
_finder: _SeedOnImport | None = None


def install(wants: Callable[[str], bool], on_import: Callable[[str], None]) -> None:
    global _finder
    if _finder is None:
        _finder = watch(wants, on_import)


def uninstall() -> None:
    global _finder
    if _finder is not None:
        unwatch(_finder)
        _finder = None
