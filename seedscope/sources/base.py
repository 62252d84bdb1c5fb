"""The protocol every kind of global random state implements."""

from __future__ import annotations

import abc
import sys
from typing import Any

__all__ = ["Source"]


class Source(abc.ABC):
    """One kind of process-global state that a scope saves, seeds and restores.

    A source is *available* while the library that owns its state is imported
    (``module`` in ``sys.modules``); a scope skips unavailable sources and, if
    the library is first imported while the scope is active, picks the source
    up right after that import.

    ``capture`` must not change anything; ``seed`` puts the state into the
    scope's reproducible state (for settings sources: applies the settings);
    ``restore`` takes exactly what ``capture`` returned.
    """

    #: Short name, used in error messages and by ``deterministic(sources=...)``.
    name: str = ""
    #: The module whose import makes this source available; None: always available.
    module: str | None = None

    def available(self) -> bool:
        return self.module is None or self.module in sys.modules

    @abc.abstractmethod
    def capture(self) -> Any:
        """Return an opaque snapshot of the current state."""

    @abc.abstractmethod
    def seed(self, seed: int) -> None:
        """Seed the state (or apply the settings) for ``seed``."""

    @abc.abstractmethod
    def restore(self, state: Any) -> None:
        """Put back a snapshot returned by :meth:`capture`."""

    def __repr__(self) -> str:
        return f"<seedscope source {self.name!r}>"
