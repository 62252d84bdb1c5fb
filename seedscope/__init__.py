"""seedscope: reproducible randomness as scopes that give every bit of global state back.

>>> import random
>>> from seedscope import deterministic
>>> with deterministic(7) as scope:
...     scope.seed
7
"""

from ._check import ReproducibilityResult, check_reproducible
from ._compare import Mismatch
from ._data import LoaderSeeding, dataloader_seeding, seed_worker
from ._derive import derive_seed
from ._distributed import broadcast_seed
from ._errors import ConcurrentScopesWarning, RestoreError, SeedscopeWarning
from ._scope import ActiveScope, Scope, current_scope, deterministic, isolated
from ._snapshot import Snapshot, capture
from ._streams import PrivateStream, private_stream
from .sources import Source, register_source, unregister_source

__all__ = [
    "ActiveScope",
    "ConcurrentScopesWarning",
    "LoaderSeeding",
    "Mismatch",
    "PrivateStream",
    "ReproducibilityResult",
    "RestoreError",
    "Scope",
    "SeedscopeWarning",
    "Snapshot",
    "Source",
    "broadcast_seed",
    "capture",
    "check_reproducible",
    "current_scope",
    "dataloader_seeding",
    "derive_seed",
    "deterministic",
    "isolated",
    "private_stream",
    "register_source",
    "seed_worker",
    "unregister_source",
]

__version__ = "0.1.0.dev0"
