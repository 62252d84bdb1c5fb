"""Interrupts that land anywhere in the engine: every state is still given back.

A ``KeyboardInterrupt`` (Ctrl-C, or a signal handler that raises) can land
on any line. Leaving a scope finishes whatever interrupts it and then
re-raises the first interruption; entering one undoes what it did. A trace
function that raises at the n-th line seedscope runs, for every n, shows it
line by line; a timer signal shows it at random moments.
"""

from __future__ import annotations

import math
import os
import random
import signal
import sys
import threading
from collections.abc import Callable, Generator
from types import FrameType
from typing import Any

import numpy as np
import pytest
from conftest import GlobalState

import seedscope
from seedscope import (
    RestoreError,
    Source,
    _imports,
    _scope,
    current_scope,
    deterministic,
    isolated,
    private_stream,
)

PACKAGE = os.path.dirname(seedscope.__file__)


class Injected(BaseException):
    """What the trace function raises: not an Exception, like KeyboardInterrupt."""


class RaiseAtLine:
    """A trace function that raises at the ``n``-th line event in seedscope's own code."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.where: tuple[str, int] | None = None

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Any:
        if not frame.f_code.co_filename.startswith(PACKAGE):
            return None
        return self.local

    def local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and self.where is None:
            self.count += 1
            if self.count == self.n:
                code = frame.f_code
                self.where = (getattr(code, "co_qualname", code.co_name), frame.f_lineno)
                raise Injected(self.where)
        return self.local


def with_block() -> None:
    with deterministic(1, strict=True):
        random.random()


def nested_blocks() -> None:
    with deterministic(1, strict=True), isolated(), deterministic(2):
        np.random.rand()


@deterministic(1, strict=True)
def holding_generator() -> Generator[float, None, None]:
    with isolated():
        yield random.random()
        yield random.random()


def generator_steps() -> None:
    for _ in holding_generator():
        pass


def stream_block() -> None:
    with private_stream(3):
        random.random()


SCENARIOS: dict[str, Callable[[], None]] = {
    "with_block": with_block,
    "nested_blocks": nested_blocks,
    "generator_steps": generator_steps,
    "stream_block": stream_block,
}

# Where an interrupt lands before the engine has begun to leave: the first
# line of __exit__, which a with statement calls, the few lines leading to the
# part of the engine that finishes whatever interrupts it, and a decorated
# generator's own lines between steps. Nothing has changed yet there and the
# scope is still fully active, so leaving it again restores it all.
BEFORE_LEAVING = {
    "Scope.__exit__",
    "PrivateStream.__exit__",
    "live_stack",
    "live_stack.<locals>.<genexpr>",
    "_exit_scope",
    "_exit_entry",
    "_leave",
    "_Outcome.__init__",
    "_Leaving.__init__",
    "_Leaving.going_on",
    "_drive",
}


def lock_is_free() -> bool:
    """Whether another thread could take the engine's lock now."""
    free: list[bool] = []

    def probe() -> None:
        free.append(_scope._lock.acquire(blocking=False))
        if free[0]:
            _scope._lock.release()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return free[0]


def assert_engine_idle() -> None:
    assert lock_is_free(), "the engine's lock was left held"
    assert current_scope() is None
    assert _scope._entries == []
    assert _imports._finder is None
    assert not [f for f in sys.meta_path if isinstance(f, _imports.ImportWatch)], (
        "an import hook was left on sys.meta_path"
    )


def assert_interrupt_or_unwinding(raised: BaseException | None, kind: type) -> None:
    """``raised`` is the interrupt, or the error of an exit that found a scope left active.

    An interrupt at an inner ``__exit__``'s first line leaves that scope
    active; the next ``__exit__`` of the same with statement finds it, exits
    both, restores everything, and says so, with the interrupt as context.
    """
    if isinstance(raised, RuntimeError):
        assert "reverse order" in str(raised), raised
        raised = raised.__context__
    assert isinstance(raised, kind), raised


def leave_what_is_left() -> list[str]:
    """Exit every scope an interrupt left active, innermost first; return their names."""
    left = []
    while (active := current_scope()) is not None:
        left.append(repr(active.scope))
        active.scope.__exit__(None, None, None)
    return left


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_an_interrupt_at_any_line_of_the_engine_leaves_no_state_behind(
    snapshot: Callable[[], GlobalState], scenario: str
) -> None:
    run = SCENARIOS[scenario]
    run()  # import and cache everything once, so every run takes the same path
    before = snapshot()
    landed = left_active = 0
    for n in range(1, 100_000):
        tracer = RaiseAtLine(n)
        raised: BaseException | None = None
        sys.settrace(tracer)
        try:
            run()
        except (Injected, RuntimeError) as exc:
            raised = exc
        finally:
            sys.settrace(None)
        if tracer.where is None:
            break  # past the last line: every line has had its interrupt
        assert_interrupt_or_unwinding(raised, Injected)
        landed += 1
        left = leave_what_is_left()
        assert not left or tracer.where[0] in BEFORE_LEAVING, (tracer.where, left)
        left_active += bool(left)
        assert_engine_idle()
        assert snapshot() == before, f"state changed by an interrupt at {tracer.where}"
    assert landed > 50
    assert left_active < landed / 10


