"""check_reproducible: several calls, each in a fresh scope, compared through nested results."""

from __future__ import annotations

import dataclasses
import functools
import random
from collections import namedtuple
from typing import Any

import numpy as np
import pytest
import torch
from conftest import GlobalState, snapshot_global_state

from seedscope import Mismatch, ReproducibilityResult, check_reproducible, deterministic


@dataclasses.dataclass
class Metrics:
    loss: list[float]
    accuracy: float


Pair = namedtuple("Pair", ["left", "right"])


def training_step(scale: float = 1.0, *, noise: bool = True) -> dict[str, Any]:
    """A nested result that draws from every global stream."""
    weights = torch.randn(3, 4) * scale
    return {
        "loss": [random.random() for _ in range(5)],
        "weights": weights,
        "features": np.random.rand(2, 3),
        "metrics": Metrics(loss=[float(weights.sum())], accuracy=0.5),
        "pair": Pair(torch.arange(3), "label"),
        "tags": ("a", 1, None, b"x", 2.5 + 1j),
        "vocabulary": {"cat", "dog"},
    }


def test_seeded_nested_results_are_reproducible() -> None:
    result = check_reproducible(training_step, 2.0, noise=True, runs=3, seed=11)
    assert result
    assert isinstance(result, ReproducibilityResult)
    assert (result.reproducible, result.runs, result.seed, result.mismatch) == (True, 3, 11, None)
    assert str(result) == "reproducible: 3 runs with seed 11 agree"


def test_each_run_is_a_fresh_scope_with_the_seed() -> None:
    seen = []

    def record() -> float:
        seen.append(random.random())
        return seen[-1]

    assert check_reproducible(record, seed=4)
    with deterministic(4):
        expected = random.random()
    assert seen == [expected, expected]


def test_global_state_is_untouched(snapshot: Any) -> None:
    before: GlobalState = snapshot()
    check_reproducible(training_step)
    assert snapshot_global_state() == before


def planted(run_to_differ: int, change: Any) -> Any:
    """training_step, with ``change`` applied to its result in run ``run_to_differ``."""
    calls = iter(range(1, 100))

    def fn() -> dict[str, Any]:
        out = training_step()
        if next(calls) == run_to_differ:
            change(out)
        return out

    return fn


def test_planted_mismatch_is_named_by_path_with_both_values() -> None:
    def change(out: dict[str, Any]) -> None:
        out["loss"][3] = float(np.nextafter(out["loss"][3], 2.0))

    result = check_reproducible(planted(2, change), seed=0)
    assert not result
    mismatch = result.mismatch
    assert isinstance(mismatch, Mismatch)
    assert mismatch.path == 'out["loss"][3]'
    assert mismatch.reason == "values differ"
    assert mismatch.runs == (1, 2)
    with deterministic(0):
        expected = [random.random() for _ in range(5)][3]
    assert (mismatch.first, mismatch.second) == (expected, float(np.nextafter(expected, 2.0)))
    assert str(result) == (
        f'not reproducible with seed 0: out["loss"][3]: values differ: {expected!r} in run 1, '
        f"{mismatch.second!r} in run 2"
    )


def _set(key: str, value: Any) -> Any:
    return lambda out: out.__setitem__(key, value(out) if callable(value) else value)


# What a later run changes, and the mismatch it must produce (first=None: not checked).
DIFFERENCES = {
    "tensor element": (
        lambda o: o["weights"].__setitem__((2, 1), 7.0),
        ('out["weights"][2, 1]', "values differ", None, 7.0),
    ),
    "array element": (
        lambda o: o["features"].__setitem__((1, 2), -1.0),
        ('out["features"][1, 2]', "values differ", None, -1.0),
    ),
    "dataclass field": (
        lambda o: o["metrics"].loss.append(1.0),
        ('out["metrics"].loss', "lengths differ", 1, 2),
    ),
    "named tuple field": (
        _set("pair", Pair(torch.arange(3), "other")),
        ('out["pair"].right', "values differ", "label", "other"),
    ),
    "dtype": (
        _set("weights", lambda o: o["weights"].double()),
        ('out["weights"]', "dtypes differ", torch.float32, torch.float64),
    ),
    "shape": (
        _set("weights", lambda o: o["weights"].T),
        ('out["weights"]', "shapes differ", (3, 4), (4, 3)),
    ),
    "extra key": (_set("extra", 1), ('out["extra"]', "key in one run only", None, 1)),
    "set item": (
        lambda o: o["vocabulary"].add("eel"),
        ('out["vocabulary"]', "sets differ (items in one only)", [], ["eel"]),
    ),
    "type": (
        _set("tags", lambda o: list(o["tags"])),
        ('out["tags"]', "types differ", tuple, list),
    ),
    "float attribute": (
        lambda o: o["metrics"].__setattr__("accuracy", 0.25),
        ('out["metrics"].accuracy', "values differ", 0.5, 0.25),
    ),
}


