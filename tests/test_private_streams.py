"""``private_stream``: a seeded stream that continues where it stopped at each entry."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import pytest
import torch

from seedscope import PrivateStream, current_scope, derive_seed, deterministic, private_stream


def draw() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), torch.rand(()).item()


def continuous(seed: int, n: int) -> list[tuple[float, float, float]]:
    """What ``n`` draws give in one entry of ``deterministic(seed)``."""
    with deterministic(seed):
        return [draw() for _ in range(n)]


def test_each_call_continues_the_stream() -> None:
    @private_stream(7)
    def augment() -> tuple[float, float, float]:
        return draw()

    assert [augment() for _ in range(4)] == continuous(7, 4)


def test_a_plain_deterministic_decorator_repeats_itself_instead() -> None:
    @deterministic(7)
    def same() -> tuple[float, float, float]:
        return draw()

    assert same() == same()


def test_the_same_in_every_run() -> None:
    def run() -> list[tuple[float, float, float]]:
        stream = private_stream(3)
        out = []
        for _ in range(3):
            with stream:
                out.append(draw())
        return out

    assert run() == run()


def test_the_callers_streams_are_untouched(streams: Any) -> None:
    augment = private_stream(7)(draw)
    streams.seed(1)
    mixed = []
    for _ in range(3):
        mixed.append(draw())
        augment()
    assert mixed == streams.recipe(1, 3)


def test_the_callers_state_in_a_scope_is_untouched() -> None:
    stream = private_stream(7)
    with deterministic(1):
        expected = [draw() for _ in range(2)]
    with deterministic(1):
        first = draw()
        with stream:
            draw()
        assert [first, draw()] == expected


def test_an_exception_keeps_the_stream_state_and_restores_the_caller() -> None:
    stream = private_stream(7)

    @stream
    def fails() -> None:
        draw()
        raise KeyError

    random.seed(2)
    with pytest.raises(KeyError):
        fails()
    assert random.random() == random.Random(2).random()
    with stream:
        second = draw()
    assert second == continuous(7, 2)[1]


def test_reset_starts_the_stream_again() -> None:
    stream = private_stream(7)
    with stream:
        first = draw()
    stream.reset()
    assert stream.seed is None
    with stream:
        assert draw() == first


def test_seed_none_is_read_at_the_first_entry_and_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = private_stream()
    monkeypatch.setenv("SEEDSCOPE_SEED", "5")
    with stream as active:
        first = draw()
    assert active.seed == stream.seed == 5
    monkeypatch.setenv("SEEDSCOPE_SEED", "6")
    with stream:
        second = draw()
    assert [first, second] == continuous(5, 2)


def test_a_stream_serves_one_entry_at_a_time(snapshot: Callable[[], Any]) -> None:
    stream = private_stream(7)
    with stream:
        before = snapshot()
        with pytest.raises(RuntimeError, match="already active"):
            stream.__enter__()
        assert snapshot() == before
        assert stream.active


def test_another_thread_cannot_enter_an_active_stream() -> None:
    stream = private_stream(7)
    errors: list[BaseException] = []

    def enter() -> None:
        try:
            with stream:
                pass
        except RuntimeError as exc:
            errors.append(exc)

    with stream:
        thread = threading.Thread(target=enter)
        thread.start()
        thread.join()
    assert len(errors) == 1


def test_a_stream_exited_out_of_order_exits_what_is_inside_it_and_raises() -> None:
    stream = private_stream(7)
    scope = deterministic(1)
    random.seed(3)
    stream.__enter__()
    scope.__enter__()
    with pytest.raises(RuntimeError, match="reverse order"):
        stream.__exit__(None, None, None)
    assert not stream.active
    assert current_scope() is None
    after = random.random()
    random.seed(3)
    assert after == random.random()
    with pytest.raises(RuntimeError, match="not active"):
        scope.__exit__(None, None, None)


def test_a_decorated_generator_function_continues_the_stream_across_calls() -> None:
    @private_stream(7)
    def numbers(n: int) -> Generator[float, None, None]:
        for _ in range(n):
            yield random.random()

    values = [*numbers(2), *numbers(2)]
    assert values == [d[0] for d in continuous(7, 4)]


def test_async_with() -> None:
    stream = private_stream(7)

    async def main() -> list[tuple[float, float, float]]:
        out = []
        for _ in range(2):
            async with stream:
                out.append(draw())
                await asyncio.sleep(0)
        return out

    assert asyncio.run(main()) == continuous(7, 2)


def test_options_are_those_of_deterministic() -> None:
    gen = torch.Generator()
    stream = private_stream(7, sources=["python"], generators=[gen])
    np.random.seed(0)
    with stream:
        random.random()
        assert np.random.rand() == np.random.RandomState(0).rand()  # numpy not managed
        first = torch.rand((), generator=gen).item()
    with stream:
        second = torch.rand((), generator=gen).item()
    expected = torch.Generator().manual_seed(derive_seed(7, "generators", 0))
    assert [first, second] == torch.rand(2, generator=expected).tolist()
    assert repr(stream) == "private_stream(7, generators=[1 generators])"
    assert isinstance(stream, PrivateStream)


def test_per_rank_streams_differ_by_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    values = []
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        with private_stream(7, per_rank=True) as active:
            values.append(random.random())
        assert active.seed == derive_seed(7, "rank", int(rank))
    assert values[0] != values[1]


# -- saving a stream in a checkpoint ----------------------------------------------------


def test_state_dict_round_trip_continues_in_a_new_stream() -> None:
    stream = private_stream(7)
    with stream:
        draw()
    state = json.loads(json.dumps(stream.state_dict()))
    assert state["format"] == "seedscope.private_stream"
    assert state["seed"] == 7
    resumed = private_stream(7)
    resumed.load_state_dict(state)
    with resumed:
        assert draw() == continuous(7, 2)[1]


def test_a_fresh_stream_saves_as_not_started() -> None:
    state = private_stream(7).state_dict()
    assert state["seed"] is None
    assert set(state["sources"].values()) == {None}
    loaded = private_stream(7)
    loaded.load_state_dict(state)
    with loaded:
        assert draw() == continuous(7, 1)[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(format="x"), "not a seedscope private stream"),
        (lambda s: s.update(version=2), "version 2 is not supported"),
        (lambda s: s.update(seed=-1), r"'seed' must be in \[0, 4294967295\]"),
        (lambda s: s["sources"].pop("numpy"), "missing 'numpy'"),
        (lambda s: s["sources"]["python"].update(pos=10**6), r"part 'python'.*'pos'"),
        (lambda s: s.update(seed=None), "has source states but no 'seed'"),
    ],
)
def test_a_corrupt_stream_state_is_refused_and_changes_nothing(
    change: Callable[[dict[str, Any]], Any], message: str
) -> None:
    stream = private_stream(7)
    with stream:
        draw()
    state = json.loads(json.dumps(stream.state_dict()))
    change(state)
    with pytest.raises(ValueError, match=message):
        stream.load_state_dict(state)
    with stream:
        assert draw() == continuous(7, 2)[1]  # still where it was


def test_an_active_stream_cannot_be_saved_loaded_or_reset() -> None:
    stream = private_stream(7)
    with stream:
        for action in (stream.state_dict, stream.reset, lambda: stream.load_state_dict({})):
            with pytest.raises(RuntimeError, match="while it is active"):
                action()
