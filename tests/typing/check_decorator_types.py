"""Static checks of the decorator's types: ``mypy --strict tests/typing/check_decorator_types.py``.

Not collected by pytest (the name does not start with ``test_``): mypy is the test.
Every decorated target must keep its own type, so its call sites stay checked.
The targets take positional-only parameters so that their types can be written
as ``Callable[...]`` in ``assert_type``.
"""

from __future__ import annotations

import unittest
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from typing import Any

from typing_extensions import assert_type

from seedscope import (
    ActiveRelaxedScope,
    ActiveScope,
    NondeterministicOp,
    PrivateStream,
    RelaxedScope,
    Scope,
    deterministic,
    isolated,
    private_stream,
    relaxed,
)


def sync(x: int, /) -> float:
    return float(x)


async def coroutine(x: int, /) -> str:
    return str(x)


def generator(n: int, /) -> Generator[int, str, bool]:
    yield n
    return True


async def async_generator(n: int, /) -> AsyncGenerator[int, None]:
    yield n


class Case(unittest.TestCase):
    def test_nothing(self) -> None:
        pass


Sync = Callable[[int], float]
Async = Callable[[int], Coroutine[Any, Any, str]]
Gen = Callable[[int], Generator[int, str, bool]]
AsyncGen = Callable[[int], AsyncGenerator[int, None]]

# -- sync functions ----------------------------------------------------------------

assert_type(deterministic(sync), Sync)
assert_type(deterministic()(sync), Sync)
assert_type(deterministic(7)(sync), Sync)
assert_type(deterministic(seed=7, strict=True)(sync), Sync)
assert_type(isolated(sync), Sync)
assert_type(isolated()(sync), Sync)

# -- coroutine functions ------------------------------------------------------------

assert_type(deterministic(coroutine), Async)
assert_type(deterministic()(coroutine), Async)
assert_type(deterministic(7)(coroutine), Async)
assert_type(deterministic(seed=7, strict=True)(coroutine), Async)
assert_type(isolated(coroutine), Async)
assert_type(isolated()(coroutine), Async)

# -- generator functions -------------------------------------------------------------

assert_type(deterministic(generator), Gen)
assert_type(deterministic()(generator), Gen)
assert_type(deterministic(7)(generator), Gen)
assert_type(deterministic(seed=7, strict=True)(generator), Gen)
assert_type(isolated(generator), Gen)
assert_type(isolated()(generator), Gen)

assert_type(deterministic(async_generator), AsyncGen)
assert_type(deterministic(7)(async_generator), AsyncGen)
assert_type(deterministic(seed=7, strict=True)(async_generator), AsyncGen)
assert_type(isolated(async_generator), AsyncGen)
assert_type(isolated()(async_generator), AsyncGen)

# -- TestCase classes ----------------------------------------------------------------

assert_type(deterministic(Case), type[Case])
assert_type(deterministic()(Case), type[Case])
assert_type(deterministic(7)(Case), type[Case])
assert_type(deterministic(seed=7, strict=True)(Case), type[Case])
assert_type(isolated(Case), type[Case])
assert_type(isolated()(Case), type[Case])

# -- methods, classmethods and staticmethods ----------------------------------------


class Model:
    @deterministic(7)
    def forward(self, x: int, /) -> float:
        return float(x)

    @deterministic(seed=7, strict=True)
    @classmethod
    def create(cls) -> Model:
        return cls()

    @isolated
    @staticmethod
    def helper(x: int, /) -> str:
        return str(x)


assert_type(Model().forward(1), float)
assert_type(Model.create(), Model)
assert_type(Model.helper(1), str)
assert_type(Model().helper(1), str)

# -- scopes ---------------------------------------------------------------------------

assert_type(deterministic(7), Scope)
assert_type(deterministic(), Scope)
assert_type(deterministic(None), Scope)
assert_type(deterministic(seed=7, strict=True, warn_only=True), Scope)
assert_type(isolated(), Scope)

with deterministic(7) as scope:
    assert_type(scope, ActiveScope)
    assert_type(scope.seed, int | None)

with isolated() as isolated_scope:
    assert_type(isolated_scope, ActiveScope)


async def async_with() -> None:
    async with deterministic(7) as scope:
        assert_type(scope, ActiveScope)


# -- private streams and the options of issue 4 ----------------------------------------

assert_type(private_stream(sync), Sync)
assert_type(private_stream(7)(sync), Sync)
assert_type(private_stream(7)(generator), Gen)
assert_type(private_stream(7)(coroutine), Async)
assert_type(private_stream(7), PrivateStream)
assert_type(deterministic(7, generators=[], per_rank=True), Scope)
assert_type(deterministic(7, generators=[])(sync), Sync)
assert_type(isolated(generators=[])(sync), Sync)

with private_stream(7) as stream_entry:
    assert_type(stream_entry, ActiveScope)


# -- relaxed() -------------------------------------------------------------------------

assert_type(relaxed(sync), Sync)
assert_type(relaxed()(sync), Sync)
assert_type(relaxed(warn_only=True)(generator), Gen)
assert_type(relaxed(warn_only=True)(coroutine), Async)
assert_type(relaxed(Case), type[Case])
assert_type(relaxed(), RelaxedScope)

with relaxed(warn_only=True) as relaxed_entry:
    assert_type(relaxed_entry, ActiveRelaxedScope)
    assert_type(relaxed_entry.nondeterministic_ops, tuple[NondeterministicOp, ...])


async def async_relaxed() -> None:
    async with relaxed() as entry:
        assert_type(entry, ActiveRelaxedScope)


# -- what is refused (strict mode flags an unused ignore, so each line must error) ------


def refused() -> None:
    deterministic(7)(3)  # type: ignore[type-var]
    isolated()("not a function")  # type: ignore[type-var]
    deterministic(seed="7")  # type: ignore[call-overload]
    private_stream(7)(3)  # type: ignore[type-var]
