"""Nested scopes: last in, first out; each exit resumes the scope around it mid-stream."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from conftest import GlobalState, Streams

from seedscope import Scope, current_scope, deterministic, isolated

Snapshot = Callable[[], GlobalState]


def test_leaving_an_inner_scope_resumes_the_outer_scopes_stream(streams: Streams) -> None:
    expected = streams.recipe(10, 2)
    with deterministic(10):
        a = streams.draw()
        with deterministic(20):
            streams.draw()
            streams.draw()
        b = streams.draw()
    assert [a, b] == expected


def test_an_inner_scope_draws_its_own_stream(streams: Streams) -> None:
    expected = streams.recipe(20, 2)
    with deterministic(10):
        streams.draw()
        with deterministic(20):
            inner = [streams.draw(), streams.draw()]
    assert inner == expected


def test_isolated_inside_a_scope_continues_and_then_rewinds_its_stream(
    streams: Streams,
) -> None:
    expected = streams.recipe(10, 3)
    with deterministic(10):
        a = streams.draw()
        with isolated():
            inside = [streams.draw(), streams.draw()]
        b = streams.draw()
    assert a == expected[0]
    assert inside == expected[1:]
    assert b == expected[1]


def test_three_levels_unwind_in_order(streams: Streams, snapshot: Snapshot) -> None:
    outer_expected = streams.recipe(1, 2)
    middle_expected = streams.recipe(2, 2)
    before = snapshot()
    with deterministic(1):
        o1 = streams.draw()
        with deterministic(2):
            m1 = streams.draw()
            with deterministic(3):
                streams.draw()
            m2 = streams.draw()
        o2 = streams.draw()
    assert [o1, o2] == outer_expected
    assert [m1, m2] == middle_expected
    assert snapshot() == before


def test_leaving_an_inner_strict_scope_restores_the_outer_scopes_settings() -> None:
    with deterministic(1):
        with deterministic(2, strict=True):
            assert torch.are_deterministic_algorithms_enabled()
        assert not torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic is True


@pytest.mark.parametrize(
    ("make_outer", "make_inner", "outer_name", "inner_name"),
    [
        (
            lambda: deterministic(1),
            lambda: deterministic(2),
            "deterministic(1)",
            "deterministic(2)",
        ),
        (
            isolated,
            lambda: deterministic(2, strict=True),
            "isolated()",
            "deterministic(2, strict=True)",
        ),
    ],
)
def test_leaving_scopes_out_of_order_raises_naming_them_and_leaves_nothing_seeded(
    snapshot: Snapshot,
    streams: Streams,
    make_outer: Callable[[], Scope],
    make_inner: Callable[[], Scope],
    outer_name: str,
    inner_name: str,
) -> None:
    before = snapshot()
    outer, inner = make_outer(), make_inner()
    outer.__enter__()
    inner.__enter__()
    streams.draw()

    with pytest.raises(RuntimeError) as info:
        outer.__exit__(None, None, None)

    message = str(info.value)
    assert outer_name in message
    assert inner_name in message
    assert snapshot() == before
    assert current_scope() is None
    with pytest.raises(RuntimeError, match="not active"):
        inner.__exit__(None, None, None)
    assert snapshot() == before


def test_one_scope_object_can_be_entered_recursively(streams: Streams) -> None:
    expected = streams.recipe(3, 2)
    scope = deterministic(3)
    with scope as outer:
        x = streams.draw()
        with scope as inner:
            y = streams.draw()
            assert current_scope() is inner
        assert current_scope() is outer
        z = streams.draw()
    assert inner is not outer
    assert inner.scope is outer.scope is scope
    assert x == y == expected[0]
    assert z == expected[1]


def test_one_isolated_object_can_be_entered_recursively(streams: Streams) -> None:
    expected = streams.recipe(5, 3)
    scope = isolated()
    streams.seed(5)
    with scope:
        a = streams.draw()
        with scope:
            b = streams.draw()
        c = streams.draw()
    d = streams.draw()
    assert [a, b] == expected[:2]
    assert c == expected[1]
    assert d == expected[0]


def test_current_scope_is_the_innermost_entry() -> None:
    assert current_scope() is None
    with deterministic(1) as outer:
        assert current_scope() is outer
        with isolated() as middle:
            assert current_scope() is middle
            with deterministic(2, strict=True) as inner:
                assert current_scope() is inner
                assert inner.strict
                assert inner.seed == 2
            assert current_scope() is middle
            assert middle.seed is None
        assert current_scope() is outer
        assert not outer.strict
    assert current_scope() is None
