"""The engine: validate, capture, push, seed; then pop and restore.

A :class:`Scope` is an immutable, reusable configuration. Each time it is
entered the engine makes an :class:`ActiveScope`, a record that holds the
states it saved, and pushes it on a stack kept in a context variable (so each
thread and each asyncio task has its own). Nothing about an entry is ever
stored on the configuration, which is what lets one scope object be entered
recursively, from several threads, and from many generators at once.
"""

from __future__ import annotations

import os
import random  # noqa: F401  (before the fork handler below: see there)
import threading
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping
from contextvars import ContextVar
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

from . import _imports
from ._errors import ConcurrentScopesWarning, RestoreError, SeedscopeWarning
from ._seed import seed_from_environment, validate_seed
from .sources import Source, resolve_sources
from .sources.base import state_key

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["ActiveScope", "Scope", "current_scope", "deterministic", "isolated"]

# What a scope decorates; the API reference shows this name in signatures.
Target = TypeVar(
    "Target", bound="Callable[..., Any] | classmethod[Any, Any, Any] | staticmethod[Any, Any]"
)

_Saved = dict[Source, Any]
# What an entry that has never been suspended holds of its own: nothing.
_NO_STATES: Mapping[Source, Any] = MappingProxyType({})

_stack: ContextVar[tuple[ActiveScope, ...]] = ContextVar("seedscope_stack", default=())

# Random state and settings belong to the process; the stacks above belong to
# threads and tasks. ``_entries`` lists every live entry of every thread and
# task in the order they were made (a resumed entry counts as made anew), so
# that an entry that leaves while later ones are live can hand its saved state
# on instead of restoring it: the last one out restores the state from before
# the first one in. Capture, registration and restore all happen under
# ``_lock``, so no entry can save a state that an earlier one is about to undo.
# Reentrant only so that it knows its owner: see ``_locked``.
_lock = threading.RLock()
_entries: list[ActiveScope] = []

_A = TypeVar("_A")
_R = TypeVar("_R")


def _locked(work: Callable[[_A], _R], arg: _A) -> _R:
    """``work(arg)`` with ``_lock`` held, released however and wherever it is interrupted.

    Not ``with _lock:``: a ``with`` statement reports its own line to trace
    functions before it calls ``__exit__``, so an exception raised there
    (a trace function's, or a signal handler's) would leave the lock held.
    Here every line that could be interrupted with the lock held is inside
    the ``try``, and the handler releases the lock if this thread holds it.
    """
    try:
        _lock.acquire()
        result = work(arg)
        _lock.release()
        return result
    except BaseException:
        if _lock._is_owned():  # type: ignore[attr-defined]
            _lock.release()
        raise


class ActiveScope:
    """One entry of a scope: what ``with deterministic(42) as scope`` binds.

    ``seed`` is the seed this entry applied (``None`` for :func:`isolated`).
    """

    __slots__ = ("_entropy", "_forks", "_inner", "_live", "_saved", "scope", "seed")

    def __init__(self, scope: Scope, seed: int | None) -> None:
        self.scope = scope
        self.seed = seed
        # The states from before this entry, to restore (or hand on) when it leaves.
        self._saved: _Saved = {}
        # The entry's own states while it is suspended (a generator between steps).
        self._inner: Mapping[Source, Any] = _NO_STATES
        # In ``_entries`` and on its stack: neither suspended nor left.
        self._live = False
        # How many times this process forked while this entry was innermost.
        self._forks = 0
        # How many times numpy or torch asked for OS entropy while it was innermost.
        self._entropy = 0

    @property
    def strict(self) -> bool:
        return self.scope.strict

    def __repr__(self) -> str:
        return f"<ActiveScope {self.scope!r} seed={self.seed}>"


def live_stack() -> tuple[ActiveScope, ...]:
    """This thread's or task's live entries, outermost first.

    A task copies its creator's stack, suspended entries included; those are
    not live, so they are never current and nothing is seeded on their behalf.
    """
    stack = _stack.get()
    return tuple(entry for entry in stack if entry._live)


def current_scope() -> ActiveScope | None:
    """The innermost active scope of this thread or task, or ``None``.

    An entry suspended at a ``yield`` or ``await`` of a decorated generator or
    coroutine is not active. Entries of :func:`~seedscope.relaxed`, which
    change a setting and no random state, are passed over.
    """
    for entry in reversed(_stack.get()):
        # A settings-only entry leaves seeds, forks and entropy to the scope around it.
        if entry._live and not entry.scope._settings_only:
            return entry
    return None