class InterruptsRestore(Source):
    """A source with no state: its first ``times`` restores raise ``KeyboardInterrupt``."""

    name = "interrupts-restore"

    def __init__(self, times: float) -> None:
        self.times = times
        self.restores = 0

    def capture(self) -> Any:
        return None

    def seed(self, seed: int) -> None:
        pass

    def restore(self, state: Any) -> None:
        self.restores += 1
        if self.restores <= self.times:
            raise KeyboardInterrupt


def test_an_interrupt_during_one_sources_restore_still_restores_the_others(
    snapshot: Callable[[], GlobalState],
) -> None:
    interrupting = InterruptsRestore(times=1)
    before = snapshot()
    # Restored last-captured first: the interrupt comes before python's restore.
    scope = deterministic(1, strict=True, sources=["python", "numpy", "torch", interrupting])
    with pytest.raises(KeyboardInterrupt), scope:
        random.random()
    assert snapshot() == before
    assert current_scope() is None
    assert interrupting.restores == 2


def test_a_source_that_always_interrupts_is_reported_after_three_tries(
    snapshot: Callable[[], GlobalState],
) -> None:
    interrupting = InterruptsRestore(times=math.inf)
    before = snapshot()
    with pytest.raises(KeyboardInterrupt), deterministic(1, sources=["python", interrupting]):
        random.random()
    assert interrupting.restores == 3
    assert snapshot() == before
    assert_engine_idle()


def test_ordinary_restore_errors_still_raise_restore_error_after_restoring_the_rest(
    snapshot: Callable[[], GlobalState],
) -> None:
    class Fails(Source):
        name = "fails"

        def capture(self) -> Any:
            return None

        def seed(self, seed: int) -> None:
            pass

        def restore(self, state: Any) -> None:
            raise OSError("disk gone")

    before = snapshot()
    failing = deterministic(1, sources=["python", "numpy", Fails()])
    with pytest.raises(RestoreError, match="fails: OSError: disk gone"), failing:
        random.random()
    assert snapshot() == before


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_timer_interrupts_at_random_moments_leave_no_state_behind(
    snapshot: Callable[[], GlobalState],
) -> None:
    """One SIGALRM per round, at a random moment of entering and leaving strict scopes."""
    assert threading.current_thread() is threading.main_thread()

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    before = snapshot()
    pick = random.Random(0)
    interrupted = 0
    try:
        for _ in range(400):
            try:
                signal.setitimer(signal.ITIMER_REAL, pick.uniform(1e-5, 6e-4))
                for _ in range(4):
                    with deterministic(1, strict=True), isolated():
                        pass
                signal.setitimer(signal.ITIMER_REAL, 0)
            except (KeyboardInterrupt, RuntimeError) as exc:
                assert_interrupt_or_unwinding(exc, KeyboardInterrupt)
                interrupted += 1
            signal.setitimer(signal.ITIMER_REAL, 0)
            leave_what_is_left()
            assert_engine_idle()
            assert snapshot() == before
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert interrupted > 100


def test_a_step_that_can_never_be_suspended_raises_instead_of_retrying_for_ever(
    snapshot: Callable[[], GlobalState],
) -> None:
    class CapturesOnce(Source):
        """Suspending a step captures the generator's own state: this source cannot."""

        name = "captures-once"

        def __init__(self) -> None:
            self.captures = 0

        def capture(self) -> Any:
            self.captures += 1
            if self.captures > 1:
                raise OSError("device gone")

        def seed(self, seed: int) -> None:
            pass

        def restore(self, state: Any) -> None:
            pass

    @deterministic(1, sources=["python", CapturesOnce()])
    def steps() -> Generator[float, None, None]:
        yield random.random()

    before = snapshot()
    with pytest.raises(OSError, match="device gone"):
        next(steps())
    leave_what_is_left()
    assert_engine_idle()
    assert snapshot() == before


def test_a_generator_interrupted_between_steps_closes_in_its_own_state(
    snapshot: Callable[[], GlobalState],
) -> None:
    """An interrupt on a line of seedscope's driver, not in the generator: it still closes."""
    closed_in: list[bool] = []

    @deterministic(1)
    def steps() -> Generator[float, None, None]:
        with isolated() as held:
            try:
                while True:
                    yield random.random()
            finally:
                closed_in.append(current_scope() is held)

    def raise_in_the_driver(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_name != "_drive":
            return None

        def local(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "line":
                raise Injected("between steps")
            return local

        return local

    before = snapshot()
    generator = steps()
    next(generator)
    sys.settrace(raise_in_the_driver)
    try:
        with pytest.raises(Injected):
            next(generator)
    finally:
        sys.settrace(None)
    assert closed_in == [True]
    assert_engine_idle()
    assert snapshot() == before
