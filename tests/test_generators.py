"""``deterministic(seed, generators=[...])``: generator objects the user owns."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import pytest
import torch

from seedscope import derive_seed, deterministic, isolated


def make_generators() -> list[Any]:
    return [
        torch.Generator().manual_seed(100),
        np.random.default_rng(101),
        np.random.Generator(np.random.Philox(102)),
        np.random.RandomState(103),
        random.Random(104),
    ]


def draw(generators: list[Any]) -> list[float]:
    torch_gen, pcg, philox, legacy, py = generators
    return [
        torch.rand((), generator=torch_gen).item(),
        float(pcg.random()),
        float(philox.random()),
        float(legacy.rand()),
        py.random(),
    ]


def test_each_generator_is_seeded_from_its_own_derived_seed() -> None:
    generators = make_generators()
    with deterministic(7, generators=generators):
        inside = draw(generators)
    seeds = [derive_seed(7, "generators", i) for i in range(5)]
    expected = draw(
        [
            torch.Generator().manual_seed(seeds[0]),
            np.random.default_rng(seeds[1]),
            np.random.Generator(np.random.Philox(seeds[2])),
            np.random.RandomState(seeds[3]),
            random.Random(seeds[4]),
        ]
    )
    assert inside == expected
    assert len(set(seeds)) == 5
    assert 7 not in seeds  # no generator repeats the global streams of seed 7


def test_generators_are_restored_on_exit() -> None:
    generators = make_generators()
    expected = draw(make_generators())
    with deterministic(7, generators=generators):
        draw(generators)
    assert draw(generators) == expected


def test_generators_are_restored_when_the_block_raises() -> None:
    generators = make_generators()
    expected = draw(make_generators())

    @deterministic(7, generators=generators)
    def fails() -> None:
        draw(generators)
        raise KeyError

    with pytest.raises(KeyError):
        fails()
    assert draw(generators) == expected


def test_the_global_streams_are_seeded_as_without_generators() -> None:
    with deterministic(3):
        plain = (random.random(), np.random.rand(), torch.rand(()).item())
    with deterministic(3, generators=make_generators()):
        with_generators = (random.random(), np.random.rand(), torch.rand(()).item())
    assert plain == with_generators


def test_isolated_restores_generators_without_seeding_them() -> None:
    generators = make_generators()
    expected = draw(make_generators())
    with isolated(generators=generators):
        assert draw(generators) == expected  # not reseeded
        draw(generators)
    assert draw(generators) == expected


def test_nested_scopes_give_each_other_the_generator_back() -> None:
    gen = torch.Generator().manual_seed(0)
    with deterministic(1, generators=[gen]):
        outer_first = torch.rand(2, generator=gen)
        with deterministic(2, generators=[gen]):
            torch.rand(5, generator=gen)
        outer_second = torch.rand(2, generator=gen)
    with deterministic(1, generators=[gen]):
        assert torch.equal(torch.rand(4, generator=gen), torch.cat([outer_first, outer_second]))


def test_a_decorated_generator_function_keeps_its_generator_state_between_steps() -> None:
    gen = random.Random(0)

    @deterministic(5, generators=[gen])
    def numbers() -> Generator[float, None, None]:
        while True:
            yield gen.random()

    stepped = numbers()
    first = next(stepped)
    caller = gen.random()  # between steps the caller has its own state
    second = next(stepped)
    expected = random.Random(derive_seed(5, "generators", 0))
    assert [first, second] == [expected.random(), expected.random()]
    assert caller == random.Random(0).random()


def test_threads_entering_one_scope_each_get_their_own_generator_state() -> None:
    # Two threads, each with its own generator, share one scope object.
    scope_generators = [random.Random(1)]
    scope = deterministic(9, generators=scope_generators)
    results: list[float] = []

    def run() -> None:
        with scope:
            results.append(scope_generators[0].random())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    run()
    assert results[0] == results[1]
    assert scope_generators[0].random() == random.Random(1).random()


@pytest.mark.parametrize(
    ("generators", "error", "message"),
    [
        (torch.Generator(), TypeError, r"generators must be a list .*wrap a single one"),
        ("abc", TypeError, r"generators must be a list"),
        ([object()], TypeError, r"items must be a torch.Generator, numpy.random.Generator"),
        ([random.SystemRandom()], TypeError, r"SystemRandom .* no state"),
        ([np.random.PCG64(1)], TypeError, r"items must be a"),
    ],
)
def test_invalid_generators_are_refused_when_the_scope_is_made(
    generators: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        deterministic(1, generators=generators)


def test_a_generator_listed_twice_is_refused(snapshot: Callable[[], Any]) -> None:
    gen = random.Random(1)
    before = snapshot()
    with pytest.raises(ValueError, match="listed twice"):
        deterministic(1, generators=[gen, gen])
    assert snapshot() == before


def test_the_scope_reports_its_generators() -> None:
    generators = make_generators()
    scope = deterministic(4, generators=generators)
    assert scope.generators == tuple(generators)
    assert [s.name for s in scope.sources[-5:]] == [f"generators[{i}]" for i in range(5)]
    assert repr(scope) == "deterministic(4, generators=[5 generators])"
    assert repr(isolated(generators=generators[:1])) == "isolated(generators=[1 generators])"
    assert deterministic(4).generators == ()


def test_a_numpy_generator_with_the_mt19937_bit_generator() -> None:
    gen = np.random.Generator(np.random.MT19937(0))
    with deterministic(2, generators=[gen]):
        value = gen.random()
    assert value == np.random.Generator(np.random.MT19937(derive_seed(2, "generators", 0))).random()


def test_the_seed_of_each_entry_is_used() -> None:
    gen = torch.Generator()
    scope = deterministic(None, generators=[gen])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEEDSCOPE_SEED", "11")
        with scope:
            value = torch.rand((), generator=gen).item()
    expected = torch.Generator().manual_seed(derive_seed(11, "generators", 0))
    assert value == torch.rand((), generator=expected).item()