class Scope:
    """A reusable seeded (or isolated) region: context manager and decorator.

    Made by :func:`deterministic` and :func:`isolated`; see those for what it does.
    """

    __slots__ = (
        "_generators",
        "_os_entropy",
        "_per_rank",
        "_seed",
        "_seeding",
        "_sources",
        "_strict",
        "_warn_only",
    )

    # What each entry is made as: a subclass can start from states of its own
    # instead of a seed (relaxed()). Settings-only scopes touch no random state.
    _entry_type: ClassVar[type[ActiveScope]] = ActiveScope
    _settings_only: ClassVar[bool] = False

    def __init__(
        self,
        seed: int | None,
        *,
        seeding: bool,
        strict: bool,
        warn_only: bool,
        sources: Iterable[str | Source] | None,
        generators: Iterable[Any] | None = None,
        per_rank: bool = False,
        os_entropy: bool = False,
    ) -> None:
        # One chained test in the usual case: a scope is often made per entry
        # (``with deterministic(k):``), so this is on the benchmarked path.
        if not (type(strict) is type(warn_only) is type(per_rank) is type(os_entropy) is bool):
            for name, flag in (
                ("strict", strict),
                ("warn_only", warn_only),
                ("per_rank", per_rank),
                ("os_entropy", os_entropy),
            ):
                if not isinstance(flag, bool):
                    raise TypeError(f"{name} must be True or False, not {flag!r}")
        if warn_only and not strict:
            raise ValueError(
                "warn_only=True only applies to strict mode's deterministic algorithms; "
                "pass strict=True as well"
            )
        self._seed = None if seed is None else validate_seed(seed)
        self._seeding = seeding
        self._strict = strict
        self._warn_only = warn_only
        self._per_rank = per_rank
        self._os_entropy = os_entropy
        self._sources = resolve_sources(sources, strict=strict, warn_only=warn_only)
        self._generators: tuple[Any, ...] = ()
        if generators is not None:
            from ._generators import generator_sources

            owned = generator_sources(generators)
            self._generators = tuple(source.generator for source in owned)
            self._sources += owned

    @property
    def seed(self) -> int | None:
        """The seed given, or ``None`` when it is read from ``SEEDSCOPE_SEED`` at entry."""
        return self._seed

    @property
    def strict(self) -> bool:
        return self._strict

    @property
    def warn_only(self) -> bool:
        return self._warn_only

    @property
    def sources(self) -> tuple[Source, ...]:
        return self._sources

    @property
    def generators(self) -> tuple[Any, ...]:
        """The user-owned generator objects this scope seeds and restores, in order."""
        return self._generators

    @property
    def per_rank(self) -> bool:
        """Whether each entry seeds with ``derive_seed(seed, "rank", rank)``."""
        return self._per_rank

    @property
    def os_entropy(self) -> bool:
        """Whether numpy and torch generators made without a seed keep taking OS entropy.

        ``False`` (the default): inside an entry they take it from
        ``derive_seed(seed, "entropy", n)`` instead (see "Generators made
        without a seed" in the guide).
        """
        return self._os_entropy

    def __repr__(self) -> str:
        owned = f"generators=[{len(self._generators)} generators]" if self._generators else ""
        if not self._seeding:
            return f"isolated({owned})"
        options = "".join(
            f", {name}=True"
            for name in ("strict", "warn_only", "per_rank", "os_entropy")
            if getattr(self, name)
        )
        if owned:
            options += f", {owned}"
        return f"deterministic({self._seed}{options})"

    # -- context manager ---------------------------------------------------

    def __enter__(self) -> ActiveScope:
        return _enter(self)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _exit_scope(self)

    async def __aenter__(self) -> ActiveScope:
        return _enter(self)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _exit_scope(self)

    # -- decorator ---------------------------------------------------------

    def __call__(self, target: Target) -> Target:
        """Run every call (every test, every generator step) of ``target`` in this scope."""
        from ._decorate import decorate

        decorated: Target = decorate(self, target)
        return decorated

    def __copy__(self) -> Self:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self


# -- the engine ------------------------------------------------------------


def _exit_scope(scope: Scope) -> None:
    """Leave the innermost live entry of ``scope`` here, with every entry made inside it."""
    stack = _stack.get()
    if stack and stack[-1].scope is scope and stack[-1]._live:  # the usual case, made cheap
        _leave([stack[-1]], keep=())
        return
    stack = live_stack()
    for index in range(len(stack) - 1, -1, -1):
        if stack[index].scope is scope:
            break
    else:
        raise RuntimeError(f"{scope!r} is not active here: nothing to exit")
    _exit_entry(stack[index], stack[index + 1 :])


