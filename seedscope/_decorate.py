"""``@deterministic`` and ``@isolated``: dispatch on what is being decorated.

Plain callables run each call inside the scope. Generators and coroutines are
different: they suspend, and while suspended the caller and other tasks run.
Holding one scope open across a suspension would seed the caller's draws and
let them shift the generator's later values, so instead each *step* (each
``send``, ``throw`` or ``close``) resumes the generator's own saved state and
suspends it again afterwards. Classes are not passed through wrapt (it would
return a proxy): ``unittest.TestCase`` subclasses get their ``run`` wrapped.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import inspect
import pickle
import sys
import unittest
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Protocol, SupportsIndex, TypeVar

import wrapt

from ._scope import ActiveScope, Scope, _leave, _new_entry, _resume, _stack, _suspend

if TYPE_CHECKING:
    from typing import TypeAlias

    from typing_extensions import Self

    from ._streams import PrivateStream

    _Region: TypeAlias = "Scope | PrivateStream"

__all__ = ["decorate"]

_T = TypeVar("_T")


class _Steppable(Protocol):
    def send(self, value: Any, /) -> Any: ...
    def throw(self, exc: BaseException, /) -> Any: ...
    def close(self) -> Any: ...


class _Stepper:
    """Runs one step at a time of a generator or coroutine inside its own scope state.

    A step may open scopes of its own and hold them across a ``yield`` or
    ``await`` (``with isolated(): yield x``). At the end of the step all of
    them are suspended together with the generator's entry, and the next step
    brings them all back, in the order they were entered.
    """

    __slots__ = ("_base", "_group", "_region")

    def __init__(self, region: _Region) -> None:
        self._region = region
        # The generator's entry first, then the scopes its last step left open.
        self._group: list[ActiveScope] = []
        self._base = 0

    def run(self, step: Callable[..., Any], *args: Any) -> tuple[Any, BaseException | None]:
        """``step(*args)`` in the generator's own state; the caller's is back however it ends.

        Returns what the step returned or raised (``StopIteration`` ends every
        generator), so that what this raises is an interruption and nothing else.
        Not a ``with`` block: one reports its line to trace functions before
        calling ``__exit__``, and an exception raised there would leave the
        generator's state in place. Here the handler suspends whatever is still live.
        """
        try:
            self._resume()
            outcome = _outcome(step, *args)
            self._suspend()
        except BaseException:
            self._suspend()
            raise
        return outcome

    def _resume(self) -> None:
        region = self._region
        self._base = len(_stack.get())
        if isinstance(region, Scope):
            if not self._group:
                self._group = [_new_entry(region)]
        else:
            self._group[:1] = [region._claim(self)]
        _resume(self._group)

    def _suspend(self) -> None:
        """Suspend what the step left live, and give the stream back; safe to repeat."""
        if self._group and self._group[0]._live:
            head = self._group[0]
            group = [entry for entry in _stack.get()[self._base :] if entry._live]
            if group and group[0] is head:
                self._group = group
                _suspend(group)
            else:  # the step exited its own entry out of order: nothing to keep
                self._group = []
                _leave(group, keep=())
        region = self._region
        if not isinstance(region, Scope) and not (self._group and self._group[0]._live):
            region._release(self)


def _outcome(step: Callable[..., Any], *args: Any) -> tuple[Any, BaseException | None]:
    """What ``step(*args)`` returns or raises, as a value."""
    try:
        return step(*args), None
    except BaseException as exc:  # StopIteration ends every generator: not an interruption
        return None, exc


def _drive(step: _Stepper, inner: _Steppable) -> Generator[Any, Any, Any]:
    """``yield from inner``, with every step of ``inner`` run in the scope's own state."""
    to_send: Any = None
    to_throw: BaseException | None = None
    try:
        while True:
            if to_throw is None:
                value, error = step.run(inner.send, to_send)
            elif isinstance(to_throw, GeneratorExit):
                _, error = step.run(inner.close)
                raise error or to_throw
            else:
                value, error = step.run(inner.throw, to_throw)
            if isinstance(error, StopIteration):
                return error.value
            if error is not None:
                raise error
            to_send, to_throw = yield from _receive(value)
    except BaseException:
        # Interrupted on a line of this loop, between steps: close inner in its
        # own state now, so that the scopes it holds exit where they belong
        # instead of when it is garbage-collected, outside of any step.
        if not _finished(inner):
            step.run(inner.close)
        raise


