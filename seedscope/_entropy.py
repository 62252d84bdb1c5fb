"""Hidden entropy: generators made without a seed inside a scope take it from the scope's seed.

numpy seeds every generator made without a seed (``default_rng()``,
``RandomState()``, ``SeedSequence()``, a bit generator such as ``PCG64()``,
and ``np.random.seed()`` with no argument) through ``SeedSequence(None)``,
which takes its entropy from ``randbits``: a name that
``numpy.random.bit_generator`` imports from :mod:`secrets` and, being a
Cython module, looks up in its module dict at every call (numpy 1.24 to 2.4).
``torch.seed()`` reseeds torch's generators from the operating system.

Both are replaced once per process, the first time a scope captures numpy's
or torch's state, and stay replaced. The replacements ask the calling
thread's (or task's) innermost live entry and forward to the originals unless
that entry seeds, manages the library and has not opted out with
``os_entropy=True``. So entering and leaving a scope does no work for this,
and outside scopes, or under ``isolated()``, entropy comes from the operating
system as before. ``random.Random()`` is left alone: :mod:`tempfile` and
other code rely on it being unpredictable.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from ._derive import derive_seed
from ._scope import current_scope
from .sources.base import Source
from .sources.numpy import NumpyGlobal
from .sources.torch import TorchCPU

__all__ = ["HOOKS", "entropy_seed", "hook_numpy", "hook_torch"]

_lock = threading.Lock()
# The originals, once replaced.
_numpy_randbits: Callable[[int], int] | None = None
_torch_seed: Callable[[], int] | None = None


def _after_fork_in_child() -> None:
    # A thread of the parent may have been installing a hook, holding the lock:
    # it does not exist in the child, which must still be able to install.
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def entropy_seed(library: type[Source]) -> int | None:
    """The next ``derive_seed(seed, "entropy", n)`` of the innermost live entry here, or None.

    None (take OS entropy) outside scopes, under ``isolated()``, with
    ``os_entropy=True``, and when the entry's sources leave out ``library``.
    """
    active = current_scope()
    if active is None or active.seed is None or active.scope.os_entropy:
        return None
    if not any(isinstance(source, library) for source in active.scope.sources):
        return None
    # An entry is innermost in one thread at a time (tasks that share it take
    # turns), so counting needs no lock. A suspended entry keeps its count.
    count = active._entropy
    active._entropy = count + 1
    return derive_seed(active.seed, "entropy", count)


def hook_numpy() -> None:
    """Route numpy's requests for OS entropy through :func:`entropy_seed` (once per process)."""
    global _numpy_randbits
    with _lock:
        module: Any = sys.modules.get("numpy.random.bit_generator")
        original: Callable[[int], int] | None = getattr(module, "randbits", None)
        if _numpy_randbits is not None or original is None:
            return

        def randbits(bits: int) -> int:
            seed = entropy_seed(NumpyGlobal)
            # The seed itself, not ``bits`` bits stretched from it: then
            # ``default_rng()`` is ``default_rng(derive_seed(seed, "entropy", n))``.
            return original(bits) if seed is None else seed

        _numpy_randbits = original
        module.randbits = randbits


def hook_torch() -> None:
    """Make ``torch.seed()`` / ``torch.random.seed()`` seed from :func:`entropy_seed` in scopes."""
    global _torch_seed
    with _lock:
        torch: Any = sys.modules.get("torch")
        module: Any = getattr(torch, "random", None)
        original: Callable[[], int] | None = getattr(module, "seed", None)
        if _torch_seed is not None or original is None:
            return

        @functools.wraps(original)
        def seed() -> int:
            value = entropy_seed(TorchCPU)
            if value is None:
                return original()
            # What torch.seed() does with the value it draws: every device too.
            torch.manual_seed(value)
            return value

        _torch_seed = original
        module.seed = seed
        if getattr(torch, "seed", None) is original:
            torch.seed = seed


#: Each library's hook, by the name :func:`seedscope.sources.base.hook_entropy` takes.
HOOKS: dict[str, Callable[[], None]] = {"numpy": hook_numpy, "torch": hook_torch}