def _exit_entry(active: ActiveScope, inside: tuple[ActiveScope, ...]) -> None:
    """Leave ``active``; entries still live ``inside`` it are left first, then reported."""
    _leave([active, *inside], keep=())
    if inside:
        raise RuntimeError(
            f"scopes must be exited in the reverse order of entry: exiting {active.scope!r} "
            f"while {inside[-1].scope!r}, entered later, was still active; both were exited "
            "and everything they changed was restored"
        )


def _enter(scope: Scope) -> ActiveScope:
    """Make, register and seed a new entry of ``scope``; on any failure, undo it all."""
    active = _new_entry(scope)
    _warn_if_overlapping(scope)
    try:
        _locked(_come_in, active)
        return active
    except BaseException:
        _leave([active], keep=())
        raise


def _new_entry(scope: Scope) -> ActiveScope:
    """A new entry of ``scope``, not yet registered, with the seed it applies (if it seeds)."""
    return scope._entry_type(scope, _entry_seed(scope) if scope._seeding else None)


def _entry_seed(scope: Scope) -> int:
    """The seed an entry of a seeding scope applies: the scope's (or $SEEDSCOPE_SEED), per rank."""
    seed = seed_from_environment() if scope._seed is None else scope._seed
    if scope._per_rank:
        from ._derive import derive_seed
        from ._distributed import get_rank

        seed = derive_seed(seed, "rank", get_rank())
    return seed


def _suspend(group: list[ActiveScope]) -> None:
    """Suspend a generator's step: ``group`` keeps its own states and the caller's come back.

    ``group`` is the innermost live entries of this stack, outermost first:
    the generator's own entry and every scope its step opened and left open.
    """
    _leave(group, keep=group)


def _resume(group: list[ActiveScope]) -> None:
    """Bring back a suspended ``group``, outermost first, each over the state around it."""
    _warn_if_overlapping(group[0].scope)
    resumed: list[ActiveScope] = []
    try:
        for active in group:
            resumed.append(active)
            _locked(_come_in, active)
    except BaseException:
        # The generator has not run: its states in ``_inner`` are still right.
        _leave(resumed, keep=())
        raise


def _come_in(active: ActiveScope) -> None:
    """Save the state around ``active``, make it live, then bring in its own state.

    Its own state is what it kept when suspended, else its seed. All with
    ``_lock`` held: a fork must not copy a thread half-way through a library
    call that holds a lock of its own (glibc's ``putenv``, for one).
    """
    active._saved = _capture(active.scope._sources)
    _register(active)
    inner, seed = active._inner, active.seed
    if not inner:
        if seed is not None:
            for source in active._saved:
                source.seed(seed)
        return
    for source in active._saved:
        if source in inner:
            source.restore(inner[source])
        elif seed is not None:
            source.seed(seed)  # imported while the generator was suspended


def _capture(sources: tuple[Source, ...]) -> _Saved:
    return {source: source.capture() for source in sources if source.available()}


def _warn_if_overlapping(scope: Scope) -> None:
    """Warn, before anything changes, when entries of other threads or tasks are live."""
    if not _entries:
        return
    others = len(_entries) - len(live_stack())
    if others <= 0:
        return
    # Before anything changes, so a warning raised as an error leaves no trace.
    warnings.warn(
        f"{scope!r} entered while {others} scope(s) not enclosing it are active "
        "in other threads or tasks: random state is process-global, so they draw from "
        "each other's streams and none of their results are reproducible",
        ConcurrentScopesWarning,
        stacklevel=4,
    )


def _register(active: ActiveScope) -> None:
    """Make ``active`` the innermost live entry here (with ``_lock`` held)."""
    _entries.append(active)
    active._live = True
    _stack.set((*_stack.get(), active))
    if len(active._saved) < len(active.scope._sources):
        # Some library is not imported yet: seed it if it is imported now.
        _imports.install(_wants_module, _on_module_imported)


# -- leaving: whatever interrupts it ---------------------------------------------


_MAX_INTERRUPTIONS = 10


