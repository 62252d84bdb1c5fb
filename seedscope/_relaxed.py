"""``relaxed()``: deterministic algorithms off (or warn-only) for a region of a strict scope.

A relaxed scope is a scope of the engine with one source, the
deterministic-algorithms setting, and no random state: so it restores on
exit however the block ends, suspends with decorated generators and
coroutines, and hands its saved state on as every scope does. Its entries
start from a state of their own instead of a seed: "relax what is on now".

In warn-only mode the source's state also says which entry collects the
operations torch warns about. While one does, a warning filter lets every
such warning through to a ``showwarning`` hook, which records the operation
with the user's line that first hit it, then shows the warning only where
the filters in place would have (torch's warnings are otherwise shown once
per line, so a second entry would never hear of an operation).
"""

from __future__ import annotations

import re
import sys
import threading
import warnings
from types import FrameType
from typing import Any, NamedTuple, TextIO, overload

from ._frames import user_frame
from ._scope import ActiveScope, Scope, Target
from .sources.base import ProcessWide

__all__ = ["ActiveRelaxedScope", "NondeterministicOp", "RelaxedScope", "relaxed"]


class NondeterministicOp(NamedTuple):
    """An operation torch reported as having no deterministic implementation.

    ``filename`` and ``lineno`` are the first line outside torch, seedscope and
    the standard library that was running when torch first warned about it:
    the line that called the operation, or for an operation of the backward
    pass, the line that called ``backward()``.
    """

    name: str
    filename: str
    lineno: int


class ActiveRelaxedScope(ActiveScope):
    """One entry of :func:`relaxed`: what ``with relaxed(...) as entry`` binds."""

    __slots__ = ("_ops",)

    def __init__(self, scope: Scope, seed: int | None) -> None:
        super().__init__(scope, seed)
        self._ops: dict[str, NondeterministicOp] = {}
        # The state the entry starts from, as a generator's entry resumes from
        # the state it kept: relax the setting in force, collecting into this entry.
        self._inner = {source: _Relax(scope.warn_only, self) for source in scope.sources}

    @property
    def nondeterministic_ops(self) -> tuple[NondeterministicOp, ...]:
        """The operations torch warned about while this entry was active, in order.

        Each is named once, with the line that first hit it. Empty unless
        ``warn_only=True`` and deterministic algorithms were on at entry.
        """
        return tuple(self._ops.values())


class RelaxedScope(Scope):
    """The scope :func:`relaxed` makes: context manager and decorator."""

    __slots__ = ()

    _entry_type = ActiveRelaxedScope
    _settings_only = True

    def __init__(self, *, warn_only: bool) -> None:
        if not isinstance(warn_only, bool):
            raise TypeError(f"warn_only must be True or False, not {warn_only!r}")
        source = _WARN_ONLY if warn_only else _OFF
        super().__init__(None, seeding=False, strict=False, warn_only=False, sources=[source])
        # Scope ties warn_only to strict=True; here it is the mode to relax to.
        self._warn_only = warn_only

    def __repr__(self) -> str:
        return "relaxed(warn_only=True)" if self._warn_only else "relaxed()"

    def __enter__(self) -> ActiveRelaxedScope:
        return _relaxed_entry(super().__enter__())

    async def __aenter__(self) -> ActiveRelaxedScope:
        return _relaxed_entry(await super().__aenter__())


def _relaxed_entry(entry: ActiveScope) -> ActiveRelaxedScope:
    assert isinstance(entry, ActiveRelaxedScope)
    return entry


@overload
def relaxed(target: Target, /) -> Target: ...
@overload
def relaxed(*, warn_only: bool = False) -> RelaxedScope: ...
def relaxed(target: Any = None, *, warn_only: bool = False) -> Any:
    """A scope that turns torch's deterministic algorithms off inside a strict scope.

    For a region that needs an operation with no deterministic implementation:
    inside ``deterministic(seed, strict=True)``, ``relaxed()`` turns
    ``torch.use_deterministic_algorithms`` off, and ``relaxed(warn_only=True)``
    turns it to warn-only; on exit, however the block ends, the setting is
    put back. Nothing else changes: random state, the other strict settings and
    what :func:`current_scope` returns are the surrounding scope's.

    It never makes anything stricter: where deterministic algorithms are off,
    it leaves them off, so code that uses it runs the same in and out of
    strict scopes.

    With ``warn_only=True``, the entry records each operation torch warns
    about (:attr:`ActiveRelaxedScope.nondeterministic_ops`); torch's warning
    is also shown, as the warning filters in place decide.

    Errors and warnings about the backward pass come from ``backward()``:
    keep the region open over the forward *and* the backward pass, best by
    decorating the training step. Use it as a context manager, an async
    context manager, or a decorator (``@relaxed``, ``@relaxed(warn_only=True)``).

    >>> import torch
    >>> from seedscope import deterministic
    >>> with deterministic(0, strict=True):
    ...     with relaxed():
    ...         torch.are_deterministic_algorithms_enabled()
    False
    """
    scope = RelaxedScope(warn_only=warn_only)
    if target is None:
        return scope
    return scope(target)


# -- the setting, and who collects ------------------------------------------------------


class _Relax(NamedTuple):
    """An entry's starting state: relax what is in force now to ``warn_only`` (or off)."""

    warn_only: bool
    entry: ActiveRelaxedScope | None


# (deterministic algorithms on, warn only, the entry that collects warnings)
_State = tuple[bool, bool, ActiveRelaxedScope | None]

