"""The engine: validate, capture, push, seed; then pop and restore.

A :class:`Scope` is an immutable, reusable configuration. Each time it is
entered the engine makes an :class:`ActiveScope`, a record that holds the
states it saved, and pushes it on a stack kept in a context variable (so each
thread and each asyncio task has its own). Nothing about an entry is ever
stored on the configuration, which is what lets one scope object be entered
recursively, from several threads, and from many generators at once.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from . import _imports
from ._errors import ConcurrentScopesWarning, RestoreError
from ._seed import seed_from_environment, validate_seed
from .sources import Source, resolve_sources

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["ActiveScope", "Scope", "current_scope", "deterministic", "isolated"]

_Target = TypeVar(
    "_Target", bound="Callable[..., Any] | classmethod[Any, Any, Any] | staticmethod[Any, Any]"
)

_Saved = list[tuple[Source, Any]]

_stack: ContextVar[tuple[ActiveScope, ...]] = ContextVar("seedscope_stack", default=())

# Every active entry of every thread and task: to warn when scopes that are
# not nested in each other overlap, and to keep the import hook installed
# exactly while any scope is active.
_lock = threading.Lock()
_active: set[ActiveScope] = set()


class ActiveScope:
    """One entry of a scope: what ``with deterministic(42) as scope`` binds.

    ``seed`` is the seed this entry applied (``None`` for :func:`isolated`).
    """

    __slots__ = ("_inner", "_saved", "scope", "seed")

    def __init__(self, scope: Scope, seed: int | None) -> None:
        self.scope = scope
        self.seed = seed
        self._saved: _Saved = []
        self._inner: dict[Source, Any] = {}

    @property
    def strict(self) -> bool:
        return self.scope.strict

    def __repr__(self) -> str:
        return f"<ActiveScope {self.scope!r} seed={self.seed}>"


def current_scope() -> ActiveScope | None:
    """The innermost active scope of this thread or task, or ``None``."""
    stack = _stack.get()
    return stack[-1] if stack else None


class Scope:
    """A reusable seeded (or isolated) region: context manager and decorator.

    Made by :func:`deterministic` and :func:`isolated`; see those for what it does.
    """

    __slots__ = (
        "_generators",
        "_per_rank",
        "_seed",
        "_seeding",
        "_sources",
        "_strict",
        "_warn_only",
    )

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
    ) -> None:
        for name, flag in (("strict", strict), ("warn_only", warn_only), ("per_rank", per_rank)):
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

    def __repr__(self) -> str:
        owned = f"generators=[{len(self._generators)} generators]" if self._generators else ""
        if not self._seeding:
            return f"isolated({owned})"
        options = "".join(
            f", {name}=True" for name in ("strict", "warn_only", "per_rank") if getattr(self, name)
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
        _exit(_top_of(self))

    async def __aenter__(self) -> ActiveScope:
        return _enter(self)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _exit(_top_of(self))

    # -- decorator ---------------------------------------------------------

    def __call__(self, target: _Target) -> _Target:
        """Run every call (every test, every generator step) of ``target`` in this scope."""
        from ._decorate import decorate

        decorated: _Target = decorate(self, target)
        return decorated

    def __copy__(self) -> Self:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self


# -- the engine ------------------------------------------------------------


def _top_of(scope: Scope) -> ActiveScope:
    stack = _stack.get()
    if not stack:
        raise RuntimeError(f"{scope!r} is not active here: nothing to exit")
    top = stack[-1]
    if top.scope is not scope:
        raise RuntimeError(
            f"scopes must be exited in the reverse order of entry: exiting {scope!r} "
            f"while {top.scope!r}, entered later, is still active"
        )
    return top


def _enter(scope: Scope) -> ActiveScope:
    seed: int | None = None
    if scope._seeding:
        seed = _entry_seed(scope)
    active = ActiveScope(scope, seed)
    active._saved = _capture(scope._sources)
    _push(active)
    if seed is not None:
        try:
            for source, _ in active._saved:
                source.seed(seed)
        except BaseException:
            _pop(active)
            _restore(active._saved)
            raise
    return active


def _entry_seed(scope: Scope) -> int:
    """The seed an entry of a seeding scope applies: the scope's (or $SEEDSCOPE_SEED), per rank."""
    seed = seed_from_environment() if scope._seed is None else scope._seed
    if scope._per_rank:
        from ._derive import derive_seed
        from ._distributed import get_rank

        seed = derive_seed(seed, "rank", get_rank())
    return seed


def _exit(active: ActiveScope) -> None:
    _pop(active)
    restore_all(active._saved)


def _suspend(active: ActiveScope) -> None:
    """Leave a generator's or coroutine's scope at a yield, keeping its state."""
    _pop(active)
    active._inner = {source: source.capture() for source, _ in active._saved}
    restore_all(active._saved)


