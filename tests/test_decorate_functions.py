"""``@deterministic`` and ``@isolated`` on plain callables: every call runs in a fresh scope."""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from typing import Any

import pytest
import torch
from _recipe import Draw, draw, nothing, recipe, reseed, stream_after

from seedscope import deterministic, isolated

# Each form of the decorator, with the seed its scope applies (None: isolated).
FORMS: list[Any] = [
    pytest.param(deterministic, 0, id="@deterministic"),
    pytest.param(deterministic(), 0, id="@deterministic()"),
    pytest.param(deterministic(7), 7, id="@deterministic(7)"),
    pytest.param(deterministic(seed=7, strict=True), 7, id="@deterministic(seed=7, strict=True)"),
    pytest.param(isolated, None, id="@isolated"),
    pytest.param(isolated(), None, id="@isolated()"),
]
SEEDED = [form for form in FORMS if form.values[1] is not None]


def as_function(decorate: Any) -> Callable[[], list[Draw]]:
    @decorate
    def two_draws() -> list[Draw]:
        return [draw(), draw()]

    return two_draws


def as_method(decorate: Any) -> Callable[[], list[Draw]]:
    class Model:
        @decorate
        def two_draws(self) -> list[Draw]:
            assert isinstance(self, Model)
            return [draw(), draw()]

    return Model().two_draws


def as_classmethod(decorate: Any) -> Callable[[], list[Draw]]:
    class Model:
        @decorate
        @classmethod
        def two_draws(cls) -> list[Draw]:
            assert cls is Model
            return [draw(), draw()]

    return Model.two_draws


def as_staticmethod(decorate: Any) -> Callable[[], list[Draw]]:
    class Model:
        @decorate
        @staticmethod
        def two_draws() -> list[Draw]:
            return [draw(), draw()]

    return Model().two_draws


def as_lambda(decorate: Any) -> Callable[[], list[Draw]]:
    return decorate(lambda: [draw(), draw()])  # type: ignore[no-any-return]


TARGETS = [
    pytest.param(as_function, id="function"),
    pytest.param(as_method, id="method"),
    pytest.param(as_classmethod, id="classmethod"),
    pytest.param(as_staticmethod, id="staticmethod"),
    pytest.param(as_lambda, id="lambda"),
]


@pytest.fixture(autouse=True)
def no_seed_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEEDSCOPE_SEED", raising=False)


@pytest.mark.parametrize("make", TARGETS)
@pytest.mark.parametrize(("decorate", "seed"), SEEDED)
def test_every_call_draws_the_recipe_stream(
    decorate: Any, seed: int, make: Callable[[Any], Callable[[], list[Draw]]]
) -> None:
    expected = recipe(seed, 2)
    decorated = make(decorate)
    reseed(99)
    assert decorated() == expected
    assert decorated() == expected


@pytest.mark.parametrize("make", TARGETS)
@pytest.mark.parametrize(("decorate", "seed"), FORMS)
def test_the_callers_streams_are_unchanged_after_a_call(
    decorate: Any, seed: int | None, make: Callable[[Any], Callable[[], list[Draw]]]
) -> None:
    decorated = make(decorate)
    assert stream_after(decorated) == stream_after(nothing)


@pytest.mark.parametrize("make", TARGETS)
@pytest.mark.parametrize(("decorate", "seed"), FORMS[4:])
def test_isolated_calls_continue_the_callers_stream_and_give_it_back(
    decorate: Any, seed: None, make: Callable[[Any], Callable[[], list[Draw]]]
) -> None:
    decorated = make(decorate)
    reseed(5)
    first, second = decorated(), decorated()
    assert first == second == recipe(5, 2)


