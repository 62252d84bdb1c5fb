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
import functools
import inspect
import unittest
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import wrapt

from ._scope import ActiveScope, Scope, _entry_seed, _leave, _resume, _stack, _suspend

if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from typing import TypeAlias

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

    def __enter__(self) -> None:
        region = self._region
        self._base = len(_stack.get())
        if isinstance(region, Scope):
            if not self._group:
                self._group = [
                    ActiveScope(region, _entry_seed(region) if region._seeding else None)
                ]
            _resume(self._group)
            return
        self._group[:1] = [region._claim()]
        try:
            _resume(self._group)
        except BaseException:
            region._release()
            raise

    def __exit__(self, *exc_info: object) -> None:
        try:
            head = self._group[0]
            group = [entry for entry in _stack.get()[self._base :] if entry._live]
            if group and group[0] is head:
                self._group = group
                _suspend(group)
            elif group:  # the step exited its own entry out of order: nothing to keep
                self._group = []
                _leave(group, keep_inner=False)
        finally:
            if not isinstance(self._region, Scope):
                self._region._release()


def _drive(step: AbstractContextManager[Any], inner: _Steppable) -> Generator[Any, Any, Any]:
    """``yield from inner``, with every step of ``inner`` run in the scope's own state."""
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        try:
            with step:
                if to_throw is None:
                    value = inner.send(to_send)
                else:
                    exc, to_throw = to_throw, None
                    value = inner.throw(exc)
        except StopIteration as stop:
            return stop.value
        try:
            to_send = yield value
        except GeneratorExit:
            with step:
                inner.close()
            raise
        except BaseException as exc:
            to_throw = exc


class _SteppedAwaitable:
    """An awaitable that awaits ``inner`` one step at a time in the stepper's state."""

    __slots__ = ("_inner", "_step")

    def __init__(self, step: AbstractContextManager[Any], inner: Any) -> None:
        self._step = step
        self._inner = inner

    def __await__(self) -> Generator[Any, Any, Any]:
        return _drive(self._step, self._inner)


def _step_for(scope: _Region) -> AbstractContextManager[Any]:
    """What runs each step of a generator or coroutine: a stepper of its own."""
    return _Stepper(scope)


def _plain_call(
    scope: _Region, wrapped: Callable[..., _T], instance: object, args: Any, kwargs: Any
) -> _T:
    with scope:
        return wrapped(*args, **kwargs)


def _generator_call(
    scope: _Region, wrapped: Callable[..., Any], instance: object, args: Any, kwargs: Any
) -> Generator[Any, Any, Any]:
    return _drive(_step_for(scope), wrapped(*args, **kwargs))


def _coroutine_call(
    scope: _Region, wrapped: Callable[..., Any], instance: object, args: Any, kwargs: Any
) -> Coroutine[Any, Any, Any]:
    async def run(awaitable: Awaitable[Any]) -> Any:
        return await _SteppedAwaitable(_step_for(scope), awaitable)

    return run(wrapped(*args, **kwargs))


async def _async_generator(scope: _Region, agen: Any) -> AsyncGenerator[Any, Any]:
    # One _Stepper for the whole generator: each asend/athrow/aclose awaitable
    # is itself stepped, so the state persists between the generator's steps.
    step = _step_for(scope)

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
    return wrapt.FunctionWrapper(target, functools.partial(call, scope))