class _Outcome:
    """What restoring collected: ordinary failures, and interruptions (the first is re-raised)."""

    __slots__ = ("failures", "interrupt", "interruptions")

    def __init__(self) -> None:
        self.failures: list[tuple[str, BaseException]] | None = None
        self.interrupt: BaseException | None = None
        self.interruptions = 0

    def interrupted(self, exc: BaseException) -> None:
        self.interruptions += 1
        if self.interrupt is None:
            self.interrupt = exc

    def failed(self, source: Source, exc: BaseException) -> None:
        if self.failures is None:
            self.failures = []
        self.failures.append((source.name, exc))

    def raise_if_any(self) -> None:
        if self.interrupt is not None:
            raise self.interrupt
        if self.failures:
            raise RestoreError(self.failures) from self.failures[0][1]


class _Leaving(_Outcome):
    """Leaving a group: the plan, made first without changing anything, then how far it got.

    Each step is done once and can be run again, so an interrupted step is
    simply run again. (Few objects are made per exit: each one counts towards
    the next garbage collection, which costs more than the rest of the engine.)
    """

    __slots__ = ("done", "group", "handoffs", "inner", "keep", "restores")

    def __init__(self, group: list[ActiveScope], keep: Collection[ActiveScope]) -> None:
        super().__init__()
        self.group = group
        self.keep = keep
        # The plan: states handed on to later entries, the suspended entries'
        # own states, and the states to restore, last first (None until planned).
        self.handoffs: Iterable[tuple[ActiveScope, Source, Any]] = ()
        self.inner: Iterable[tuple[ActiveScope, _Saved]] = ()
        self.restores: _Saved | None = None
        self.done = False

    @property
    def going_on(self) -> bool:
        # An interruption is retried; one that comes back every time (a bug,
        # memory exhausted) must not hold the program in this loop for ever.
        return not self.done and self.interruptions < _MAX_INTERRUPTIONS


def _plan(leaving: _Leaving) -> _Saved:
    """Decide, innermost entry first, where each saved state goes (with ``_lock`` held).

    Returns the states to restore, which it also keeps on ``leaving``, last.
    """
    group = leaving.group
    handoffs: list[tuple[ActiveScope, Source, Any]] = []
    inner: list[tuple[ActiveScope, _Saved]] = []
    # By state key: the source to restore and its state, once the entries so far have left.
    restores: dict[object, tuple[Source, Any]] = {}
    for active in reversed(group):
        if active not in _entries:
            continue  # never registered, so never seeded: nothing to undo
        index = _entries.index(active)
        if len(group) == 1 and index == len(_entries) - 1 and not leaving.keep:
            leaving.restores = active._saved  # the usual exit: nothing to merge or hand on
            return active._saved
        if active in leaving.keep:
            own = {}
            for source in active._saved:
                key = state_key(source)
                own[source] = restores[key][1] if key in restores else source.capture()
            inner.append((active, own))
        # Entries made later in other threads or tasks and still live: the
        # first of them that saved the same state becomes the one to restore
        # it, so that the last one out does.
        later = [e for e in _entries[index + 1 :] if e not in group]
        for source, state in active._saved.items():
            key = state_key(source)
            heir = next(((e, s) for e in later for s in e._saved if state_key(s) == key), None)
            if heir is None:
                restores[key] = (source, state)
            else:
                handoffs.append((heir[0], heir[1], state))
    leaving.handoffs, leaving.inner = handoffs, inner
    leaving.restores = dict(restores.values())
    return leaving.restores


def _commit(leaving: _Leaving) -> None:
    """Take the group off the books (with ``_lock`` held); safe to repeat."""
    group = leaving.group
    for heir, source, state in leaving.handoffs:
        heir._saved[source] = state
    for active, inner in leaving.inner:
        active._inner = inner
    for active in group:
        active._live = False
        if _entries and _entries[-1] is active:
            _entries.pop()
        elif active in _entries:
            _entries.remove(active)
    stack = _stack.get()
    if len(group) == 1 and stack and stack[-1] is group[0]:
        _stack.set(stack[:-1])
    else:
        _stack.set(tuple(entry for entry in stack if entry not in group))
    if not _entries:
        _imports.uninstall()


def _leave(group: list[ActiveScope], *, keep: Collection[ActiveScope]) -> None:
    """Take ``group`` out of this stack and put back (or hand on) every state it saved.

    The entries in ``keep`` are suspended rather than left: each keeps its
    own current state, to be brought back by ``_resume``.

    Whatever interrupts it (``KeyboardInterrupt``, a signal handler that
    raises), it finishes, then re-raises the first interruption. Ordinary
    errors of a source's ``restore`` are collected into one ``RestoreError``.
    """
    leaving = _Leaving(group, keep)
    while leaving.going_on:
        try:
            _locked(_finish_leaving, leaving)
        except BaseException as exc:  # interrupted before the lock was taken, or after
            leaving.interrupted(exc)
    leaving.raise_if_any()


