"""Private streams: seeded once, then continued from where they stopped at each entry.

A :class:`PrivateStream` is entered like a scope: the caller's state is saved
and the stream's own state is put in its place; on exit the stream's state is
kept and the caller's put back. The first entry seeds it; later entries pick
up where the last one stopped. So a function decorated with a stream draws
fresh numbers on every call, the same sequence in every run, and leaves its
callers' streams as they were.

Unlike a :class:`~seedscope.Scope`, a stream holds state: it is the engine's
suspend and resume of a decorated generator, kept on an object the user owns.
It serves one entry at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any, overload

from ._scope import (
    ActiveScope,
    Scope,
    Target,
    _entry_seed,
    _leave,
    _resume,
    deterministic,
    is_decorator_target,
    live_stack,
)
from ._snapshot import dump_part, load_part
from .sources import Source

__all__ = ["PrivateStream", "private_stream"]

_FORMAT = "seedscope.private_stream"
_VERSION = 1


class PrivateStream:
    """A seeded stream that keeps its own state across entries; made by :func:`private_stream`."""

    __slots__ = ("_busy", "_entry", "_lock", "_scope")

    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        # One entry for the stream's whole life, made at its first entry: while
        # the stream is not entered, the entry holds the stream's own state,
        # exactly as a decorated generator's entry does between steps.
        self._entry: ActiveScope | None = None
        # Who has the stream entered: a with block (the stream itself) or a generator's stepper.
        self._busy: object | None = None
        self._lock = threading.Lock()

    @property
    def scope(self) -> Scope:
        """The scope whose sources, options and seed this stream uses."""
        return self._scope

    @property
    def seed(self) -> int | None:
        """The seed the stream started from; ``None`` until its first entry (or after reset)."""
        return None if self._entry is None else self._entry.seed

    @property
    def active(self) -> bool:
        """Whether the stream is entered now."""
        return self._busy is not None

    def __repr__(self) -> str:
        return f"private_stream({repr(self._scope).partition('(')[2]}"

    # -- entering and leaving ------------------------------------------------------

    def _claim(self, owner: object) -> ActiveScope:
        """Mark the stream entered by ``owner``; return its entry, made at the first entry."""
        with self._lock:
            if self._busy is not None:
                raise RuntimeError(
                    f"{self!r} is already active: a private stream serves one entry at a "
                    "time (make one stream per thread, task or nested use)"
                )
            if self._entry is None:
                # No state of its own yet: the first resume seeds every source.
                self._entry = ActiveScope(self._scope, _entry_seed(self._scope))
            self._busy = owner
            return self._entry

    def _release(self, owner: object) -> None:
        if self._busy is owner:
            self._busy = None

    def __enter__(self) -> ActiveScope:
        claim = object()
        try:
            entry = self._claim(claim)
            _resume([entry])  # saves the caller's state, brings back the stream's (or seeds)
            return entry
        except BaseException:
            # Interrupted after the stream came in: the with block will not exit it.
            came_in = self._entry
            if came_in is not None and came_in._live and self._busy is claim:
                _leave([came_in], keep=(came_in,))
            self._release(claim)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        entry = self._entry
        stack = live_stack()
        if entry is None or entry not in stack:
            raise RuntimeError(f"{self!r} is not active here: nothing to exit")
        inside = stack[stack.index(entry) + 1 :]
        try:
            # Scopes entered inside the stream and still active are exited with it.
            _leave([entry, *inside], keep=(entry,))
        finally:
            if not entry._live:  # else interrupted before leaving: still fully entered
                self._busy = None
        if inside:
            raise RuntimeError(
                f"{self!r} exited while {inside[-1].scope!r}, entered later, was still "
                "active: scopes and streams must be exited in the reverse order of entry; "
                "both were exited and everything they changed was restored"
            )

    async def __aenter__(self) -> ActiveScope:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, target: Target) -> Target:
        """Run every call (every generator step) of ``target`` in this stream, continuing it."""
        from ._decorate import decorate

        decorated: Target = decorate(self, target)
        return decorated

    # -- state -------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the stream's state: the next entry seeds it afresh."""
        self._check_inactive("reset")
        self._entry = None

    def state_dict(self) -> dict[str, Any]:
        """The stream's state as plain data, for a checkpoint (see :meth:`Snapshot.state_dict`).

        ``seed`` is ``None`` before the first entry; a source is ``None`` if the
        stream has not used it yet.
        """
        self._check_inactive("save")
        inner = {} if self._entry is None else self._entry._inner
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "seed": self.seed,
            "sources": {
                source.name: dump_part(source, inner[source]) if source in inner else None
                for source in self._scope.sources
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`, checked in full first (``ValueError`` if wrong).

        Only the stream changes, not the process's random state; the next
        entry continues from the loaded state.
        """
        self._check_inactive("load")
        from ._plain import expect_fields, read_int
        from ._seed import MAX_SEED

        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"not a seedscope private stream state (format {_FORMAT!r})")
        if state.get("version") != _VERSION:
            raise ValueError(
                f"private stream state version {state.get('version')!r} is not supported: "
                f"this seedscope reads version {_VERSION}"
            )
        fields = expect_fields(
            state, "private stream state", ("format", "version", "seed", "sources")
        )
        seed = fields["seed"]
        if seed is not None:
            seed = read_int(seed, "private stream state 'seed'", low=0, high=MAX_SEED)
        names = [source.name for source in self._scope.sources]
        saved = expect_fields(fields["sources"], "private stream part 'sources'", tuple(names))
        inner = {
            source: load_part(source, saved[source.name])
            for source in self._scope.sources
            if saved[source.name] is not None
        }
        if seed is None and inner:
            raise ValueError("private stream state has source states but no 'seed'")
        if seed is None:
            self._entry = None
        else:
            self._entry = ActiveScope(self._scope, seed)
            self._entry._inner = inner

    # -- copying and pickling ---------------------------------------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        # As random.Random does: a copy or an unpickled stream continues from
        # where this one is now, on its own. The lock and the entry stay here.
        self._check_inactive("copy or pickle")
        return PrivateStream, (self._scope,), self.state_dict()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state)

    def _check_inactive(self, what: str) -> None:
        if self._busy is not None:
            raise RuntimeError(f"cannot {what} {self!r} while it is active")


@overload
def private_stream(target: Target, /) -> Target: ...
@overload
def private_stream(
    seed: int | None = None,
    *,
    strict: bool = False,
    warn_only: bool = False,
    sources: Iterable[str | Source] | None = None,
    generators: Iterable[Any] | None = None,
    per_rank: bool = False,
    os_entropy: bool = False,
) -> PrivateStream: ...
def private_stream(
    seed: Any = None,
    *,
    strict: bool = False,
    warn_only: bool = False,
    sources: Iterable[str | Source] | None = None,
    generators: Iterable[Any] | None = None,
    per_rank: bool = False,
    os_entropy: bool = False,
) -> Any:
    """A stream seeded like ``deterministic(seed)`` that continues where it stopped at each entry.

    The first entry saves the caller's state and seeds exactly as
    :func:`deterministic` would; exit keeps the stream's state and restores
    the caller's. Each later entry continues the stream instead of reseeding
    it, so a decorated function draws new numbers on every call, and the same
    numbers in every run, without touching its callers' streams. The options
    are :func:`deterministic`'s. A stream serves one entry at a time.

    >>> import random
    >>> @private_stream(7)
    ... def jitter():
    ...     return random.random()
    >>> first, second = jitter(), jitter()
    >>> first != second
    True
    >>> with private_stream(7):
    ...     [random.random(), random.random()] == [first, second]
    True
    """
    options: dict[str, Any] = {
        "strict": strict,
        "warn_only": warn_only,
        "sources": sources,
        "generators": generators,
        "per_rank": per_rank,
        "os_entropy": os_entropy,
    }
    if is_decorator_target(seed):
        return PrivateStream(deterministic(**options))(seed)
    return PrivateStream(deterministic(seed, **options))