_collector: ActiveRelaxedScope | None = None


class _Relaxation(ProcessWide):
    """torch's deterministic-algorithms setting, and which entry collects its warnings."""

    name = "relaxed"
    module = "torch"

    def __init__(self, *, warn_only: bool) -> None:
        self.warn_only = warn_only

    def capture(self) -> _State:
        c = sys.modules["torch"]._C
        return (
            c._get_deterministic_algorithms(),
            c._get_deterministic_algorithms_warn_only(),
            _collector,
        )

    def seed(self, seed: int) -> None:
        self.restore(_Relax(self.warn_only, None))

    def restore(self, state: _State | _Relax) -> None:
        c = sys.modules["torch"]._C
        current = (c._get_deterministic_algorithms(), c._get_deterministic_algorithms_warn_only())
        if isinstance(state, _Relax):
            if not current[0]:
                wanted, entry = current, None  # already off: never stricter
            elif state.warn_only:
                wanted, entry = (True, True), state.entry
            else:
                wanted, entry = (False, False), None
        else:
            wanted, entry = state[:2], state[2]
        if current != wanted:
            c._set_deterministic_algorithms(wanted[0], warn_only=wanted[1])
        _collect_into(entry)


_OFF = _Relaxation(warn_only=False)
_WARN_ONLY = _Relaxation(warn_only=True)


# -- collecting torch's warnings -----------------------------------------------------------

_TEXT = (
    r"(.+?) does not have a deterministic implementation, but you set "
    r"'torch\.use_deterministic_algorithms\(True, warn_only=True\)'"
)
_MESSAGE = re.compile(_TEXT)
_lock = threading.Lock()
_installed = False
# The showwarning the hook passes warnings on to. Kept after the hook is
# removed, for a warnings.catch_warnings() that saved the hook and puts it back.
_shown_by: Any = None
# What the hook has shown, as the warnings module's registries would have it,
# and the filters it was shown under: registries start afresh when they change.
_shown: set[tuple[Any, ...]] = set()
_shown_under: tuple[Any, ...] = ()


def _collect_into(entry: ActiveRelaxedScope | None) -> None:
    global _collector, _installed, _shown_by
    with _lock:
        _collector = entry
        if entry is not None and not _installed:
            # Every such warning reaches the hook, even one already shown from that line.
            warnings.filterwarnings("always", message=_TEXT, category=UserWarning)
            if warnings.showwarning is not _show:
                _shown_by = warnings.showwarning
                warnings.showwarning = _show
            _installed = True
        elif entry is None and _installed:
            filters: list[Any] = warnings.filters  # type: ignore[assignment]
            filters[:] = [item for item in filters if not _is_ours(item)]
            if warnings.showwarning is _show:
                warnings.showwarning = _shown_by
            _installed = False


def _is_ours(item: tuple[Any, ...]) -> bool:
    pattern = item[1]
    return item[0] == "always" and getattr(pattern, "pattern", None) == _TEXT


def _show(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    previous, entry = _shown_by, _collector
    found = _MESSAGE.match(str(message)) if issubclass(category, UserWarning) else None
    if found is None or entry is None:
        previous(message, category, filename, lineno, file, line)
        return
    frame = _warned_from(filename, lineno)
    op = found.group(1)
    if op not in entry._ops:
        where = _user_line(frame)
        entry._ops.setdefault(op, NondeterministicOp(op, *(where or (filename, lineno))))
    module = frame.f_globals.get("__name__", "") if frame is not None else ""
    if _would_show(message, category, filename, lineno, module):
        previous(message, category, filename, lineno, file, line)


def _would_show(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, module: str
) -> bool:
    """What the filters other than ours decide for this warning: show it, hide it or raise it."""
    global _shown_under
    text = str(message)
    filters = [item for item in warnings.filters if not _is_ours(item)]
    action: str = getattr(warnings, "defaultaction", "default")
    for kind, pattern, of, in_module, at_line in filters:
        if (
            _matches(pattern, text)
            and issubclass(category, of)
            and _matches(in_module, module)
            and at_line in (0, lineno)
        ):
            action = kind
            break
    if action == "ignore":
        return False
    if action == "error":
        raise message if isinstance(message, Warning) else category(message)
    # The registries of the warnings module, kept here: once per line, module or process.
    key = {
        "default": (text, category, filename, lineno),
        "module": (text, category, filename),
        "once": (text, category),
    }.get(action)
    if key is None:  # "always"
        return True
    under = (id(warnings.filters), *filters)
    with _lock:
        if under != _shown_under:
            _shown.clear()
            _shown_under = under
        if key in _shown:
            return False
        _shown.add(key)
    return True


def _matches(pattern: Any, value: str) -> bool:
    # As the warnings module matches: None matches all, a string itself only.
    if pattern is None or isinstance(pattern, str):
        return pattern is None or pattern == value
    return pattern.match(value) is not None


def _warned_from(filename: str, lineno: int) -> FrameType | None:
    """The frame the warning was issued from (the hook's callers are the warnings module's)."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename == filename and frame.f_lineno == lineno:
            return frame
        frame = frame.f_back
    return None


def _user_line(frame: FrameType | None) -> tuple[str, int] | None:
    """The first line from ``frame`` outwards outside torch, seedscope and the standard library."""
    user = user_frame(frame)
    return None if user is None else (user.f_code.co_filename, user.f_lineno)