@pytest.mark.parametrize(("change", "expected"), DIFFERENCES.values(), ids=DIFFERENCES.keys())
def test_differences_anywhere_in_the_nesting(change: Any, expected: tuple[Any, ...]) -> None:
    path, reason, first, second = expected
    result = check_reproducible(planted(2, change))
    assert not result
    mismatch = result.mismatch
    assert mismatch is not None
    assert (mismatch.path, mismatch.reason) == (path, reason)
    if first is not None:
        assert mismatch.first == first
    assert mismatch.second == second


def test_bit_for_bit_by_default_and_tolerance_on_request() -> None:
    def change(out: dict[str, Any]) -> None:
        out["weights"] += 1e-6
        out["loss"][0] += 1e-12

    assert not check_reproducible(planted(2, change))
    assert check_reproducible(planted(2, change), atol=1e-5)
    assert check_reproducible(planted(2, change), rtol=1e-3, atol=1e-5)
    signed_zero = iter([0.0, -0.0])
    result = check_reproducible(lambda: {"x": torch.tensor([next(signed_zero)])})
    assert result.mismatch is not None
    assert result.mismatch.path == 'out["x"][0]'
    signed_zero = iter([0.0, -0.0])
    assert check_reproducible(lambda: next(signed_zero), atol=1e-9)
    assert check_reproducible(lambda: [float("nan"), torch.tensor(float("nan"))])


def test_mismatch_in_a_later_run_names_that_run() -> None:
    def change(out: dict[str, Any]) -> None:
        out["tags"] = ("b", *out["tags"][1:])

    result = check_reproducible(planted(3, change), runs=4)
    assert result.mismatch is not None
    assert (result.mismatch.path, result.mismatch.runs, result.runs) == (
        'out["tags"][0]',
        (1, 3),
        3,
    )
    assert "in run 1, 'b' in run 3" in str(result.mismatch)


def test_a_result_reused_between_runs_cannot_agree_by_accident() -> None:
    shared: list[float] = []

    def appends() -> list[float]:
        shared.append(random.random())
        return shared

    result = check_reproducible(appends)
    assert result.mismatch is not None
    assert result.mismatch.reason == "lengths differ"


def test_tensors_in_an_autograd_graph_and_modules() -> None:
    def forward() -> dict[str, Any]:
        layer = torch.nn.Linear(3, 2)
        loss = layer(torch.randn(4, 3)).sum()
        return {"loss": loss, "layer": layer}

    assert check_reproducible(forward)
    unseeded = iter([torch.nn.Linear(3, 2) for _ in range(2)])  # made outside any scope
    result = check_reproducible(lambda: next(unseeded))
    assert result.mismatch is not None
    assert result.mismatch.path.startswith('out.state_dict()["weight"][0, 0]')


def test_plain_objects_are_compared_by_attribute() -> None:
    class Box:
        def __init__(self, value: float) -> None:
            self.value = value

    assert check_reproducible(lambda: Box(random.random()))
    counter = iter(range(10))
    result = check_reproducible(lambda: Box(next(counter)))
    assert result.mismatch is not None
    assert result.mismatch.path == "out.value"


def test_arguments_pass_through_and_partial_reaches_reserved_names() -> None:
    def fn(a: int, b: int = 0, *, seed: int = 0, runs: int = 0) -> tuple[int, int, int, int]:
        return a, b, seed, runs

    assert check_reproducible(fn, 1, b=2)
    assert check_reproducible(functools.partial(fn, seed=5, runs=9), 1)


def test_seed_defaults_to_seedscope_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEDSCOPE_SEED", "23")
    assert check_reproducible(random.random).seed == 23
    monkeypatch.delenv("SEEDSCOPE_SEED")
    assert check_reproducible(random.random).seed == 0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"runs": 1}, ValueError),
        ({"runs": True}, ValueError),
        ({"runs": 2.0}, ValueError),
        ({"seed": -1}, ValueError),
        ({"seed": "1"}, TypeError),
        ({"atol": -1.0}, ValueError),
        ({"rtol": float("nan")}, ValueError),
        ({"atol": "0"}, TypeError),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        check_reproducible(random.random, **kwargs)
    with pytest.raises(TypeError, match="fn must be callable"):
        check_reproducible(42)  # type: ignore[arg-type]


def test_exceptions_from_fn_propagate_and_state_is_restored(snapshot: Any) -> None:
    before = snapshot()

    def boom() -> None:
        random.random()
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        check_reproducible(boom)
    assert snapshot_global_state() == before
