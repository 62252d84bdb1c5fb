"""seedscope: reproducible randomness as scopes that give every bit of global state back.

>>> import random
>>> from seedscope import deterministic
>>> with deterministic(7) as scope:
...     scope.seed
7
"""

from typing import TYPE_CHECKING, Any

from ._check import ReproducibilityResult, check_reproducible
from ._compare import Mismatch
from ._data import LoaderSeeding, dataloader_seeding, seed_worker
from ._derive import derive_seed
from ._distributed import broadcast_seed
from ._errors import (
    ConcurrentScopesWarning,
    DeviceMismatchWarning,
    RestoreError,
    SeedscopeWarning,
)
from ._relaxed import ActiveRelaxedScope, NondeterministicOp, RelaxedScope, relaxed
from ._scope import ActiveScope, Scope, current_scope, deterministic, isolated
from ._snapshot import Snapshot, capture
from ._streams import PrivateStream, private_stream
from ._trace import trace
from .sources import Source, register_source, unregister_source

if TYPE_CHECKING:
    from ._trace import Divergence, compare_traces

__all__ = [
    "ActiveRelaxedScope",
    "ActiveScope",
    "ConcurrentScopesWarning",
    "DeviceMismatchWarning",
    "Divergence",
    "LoaderSeeding",
    "Mismatch",
    "NondeterministicOp",
    "PrivateStream",
    "RelaxedScope",
    "ReproducibilityResult",
    "RestoreError",
    "Scope",
    "SeedscopeWarning",
    "Snapshot",
    "Source",
    "broadcast_seed",
    "capture",
    "check_reproducible",
    "compare_traces",
    "current_scope",
    "dataloader_seeding",
    "derive_seed",
    "deterministic",
    "isolated",
    "private_stream",
    "register_source",
    "relaxed",
    "seed_worker",
    "trace",
    "unregister_source",
]

__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> Any:
    # Comparing traces needs dataclasses (and so inspect): a few ms that
    # ``import seedscope`` does not pay until they are used.
    if name in ("Divergence", "compare_traces"):
        from . import _trace

        return getattr(_trace, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