def _resume(active: ActiveScope) -> None:
    """Re-enter a suspended scope: save the caller's state, bring back the scope's own."""
    active._saved = _capture(active.scope._sources)
    _push(active)
    inner = active._inner
    try:
        for source, _ in active._saved:
            if source in inner:
                source.restore(inner[source])
            elif active.seed is not None:
                source.seed(active.seed)  # imported while the generator was suspended
    except BaseException:
        _pop(active)
        _restore(active._saved)
        raise


def _capture(sources: tuple[Source, ...]) -> _Saved:
    return [(source, source.capture()) for source in sources if source.available()]


def restore_all(saved: _Saved) -> None:
    """Restore every saved state, last captured first; then raise what failed, if anything."""
    errors = _restore(saved)
    if errors:
        raise RestoreError(errors) from errors[0][1]


def _restore(saved: _Saved) -> list[tuple[str, BaseException]]:
    errors: list[tuple[str, BaseException]] = []
    for source, state in reversed(saved):
        try:
            source.restore(state)
        except Exception as exc:  # one failing source must not stop the others
            errors.append((source.name, exc))
    return errors


def _push(active: ActiveScope) -> None:
    stack = _stack.get()
    with _lock:
        # Entries outside this stack belong to another thread or task.
        others = len(_active) - (sum(1 for entry in stack if entry in _active) if stack else 0)
        if not others:
            _register(active, stack)
            return
    # Before anything changes, so a warning raised as an error leaves no trace.
    warnings.warn(
        f"{active.scope!r} entered while {others} scope(s) not enclosing it are active "
        "in other threads or tasks: random state is process-global, so they draw from "
        "each other's streams and none of their results are reproducible",
        ConcurrentScopesWarning,
        stacklevel=4,
    )
    with _lock:
        _register(active, stack)


def _register(active: ActiveScope, stack: tuple[ActiveScope, ...]) -> None:
    """Make ``active`` the innermost scope here (with ``_lock`` held)."""
    _stack.set((*stack, active))
    if len(active._saved) < len(active.scope._sources):
        # Some library is not imported yet: seed it if it is imported now.
        _imports.install(_wants_module, _on_module_imported)
    _active.add(active)


def _pop(active: ActiveScope) -> None:
    stack = _stack.get()
    if not stack or stack[-1] is not active:
        raise RuntimeError(
            f"scopes must be exited in the reverse order of entry: {active.scope!r} "
            "is not the innermost active scope here"
        )
    _stack.set(stack[:-1])
    with _lock:
        _active.discard(active)
        if not _active:
            _imports.uninstall()


def _pending(active: ActiveScope, module: str) -> list[Source]:
    captured = {source for source, _ in active._saved}
    return [s for s in active.scope._sources if s.module == module and s not in captured]


def _wants_module(module: str) -> bool:
    return any(_pending(active, module) for active in _stack.get())


def _on_module_imported(module: str) -> None:
    # Outermost first: each scope saves the state the scope around it left.
    for active in _stack.get():
        for source in _pending(active, module):
            if source.available():
                active._saved.append((source, source.capture()))
                if active.seed is not None:
                    source.seed(active.seed)


# -- public constructors ------------------------------------------------------


def is_decorator_target(value: object) -> bool:
    """Whether ``value`` was passed to a bare ``@deterministic`` (or the like) to decorate."""
    return callable(value) or isinstance(value, (classmethod, staticmethod))


@overload
def deterministic(seed: _Target, /) -> _Target: ...
@overload
def deterministic(
    seed: int | None = None,
    *,
    strict: bool = False,
    warn_only: bool = False,
    sources: Iterable[str | Source] | None = None,
    generators: Iterable[Any] | None = None,
    per_rank: bool = False,
) -> Scope: ...
def deterministic(
    seed: Any = None,
    *,
    strict: bool = False,
    warn_only: bool = False,
    sources: Iterable[str | Source] | None = None,
    generators: Iterable[Any] | None = None,
    per_rank: bool = False,
) -> Any:
    """A scope that seeds all global random state and restores it afterwards.

    On entry it saves the state of ``random``, numpy's global generator, torch's
    CPU generator, every accelerator generator, torch's determinism settings and
    the ``PYTHONHASHSEED`` / ``CUBLAS_WORKSPACE_CONFIG`` environment variables;
    then it seeds them exactly as ``random.seed``, ``np.random.seed`` and
    ``torch.manual_seed`` would, and sets ``cudnn.deterministic = True`` and
    ``cudnn.benchmark = False``. On exit, however the block ends, everything is
    put back.

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
    }
    if is_decorator_target(seed):
        return Scope(None, seeding=True, **options)(seed)
    return Scope(seed, seeding=True, **options)


@overload
def isolated(target: _Target, /) -> _Target: ...
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
