"""The protocol every kind of global random state implements."""

from __future__ import annotations

import abc
import sys
from typing import Any

__all__ = ["ProcessWide", "Source", "entropy_hooked", "hook_entropy", "state_key"]


class Source(abc.ABC):
    """One kind of process-global state that a scope saves, seeds and restores.

    A source is *available* while the library that owns its state is imported
    (``module`` in ``sys.modules``); a scope skips unavailable sources and, if
    the library is first imported while the scope is active, picks the source
    up right after that import.

    ``capture`` must not change anything; ``seed`` puts the state into the
    scope's reproducible state (for settings sources: applies the settings);
    ``restore`` takes exactly what ``capture`` returned.

    ``dump_state`` and ``load_state`` turn a captured state into plain data and
    back, for :meth:`Snapshot.state_dict() <seedscope.Snapshot.state_dict>`;
    the defaults handle states that already are plain data.
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

    def dump_state(self, state: Any) -> Any:
        """Return ``state`` (from :meth:`capture`) as plain data: what JSON can hold.

        Plain data is dicts with ``str`` keys, lists, ``str``, ``int``, finite
        ``float``, ``bool`` and ``None``; no tuples, since JSON gives them back
        as lists. The default returns ``state`` itself if it is plain data and
        raises ``TypeError`` otherwise.
        """
        from .._plain import is_plain

        if not is_plain(state):
            raise TypeError(
                f"the state of source {self.name!r} is not plain data (JSON types, no "
                f"tuples): {type(self).__name__} must implement dump_state and load_state"
            )
        return state

    def load_state(self, data: Any) -> Any:
        """Check plain data from :meth:`dump_state` and return the state for :meth:`restore`.

        Raise ``ValueError`` (or ``TypeError``) if ``data`` is not a valid state;
        change nothing. Whatever it accepts, :meth:`restore` must apply without
        error. A source without a ``module`` gets ``None`` here too (a snapshot
        only uses ``None`` for a library that was not imported): refuse it unless
        it is a state :meth:`capture` returns. The default returns ``data`` unchanged.
        """
        return data

    def __repr__(self) -> str:
        return f"<seedscope source {self.name!r}>"


class ProcessWide(Source):
    """A source whose instances all manage one process-wide state, whatever their options.

    They share one state key (their class), so the engine knows that a strict
    scope and a plain one saved the same state: when one leaves while the
    other, made later in another thread, is still active, it hands its saved
    state on.
    """

    _state_key: object

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._state_key = cls


def state_key(source: Source) -> object:
    """What identifies the state ``source`` manages: the source itself, unless it says otherwise."""
    return getattr(source, "_state_key", source)


# The libraries ("numpy", "torch") whose requests for OS entropy go through
# seedscope._entropy already: its hooks are installed once per process.
entropy_hooked: set[str] = set()


def hook_entropy(library: str) -> None:
    """Install seedscope._entropy's hook for ``library``, once per process.

    The library's source calls it from ``capture`` while ``library`` is not in
    :data:`entropy_hooked`: every entry captures before it seeds or resumes,
    so that is the one place that sees the library whichever way an entry
    comes in.
    """
    from .._entropy import HOOKS

    HOOKS[library]()
    entropy_hooked.add(library)