def _receive(value: Any) -> Generator[Any, Any, tuple[Any, BaseException | None]]:
    """Yield ``value``; return what was sent back, or what was thrown in.

    Apart from ``_drive`` because a ``try:`` line there would be outside its
    handler: CPython raises what a trace function raises on a nested ``try:``
    line past the enclosing ``try``'s handlers.
    """
    try:
        return (yield value), None
    except BaseException as exc:
        return None, exc


def _finished(inner: object) -> bool:
    """Whether a generator or coroutine has run to its end (or is not one: nothing to close)."""
    frame = getattr(inner, "gi_frame", getattr(inner, "cr_frame", None))
    return frame is None


class _SteppedAwaitable:
    """An awaitable that awaits ``inner`` one step at a time in the stepper's state."""

    __slots__ = ("_inner", "_step")

    def __init__(self, step: _Stepper, inner: Any) -> None:
        self._step = step
        self._inner = inner

    def __await__(self) -> Generator[Any, Any, Any]:
        return _drive(self._step, self._inner)


def _plain_call(
    scope: _Region, wrapped: Callable[..., _T], instance: object, args: Any, kwargs: Any
) -> _T:
    with scope:
        return wrapped(*args, **kwargs)


def _generator_call(
    scope: _Region, wrapped: Callable[..., Any], instance: object, args: Any, kwargs: Any
) -> Generator[Any, Any, Any]:
    return _drive(_Stepper(scope), wrapped(*args, **kwargs))


def _coroutine_call(
    scope: _Region, wrapped: Callable[..., Any], instance: object, args: Any, kwargs: Any
) -> Coroutine[Any, Any, Any]:
    async def run(awaitable: Awaitable[Any]) -> Any:
        return await _SteppedAwaitable(_Stepper(scope), awaitable)

    return run(wrapped(*args, **kwargs))


async def _async_generator(scope: _Region, agen: Any) -> AsyncGenerator[Any, Any]:
    # One _Stepper for the whole generator: each asend/athrow/aclose awaitable
    # is itself stepped, so the state persists between the generator's steps.
    step = _Stepper(scope)

    def stepped(awaitable: Any) -> _SteppedAwaitable:
        return _SteppedAwaitable(step, awaitable)

    try:
        value = await stepped(agen.asend(None))
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                await stepped(agen.aclose())
                raise
            except BaseException as exc:
                value = await stepped(agen.athrow(exc))
            else:
                value = await stepped(agen.asend(sent))
    except StopAsyncIteration:
        return


def _async_generator_call(
    scope: _Region, wrapped: Callable[..., Any], instance: object, args: Any, kwargs: Any
) -> AsyncGenerator[Any, Any]:
    return _async_generator(scope, wrapped(*args, **kwargs))