def _finish_leaving(leaving: _Leaving) -> None:
    """Plan, commit and restore, in one hold of ``_lock``: no entry can come in between."""
    while leaving.going_on:
        try:
            restores = leaving.restores
            if restores is None:
                restores = _plan(leaving)
            _commit(leaving)
            _restore_each(restores, leaving)
            leaving.done = True
        except BaseException as exc:
            leaving.interrupted(exc)


def _restore_each(states: _Saved, into: _Outcome) -> None:
    """Restore every state, last saved first; failures and the first interruption go ``into``.

    An interruption mid-way through one source's restore leaves it half
    restored, so that source is restored again (up to three tries in all).
    """
    order = list(reversed(states))
    done = 0
    cut_at, cuts = -1, 0  # which source interruptions cut short, and how often
    while done < len(order):
        try:
            while done < len(order):
                source = order[done]
                try:
                    source.restore(states[source])
                except Exception as exc:  # one failing source must not stop the others
                    into.failed(source, exc)
                done += 1
        except BaseException as exc:
            into.interrupted(exc)
            cut_at, cuts = done, cuts + 1 if cut_at == done else 1
            if cuts >= 3:
                into.failed(order[done], exc)
                done += 1


def restore_all(saved: list[tuple[Source, Any]]) -> None:
    """Restore every saved state, last captured first; then raise what failed, if anything.

    An interruption is re-raised once every source is restored; ordinary
    errors become one :class:`RestoreError`.
    """
    outcome = _Outcome()
    _restore_each(dict(saved), outcome)
    outcome.raise_if_any()


# -- libraries imported inside a scope ---------------------------------------------


def _pending(active: ActiveScope, module: str) -> list[Source]:
    saved = active._saved
    return [s for s in active.scope._sources if s.module == module and s not in saved]


def _wants_module(module: str) -> bool:
    return any(_pending(active, module) for active in live_stack())


def _on_module_imported(module: str) -> None:
    # Outermost first: each scope saves the state the scope around it left.
    for active in live_stack():
        for source in _pending(active, module):
            if source.available():
                active._saved[source] = source.capture()
                if source in active._inner:  # an entry that starts from its own states
                    source.restore(active._inner[source])
                elif active.seed is not None:
                    source.seed(active.seed)


# -- fork ----------------------------------------------------------------------------


def _seeding_entry() -> ActiveScope | None:
    """The innermost live entry here, if it seeds (under ``isolated()`` a fork is left alone)."""
    active = current_scope()
    return active if active is not None and active.seed is not None else None


def _before_fork() -> None:
    # Hold the lock across the fork, so that no other thread is half-way
    # through an entry or exit in the memory the child copies.
    _lock.acquire()
    active = _seeding_entry()
    if active is not None:
        active._forks += 1


def _after_fork_in_parent() -> None:
    _lock.release()


def _after_fork_in_child() -> None:
    # Without this, every child of a fork made inside a scope repeats the
    # parent's numpy and torch streams (and CPython reseeds random from the OS).
    try:
        stack = live_stack()
        # Only the thread that forked lives on in the child: other threads'
        # entries will never leave, and must not inherit anything.
        _entries[:] = [entry for entry in _entries if entry in stack]
        active = _seeding_entry()
        if active is not None:
            _reseed_child(stack, active)
    finally:
        _lock.release()


def _reseed_child(stack: tuple[ActiveScope, ...], active: ActiveScope) -> None:
    """Give this child of a fork made inside ``active`` streams of its own."""
    from ._derive import derive_seed

    assert active.seed is not None
    seed = derive_seed(active.seed, "fork", active._forks)
    # The entries go on in the child under seeds of its own, so that what they
    # seed later (a library first imported here, a nested fork, an unseeded
    # generator) differs from child to child too; forks and requests for
    # entropy are counted afresh in each process.
    for entry in stack:
        if entry.seed is not None:
            entry.seed = seed if entry is active else derive_seed(entry.seed, "fork", seed)
        entry._forks = entry._entropy = 0
    for source in active._saved:
        try:
            source.seed(seed)
        except Exception as exc:  # the other sources must still be reseeded
            warnings.warn(
                f"seedscope could not reseed source {source.name!r} after a fork: {exc!r}; "
                "it goes on with the parent's stream",
                SeedscopeWarning,
                stacklevel=2,
            )


