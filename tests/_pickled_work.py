"""Decorated functions and methods that test_pickling ships to other processes.

A function pickles by reference, so the process that loads one imports it from
here: these must live in a module of their own, importable in a spawned child.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from seedscope import current_scope, deterministic, isolated, private_stream

SEED = 5


def expected() -> float:
    """What one draw inside ``deterministic(SEED)`` returns."""
    return random.Random(SEED).random()


@deterministic(SEED)
def draw(_: object = None) -> float:
    return random.random()


@deterministic(SEED)
def batches(n: int) -> Iterator[float]:
    for _ in range(n):
        yield random.random()


@deterministic(SEED)
async def draw_later() -> float:
    return random.random()


@isolated()
@deterministic(SEED)
def draw_nested(_: object = None) -> float:
    return random.random()


@private_stream(SEED)
def draw_from_stream(_: object = None) -> float:
    return random.random()


def undecorated(_: object = None) -> float:
    return random.random()


def scope_in_use(_: object = None) -> str:
    """The scope this runs in, as its repr (its seed and options)."""
    active = current_scope()
    return repr(None if active is None else active.scope)


class Sampler:
    """Each way of decorating a method, each drawing once in ``deterministic(SEED)``."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    @deterministic(SEED)
    def draw(self, _: object = None) -> float:
        return self.offset + random.random()

    @deterministic(SEED)
    @classmethod
    def draw_from_class(cls, _: object = None) -> float:
        return random.random()

    @classmethod
    @deterministic(SEED)
    def draw_from_class_inside(cls, _: object = None) -> float:
        return random.random()

    @deterministic(SEED)
    @staticmethod
    def draw_static(_: object = None) -> float:
        return random.random()

    @staticmethod
    @deterministic(SEED)
    def draw_static_inside(_: object = None) -> float:
        return random.random()