def _decorate_test_case(scope: _Region, cls: type[unittest.TestCase]) -> Any:
    # TestCase.run covers setUp, the test, tearDown and cleanups, and returns
    # normally even when setUp raises or the test is skipped.
    for name in ("run", "debug"):
        original = getattr(cls, name)

        @functools.wraps(original)
        def in_scope(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with scope:
                # IsolatedAsyncioTestCase (3.11+) runs setUp, the test and tearDown
                # in a context copied when the case was made, before this scope
                # was entered: give that context this scope's stack for the run.
                context = getattr(self, "_asyncioTestContext", None)
                if not isinstance(context, contextvars.Context):
                    return __original(self, *args, **kwargs)
                token = context.run(_stack.set, _stack.get())
                try:
                    return __original(self, *args, **kwargs)
                finally:
                    context.run(_stack.reset, token)

        setattr(cls, name, in_scope)
    return cls


class _BoundScopedFunction(wrapt.BoundFunctionWrapper[..., Any]):
    """A decorated method as looking it up returns it: bound to an instance or a class.

    Bound wrappers are made at each lookup, so they pickle as the lookup,
    ``getattr(holder, name)``, as bound methods do.
    """

    def _lookup(self) -> tuple[object, str]:
        holder = self._self_instance
        # Class and static methods belong to the class, whatever they were looked up on.
        if holder is None or self._self_binding in ("classmethod", "staticmethod"):
            holder = self._self_owner
        if holder is None:
            raise pickle.PicklingError(f"Can't pickle {self!r}: bound to no instance or class")
        return holder, self.__name__

    def __reduce__(self) -> tuple[Any, ...]:
        return getattr, self._lookup()

    def __reduce_ex__(self, protocol: SupportsIndex, /) -> tuple[Any, ...]:
        return self.__reduce__()

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, Any], /) -> Any:
        # As for a bound method: the instance is copied, the function is not.
        holder, name = self._lookup()
        return getattr(copy.deepcopy(holder, memo), name)


class _ScopedFunction(wrapt.FunctionWrapper[..., Any]):
    """What decorating a callable returns: it pickles and copies as a function does.

    wrapt's proxies refuse to pickle or copy, since they cannot know how. A
    function is pickled by reference, by module and qualified name, and a
    copy of it is the function itself.
    """

    __bound_function_wrapper__ = _BoundScopedFunction
    _self_scope: _Region

    def __init__(self, scope: _Region, target: Any, call: Callable[..., Any]) -> None:
        super().__init__(target, functools.partial(call, scope))
        self._self_scope = scope

    def __reduce__(self) -> str | tuple[Any, ...]:
        name = getattr(self, "__qualname__", None)
        if isinstance(name, str) and _found_at(self.__module__, name) is self:
            return name  # decorated where defined: pickle saves it as a global
        # Decorated where it is used, ``pool.map(deterministic(1)(work), ...)``: the
        # scope and the target, decorated again when loaded. A target that
        # pickles by reference and cannot be found (a local function, a lambda)
        # fails here as it fails undecorated.
        return self._self_scope, (self.__wrapped__,)

    def __reduce_ex__(self, protocol: SupportsIndex, /) -> str | tuple[Any, ...]:
        return self.__reduce__()

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, Any], /) -> Self:
        return self


def _found_at(module: object, qualname: str) -> object:
    """What ``pickle`` finds at ``module`` and ``qualname`` (``None`` if nothing)."""
    found: object = sys.modules.get(module) if isinstance(module, str) else None
    for part in qualname.split("."):
        if found is None:
            break
        found = getattr(found, part, None)
    return found


def decorate(scope: _Region, target: Any) -> Any:
    """Wrap ``target`` so that it runs in ``scope``; see :meth:`Scope.__call__`."""
    if isinstance(target, type):
        if issubclass(target, unittest.TestCase):
            return _decorate_test_case(scope, target)
        raise TypeError(
            f"{scope!r} cannot decorate the class {target.__qualname__}: only "
            "unittest.TestCase subclasses are supported; decorate its methods instead "
            "(for pytest test classes, each test method, or use the pytest marker)"
        )
    function = target.__func__ if isinstance(target, (classmethod, staticmethod)) else target
    if not callable(function):
        raise TypeError(
            f"{scope!r} can decorate functions, methods, generators, coroutines and "
            f"unittest.TestCase classes, not {type(target).__name__} {target!r}"
        )
    if inspect.isasyncgenfunction(function):
        call: Callable[..., Any] = _async_generator_call
    elif inspect.iscoroutinefunction(function):
        call = _coroutine_call
    elif inspect.isgeneratorfunction(function):
        call = _generator_call
    else:
        call = _plain_call
    return _ScopedFunction(scope, target, call)
