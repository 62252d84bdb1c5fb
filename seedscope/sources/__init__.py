"""The kinds of global state a scope manages, one module each.

``deterministic(sources=...)`` takes built-in names (``"python"``, ``"numpy"``,
``"torch"``, ``"accelerators"``, ``"flags"``, ``"environ"``) and
:class:`Source` instances, so a scope can be narrowed to some of the
built-ins or extended with state of your own.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from .accelerators import Accelerators
from .base import Source
from .environ import EnvironmentVariables
from .flags import TorchFlags
from .numpy import NumpyGlobal
from .python import PythonRandom
from .torch import TorchCPU

__all__ = [
    "BUILTIN_NAMES",
    "Accelerators",
    "EnvironmentVariables",
    "NumpyGlobal",
    "PythonRandom",
    "Source",
    "TorchCPU",
    "TorchFlags",
    "builtin_sources",
    "resolve_sources",
]

BUILTIN_NAMES = ("python", "numpy", "torch", "accelerators", "flags", "environ")


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


def resolve_sources(
    spec: Iterable[str | Source] | None, *, strict: bool, warn_only: bool
) -> tuple[Source, ...]:
    """Turn ``deterministic(sources=...)`` into source objects, validating each item."""
    builtins = builtin_sources(strict, warn_only)
    if spec is None:
        return builtins
    if isinstance(spec, (str, Source)):
        raise TypeError(
            f"sources must be an iterable of source names or Source objects, not {spec!r}"
        )
    by_name = {source.name: source for source in builtins}
    resolved: list[Source] = []
    for item in spec:
        if isinstance(item, Source):
            source = item
        elif isinstance(item, str):
            if item not in by_name:
                raise ValueError(
                    f"unknown source {item!r}; built-in sources are {', '.join(BUILTIN_NAMES)}"
                )
            source = by_name[item]
        else:
            raise TypeError(
                f"sources items must be names ({', '.join(BUILTIN_NAMES)}) or Source "
                f"objects, not {type(item).__name__} {item!r}"
            )
        if source in resolved:
            raise ValueError(f"source {source.name!r} is listed twice")
        resolved.append(source)
    return tuple(resolved)
