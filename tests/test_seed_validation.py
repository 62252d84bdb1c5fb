"""Bad seeds and options fail loudly, before any global state changes."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import GlobalState, Streams

from seedscope import Source, current_scope, deterministic, isolated

Snapshot = Callable[[], GlobalState]

ALLOWED_RANGE = ("4294967295", "2**32 - 1")


class Box(Source):
    name = "box"

    def __init__(self) -> None:
        self.value: Any = "outer"

    def capture(self) -> Any:
        return self.value

    def seed(self, seed: int) -> None:
        self.value = seed

    def restore(self, state: Any) -> None:
        self.value = state


@pytest.mark.parametrize(
    "seed",
    [True, False, np.bool_(True), 1.0, 2.5, np.float64(3.0), "1", b"1", [1], (1,), {1: 1}, 1j],
    ids=repr,
)
def test_a_seed_that_is_not_an_integer_raises_type_error(snapshot: Snapshot, seed: Any) -> None:
    before = snapshot()
    with pytest.raises(TypeError) as info:
        deterministic(seed)
    message = str(info.value)
    assert repr(seed) in message
    assert all(part in message for part in ALLOWED_RANGE)
    assert snapshot() == before


@pytest.mark.parametrize(
    "seed", [-1, -(2**40), 2**32, 2**64, np.int64(-1), np.uint64(2**32)], ids=repr
)
def test_a_seed_out_of_range_raises_value_error(snapshot: Snapshot, seed: Any) -> None:
    before = snapshot()
    with pytest.raises(ValueError, match=r"2\*\*32 - 1") as info:
        deterministic(seed, strict=True)
    message = str(info.value)
    assert str(int(seed)) in message
    assert all(part in message for part in ALLOWED_RANGE)
    assert snapshot() == before


@pytest.mark.parametrize("seed", [0, 2**32 - 1, np.int64(7), np.uint32(7), np.int8(7)], ids=repr)
def test_ints_and_numpy_integers_in_range_are_accepted_as_plain_ints(
    streams: Streams, seed: Any
) -> None:
    expected = streams.recipe(int(seed), 1)
    with deterministic(seed) as scope:
        assert type(scope.seed) is int
        assert scope.seed == int(seed)
        assert streams.draw() == expected[0]


def test_seed_none_uses_seedscope_seed(streams: Streams) -> None:
    os.environ["SEEDSCOPE_SEED"] = "31"
    expected = streams.recipe(31, 1)
    with deterministic() as scope:
        assert scope.seed == 31
        assert streams.draw() == expected[0]


def test_seed_none_without_seedscope_seed_is_zero(streams: Streams) -> None:
    os.environ.pop("SEEDSCOPE_SEED", None)
    expected = streams.recipe(0, 1)
    with deterministic(None) as scope:
        assert scope.seed == 0
        assert streams.draw() == expected[0]


def test_seedscope_seed_is_read_at_each_entry() -> None:
    scope = deterministic()
    assert scope.seed is None
    os.environ["SEEDSCOPE_SEED"] = "1"
    with scope as first:
        pass
    os.environ["SEEDSCOPE_SEED"] = "2"
    with scope as second:
        pass
    assert (first.seed, second.seed) == (1, 2)


@pytest.mark.parametrize("value", ["abc", "", "-1", "4294967296", "1.5", "0x10", "True"])
def test_a_bad_seedscope_seed_raises_at_entry_naming_it_and_changes_nothing(
    snapshot: Snapshot, value: str
) -> None:
    os.environ["SEEDSCOPE_SEED"] = value
    scope = deterministic(strict=True)  # the variable is read at entry, not here
    before = snapshot()
    with pytest.raises(ValueError, match="SEEDSCOPE_SEED") as info, scope:
        pytest.fail("the block must not run")
    assert value in str(info.value)
    assert snapshot() == before
    assert current_scope() is None


# Strings int() takes (or, empty, refuses) that are not a seed written with ASCII digits.
NOT_ASCII_DIGITS = [" 5", "5 ", "+5", "-0", "5_000", "\u0663", "\uff15", ""]
SEED_TEXT = "an int in [0, 4294967295] (0 to 2**32 - 1) written with ASCII digits 0-9"


@pytest.mark.parametrize("value", NOT_ASCII_DIGITS, ids=repr)
def test_a_seedscope_seed_not_written_in_ascii_digits_alone_raises_at_entry_and_changes_nothing(
    snapshot: Snapshot, value: str
) -> None:
    os.environ["SEEDSCOPE_SEED"] = value
    message = f"environment variable SEEDSCOPE_SEED must be {SEED_TEXT}, got {value!r}"
    scope = deterministic(strict=True)
    before = snapshot()
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"), scope:
        pytest.fail("the block must not run")
    assert snapshot() == before
    assert current_scope() is None


@pytest.mark.parametrize(
    ("value", "seed"), [("0", 0), ("007", 7), ("4294967295", 2**32 - 1), ("04294967295", 2**32 - 1)]
)
def test_a_seedscope_seed_of_ascii_digits_is_read_as_decimal_leading_zeros_included(
    value: str, seed: int
) -> None:
    os.environ["SEEDSCOPE_SEED"] = value
    with deterministic() as scope:
        assert scope.seed == seed


def test_a_bad_seedscope_seed_does_not_matter_to_an_explicit_seed() -> None:
    os.environ["SEEDSCOPE_SEED"] = "not a number"
    with deterministic(4) as scope:
        assert scope.seed == 4


def test_a_bad_seedscope_seed_does_not_matter_to_isolated() -> None:
    os.environ["SEEDSCOPE_SEED"] = "not a number"
    with isolated() as scope:
        assert scope.seed is None


def test_warn_only_without_strict_raises_value_error() -> None:
    with pytest.raises(ValueError, match="strict=True"):
        deterministic(1, warn_only=True)


@pytest.mark.parametrize("option", ["strict", "warn_only"])
@pytest.mark.parametrize("value", [1, "yes", None])
def test_strict_and_warn_only_must_be_booleans(option: str, value: object) -> None:
    options: dict[str, Any] = {"strict": True, option: value}
    with pytest.raises(TypeError, match=option):
        deterministic(1, **options)


@pytest.mark.parametrize(
    ("sources", "error", "match"),
    [
        ("python", TypeError, "iterable"),
        (Box(), TypeError, "iterable"),
        (["nope"], ValueError, "unknown source 'nope'.*python, numpy, torch"),
        ([3], TypeError, "int 3"),
        ([None], TypeError, "NoneType"),
        ([Box], TypeError, "Box"),
        (["python", "python"], ValueError, "'python' is listed twice"),
    ],
    ids=["bare-name", "bare-source", "unknown-name", "int", "none", "source-class", "twice"],
)
def test_bad_sources_raise_before_any_state_changes(
    snapshot: Snapshot, sources: Any, error: type[Exception], match: str
) -> None:
    before = snapshot()
    with pytest.raises(error, match=match):
        deterministic(1, sources=sources)
    with pytest.raises(error, match=match):
        isolated(sources=sources)
    assert snapshot() == before


def test_the_same_source_object_twice_raises() -> None:
    box = Box()
    with pytest.raises(ValueError, match="'box' is listed twice"):
        deterministic(1, sources=[box, box])


def test_sources_accept_any_iterable() -> None:
    box = Box()
    items: list[str | Source] = ["python", box]
    scope = deterministic(1, sources=(item for item in items))
    assert [source.name for source in scope.sources] == ["python", "box"]