if hasattr(os, "register_at_fork"):
    # After random's own handler (random is imported above), which reseeds from the OS.
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


# -- public constructors ------------------------------------------------------


def is_decorator_target(value: object) -> bool:
    """Whether ``value`` was passed to a bare ``@deterministic`` (or the like) to decorate."""
    return callable(value) or isinstance(value, (classmethod, staticmethod))


@overload
def deterministic(target: Target, /) -> Target: ...
@overload
def deterministic(
    seed: int | None = None,
    *,
    strict: bool = False,
    warn_only: bool = False,
    sources: Iterable[str | Source] | None = None,
    generators: Iterable[Any] | None = None,
    per_rank: bool = False,
    os_entropy: bool = False,
) -> Scope: ...
def deterministic(
    seed: Any = None,
    *,
    strict: bool = False,
    warn_only: bool = False,
    sources: Iterable[str | Source] | None = None,
    generators: Iterable[Any] | None = None,
    per_rank: bool = False,
    os_entropy: bool = False,
) -> Any:
    """A scope that seeds all global random state and restores it afterwards.

    On entry it saves the state of ``random``, numpy's global generator, torch's
    CPU generator, every accelerator generator, torch's determinism settings and
    the ``PYTHONHASHSEED`` / ``CUBLAS_WORKSPACE_CONFIG`` / ``SEEDSCOPE_SEED``
    environment variables; then it seeds them exactly as ``random.seed``,
    ``np.random.seed`` and ``torch.manual_seed`` would, sets
    ``cudnn.deterministic = True`` and ``cudnn.benchmark = False``, and sets
    ``PYTHONHASHSEED`` and ``SEEDSCOPE_SEED`` to the seed for the processes it
    starts. On exit, however the block ends, everything is put back.

    ``seed`` is an int in [0, 2**32 - 1]; ``None`` reads ``SEEDSCOPE_SEED`` at
    entry (0 if unset). ``strict=True`` also turns on deterministic algorithms
    (``warn_only`` as in ``torch.use_deterministic_algorithms``), fills
    uninitialized memory, turns TF32 off and sets ``CUBLAS_WORKSPACE_CONFIG``.

    ``generators`` lists generator objects of your own (``torch.Generator``,
    ``np.random.Generator``, ``np.random.RandomState``, ``random.Random``) to
    seed and restore too; the one at position ``i`` is seeded with
    ``derive_seed(seed, "generators", i)``. ``per_rank=True`` gives each
    process of a multi-process run its own seed, ``derive_seed(seed, "rank",
    rank)``, with the rank read at entry from ``torch.distributed`` (when
    initialized) or ``$RANK``.

    numpy generators made without a seed inside an entry (``default_rng()``,
    ``RandomState()``, ``SeedSequence()``, ``PCG64()``, ...) and
    ``torch.seed()`` take their entropy from ``derive_seed(seed, "entropy",
    n)``, where ``n`` counts such requests in the entry, instead of from the
    operating system; ``os_entropy=True`` leaves them to the operating system.
    ``random.Random()`` is never touched.

    Use it as a context manager, an async context manager, or a decorator
    (``@deterministic``, ``@deterministic(7)``) on functions, coroutines,
    generators and ``unittest.TestCase`` classes.

    >>> import random
    >>> with deterministic(42):
    ...     first = random.random()
    >>> with deterministic(42):
    ...     second = random.random()
    >>> first == second
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
        return Scope(None, seeding=True, **options)(seed)
    return Scope(seed, seeding=True, **options)


@overload
def isolated(target: Target, /) -> Target: ...
@overload
def isolated(
    *, sources: Iterable[str | Source] | None = None, generators: Iterable[Any] | None = None
) -> Scope: ...
def isolated(
    target: Any = None,
    *,
    sources: Iterable[str | Source] | None = None,
    generators: Iterable[Any] | None = None,
) -> Any:
    """A scope that saves and restores global random state without seeding anything.

    For code that only consumes randomness (an evaluation pass inside a
    training loop) and must not shift the caller's streams. ``generators``
    lists generator objects of your own to save and restore as well.

    >>> import random
    >>> random.seed(1)
    >>> with isolated():
    ...     _ = [random.random() for _ in range(10)]
    >>> after = random.random()
    >>> random.seed(1)
    >>> after == random.random()
    True
    """
    scope = Scope(
        None, seeding=False, strict=False, warn_only=False, sources=sources, generators=generators
    )
    if target is None:
        return scope
    return scope(target)
