"""seedscope: reproducible randomness as scopes that give every bit of global state back.

>>> import random
>>> from seedscope import deterministic
>>> with deterministic(7) as scope:
...     scope.seed
7
"""

from ._errors import ConcurrentScopesWarning, RestoreError, SeedscopeWarning
from ._scope import ActiveScope, Scope, current_scope, deterministic, isolated
from .sources import Source

__all__ = [
    "ActiveScope",
    "ConcurrentScopesWarning",
    "RestoreError",
    "Scope",
    "SeedscopeWarning",
    "Source",
    "current_scope",
    "deterministic",
    "isolated",
]

__version__ = "0.1.0.dev0"
