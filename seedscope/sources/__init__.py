"""The kinds of global state a scope manages, one module each.

``deterministic(sources=...)`` takes built-in names (``"python"``, ``"numpy"``,
``"torch"``, ``"accelerators"``, ``"flags"``, ``"environ"``) and
:class:`Source` instances, so a scope can be narrowed to some of the
built-ins or extended with state of your own.

Libraries with global random state of their own add a source to every
default scope with :func:`register_source`, or without any code run by the
user through the ``seedscope.sources`` entry-point group, loaded once, the
first time a scope is made. A plugin that fails to load is skipped with a
warning.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from collections.abc import Iterable
from typing import Any

from .._errors import SeedscopeWarning
from .accelerators import Accelerators
from .base import Source
from .environ import EnvironmentVariables
from .flags import TorchFlags
from .numpy import NumpyGlobal
from .python import PythonRandom
from .torch import TorchCPU

__all__ = [
    "BUILTIN_NAMES",
    "ENTRY_POINT_GROUP",
    "Accelerators",
    "EnvironmentVariables",
    "NumpyGlobal",
    "PythonRandom",
    "Source",
    "TorchCPU",
    "TorchFlags",
    "builtin_sources",
    "default_sources",
    "register_source",
    "resolve_sources",
    "unregister_source",
]

BUILTIN_NAMES = ("python", "numpy", "torch", "accelerators", "flags", "environ")
ENTRY_POINT_GROUP = "seedscope.sources"

_lock = threading.RLock()
_registered: tuple[Source, ...] = ()
_entry_points_loaded = False
_loading = False


def _after_fork_in_child() -> None:
    # A thread of the parent may have been loading the entry points, holding
    # the lock: it does not exist in the child, so the child starts afresh.
    global _lock, _loading
    _lock = threading.RLock()
    _loading = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@functools.cache
def builtin_sources(strict: bool = False, warn_only: bool = False) -> tuple[Source, ...]:
    """The built-in sources, in the order a scope captures and seeds them."""
    return (
        PythonRandom(),
        NumpyGlobal(),
        TorchCPU(),
        Accelerators(),
        TorchFlags(strict=strict, warn_only=warn_only),
        EnvironmentVariables(strict=strict),
    )


def register_source(source: Source) -> Source:
    """Add ``source`` to every scope made from now on with the default sources.

    Scopes made without ``sources=`` (and :func:`~seedscope.capture`) capture,
    seed and restore it after the built-in sources; ``sources=`` can name it.
    Its ``name`` must be unique. Scopes made before the call are not changed.
    Returns ``source``.
    """
    global _registered
    if not isinstance(source, Source):
        raise TypeError(f"register_source() takes a Source instance, not {source!r}")
    name = source.name
    if not isinstance(name, str) or not name:
        raise ValueError(f"{type(source).__name__}.name must be a non-empty string")
    with _lock:
        _load_entry_points()
        taken = [*BUILTIN_NAMES, *(other.name for other in _registered)]
        if name in taken:
            raise ValueError(f"a source named {name!r} is already registered")
        _registered = (*_registered, source)
        _defaults.cache_clear()
    return source


def unregister_source(name: str) -> Source:
    """Remove the registered source called ``name`` from scopes made from now on; return it."""
    global _registered
    with _lock:
        _load_entry_points()
        for source in _registered:
            if source.name == name:
                _registered = tuple(other for other in _registered if other is not source)
                _defaults.cache_clear()
                return source
    raise ValueError(f"no registered source is named {name!r}")


def _load_entry_points() -> None:
    """Register the sources of the ``seedscope.sources`` entry-point group, once per process."""
    global _entry_points_loaded, _loading
    with _lock:  # other threads wait here until the group is loaded
        if _entry_points_loaded or _loading:
            return  # _loading: a plugin being loaded made a scope; it gets the built-ins
        _loading = True
        try:
            _register_entry_points()
        finally:
            _loading = False
            _entry_points_loaded = True
            _defaults.cache_clear()


def _register_entry_points() -> None:
    global _registered
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded: Any = entry_point.load()
            source = loaded() if isinstance(loaded, type) else loaded
            if not isinstance(source, Source):
                raise TypeError(f"it is {source!r}, not a Source subclass or instance")
            taken = [*BUILTIN_NAMES, *(other.name for other in _registered)]
            if not isinstance(source.name, str) or not source.name or source.name in taken:
                raise ValueError(f"its name {source.name!r} is empty or already taken")
        except Exception as exc:
            warnings.warn(
                f"skipped the seedscope source {entry_point.name!r} ({entry_point.value}) "
                f"of entry-point group {ENTRY_POINT_GROUP!r}: {type(exc).__name__}: {exc}",
                SeedscopeWarning,
                stacklevel=2,
            )
            continue
        _registered = (*_registered, source)


@functools.cache
def _defaults(strict: bool, warn_only: bool) -> tuple[Source, ...]:
    return builtin_sources(strict, warn_only) + _registered


def default_sources(strict: bool = False, warn_only: bool = False) -> tuple[Source, ...]:
    """The built-in sources, then the registered ones: what a scope uses without ``sources=``."""
    if not _entry_points_loaded:
        _load_entry_points()
    return _defaults(strict, warn_only)


def resolve_sources(
    spec: Iterable[str | Source] | None, *, strict: bool, warn_only: bool
) -> tuple[Source, ...]:
    """Turn ``deterministic(sources=...)`` into source objects, validating each item."""
    defaults = default_sources(strict, warn_only)
    if spec is None:
        return defaults
    if isinstance(spec, (str, Source)):
        raise TypeError(
            f"sources must be an iterable of source names or Source objects, not {spec!r}"
        )
    by_name = {source.name: source for source in defaults}
    resolved: list[Source] = []
    for item in spec:
        if isinstance(item, Source):
            source = item
        elif isinstance(item, str):
            if item not in by_name:
                raise ValueError(f"unknown source {item!r}; sources are {', '.join(by_name)}")
            source = by_name[item]
        else:
            raise TypeError(
                f"sources items must be names ({', '.join(by_name)}) or Source "
                f"objects, not {type(item).__name__} {item!r}"
            )
        if source in resolved:
            raise ValueError(f"source {source.name!r} is listed twice")
        resolved.append(source)
    return tuple(resolved)