@pytest.mark.parametrize(("decorate", "seed"), FORMS)
def test_name_docstring_and_signature_are_preserved(decorate: Any, seed: int | None) -> None:
    def scale(x: float, *, factor: int = 2) -> float:
        """Multiply x by factor."""
        return x * factor

    class Model:
        @decorate
        def forward(self, x: float, *, factor: int = 2) -> float:
            """Run the model."""
            return x * factor

    decorated = decorate(scale)
    assert decorated.__name__ == "scale"
    assert decorated.__qualname__ == scale.__qualname__
    assert decorated.__doc__ == "Multiply x by factor."
    assert inspect.signature(decorated) == inspect.signature(scale)
    assert decorated(3.0, factor=3) == 9.0
    assert Model.forward.__name__ == "forward"
    assert Model.forward.__doc__ == "Run the model."
    assert (
        str(inspect.signature(Model().forward)) == "(x: 'float', *, factor: 'int' = 2) -> 'float'"
    )


def test_bare_deterministic_reads_SEEDSCOPE_SEED_at_each_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decorated = as_function(deterministic)
    assert decorated() == recipe(0, 2)
    monkeypatch.setenv("SEEDSCOPE_SEED", "11")
    assert decorated() == recipe(11, 2)


def test_strict_functions_see_deterministic_algorithms_only_inside() -> None:
    @deterministic(seed=7, strict=True)
    def algorithms_enabled() -> bool:
        return torch.are_deterministic_algorithms_enabled()

    @deterministic(7)
    def algorithms_enabled_without_strict() -> bool:
        return torch.are_deterministic_algorithms_enabled()

    assert not torch.are_deterministic_algorithms_enabled()
    assert algorithms_enabled()
    assert not torch.are_deterministic_algorithms_enabled()
    assert not algorithms_enabled_without_strict()


def test_arguments_and_return_values_pass_through() -> None:
    @deterministic(7)
    def combine(a: int, b: int = 0, *rest: int, **named: int) -> tuple[Any, ...]:
        return a, b, rest, named

    assert combine(1, 2, 3, 4, k=5) == (1, 2, (3, 4), {"k": 5})


def test_a_raising_call_still_restores_the_callers_streams() -> None:
    @deterministic(7)
    def draws_then_fails() -> None:
        draw()
        raise ValueError("boom")

    def call() -> None:
        with pytest.raises(ValueError, match="boom"):
            draws_then_fails()

    assert stream_after(call) == stream_after(nothing)


def test_a_decorated_call_inside_another_leaves_the_outer_stream_in_place() -> None:
    @deterministic(8)
    def inner() -> list[Draw]:
        return [draw(), draw()]

    @deterministic(7)
    def outer() -> tuple[Draw, list[Draw], Draw]:
        return draw(), inner(), draw()

    seven, eight = recipe(7, 2), recipe(8, 2)
    assert outer() == (seven[0], eight, seven[1])


def test_classmethods_bind_the_class_they_are_called_on() -> None:
    class Base:
        @deterministic(7)
        @classmethod
        def create(cls) -> tuple[type, float]:
            return cls, random.random()

    class Child(Base):
        pass

    assert Child.create() == (Child, recipe(7, 2)[0][0])
    assert Child().create()[0] is Child


@pytest.mark.parametrize("decorate", [deterministic(7), isolated(), isolated])
def test_a_plain_class_is_refused_by_name(decorate: Any) -> None:
    class Trainer:
        pass

    with pytest.raises(TypeError, match=r"cannot decorate the class .*Trainer: only unittest"):
        decorate(Trainer)


def test_bare_deterministic_refuses_a_plain_class_by_name() -> None:
    class Trainer:
        pass

    with pytest.raises(TypeError, match="Trainer"):
        deterministic(Trainer)  # type: ignore[type-var]


@pytest.mark.parametrize("target", [3.5, "not a function", None, [1, 2]])
@pytest.mark.parametrize("decorate", [deterministic(7), isolated()])
def test_a_non_callable_is_refused_by_name(decorate: Any, target: object) -> None:
    with pytest.raises(TypeError, match="can decorate functions") as raised:
        decorate(target)
    assert repr(target) in str(raised.value)
    assert type(target).__name__ in str(raised.value)
