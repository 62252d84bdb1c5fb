"""Random interleavings of nested scopes, exits and draws, checked against a model.

The model keeps, for each global stream, the seed it was last seeded with and
the draws made since. The value a draw must give is found by replaying the
usual recipe on a private generator: ``random.Random(seed)``,
``np.random.RandomState(seed)``, ``torch.Generator().manual_seed(seed)``.
Entering ``deterministic(s)`` starts every stream at (s, no draws); entering
``isolated()`` keeps them; exiting puts back what the entry found.

Besides the caller, up to three *tasks* run: decorated generators, coroutines
and async generators, driven by hand one step at a time, whose body carries out
the command sent or thrown in at each step: draw, reseed, flip a torch flag,
enter a scope (``with`` or ``async with``) and hold it across the following
yields or awaits, exit the innermost one held, or run an operation on another
task (start, step or finish it) from inside this step. Each task is a place of
its own with its own model, as if its body ran straight through: a
``@deterministic(s)`` task starts at (s, no draws), an ``@isolated`` one from
the state of whoever ran its first step. Neither the caller nor any task ever
sees another's draws, reseeds, flags or scopes, and ``current_scope()`` is
always the innermost entry of the place that asks.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np
import pytest
import torch
from conftest import restore_global_state, snapshot_global_state, torch_flags
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from seedscope import ActiveScope, Scope, _imports, _scope, current_scope, deterministic, isolated

BASE_SEED = 2024
STREAMS = ("python", "numpy", "torch")
KINDS = ("uniform", "gauss")
MAX_TASKS = 3
_T = TypeVar("_T")

# How the code under test draws from the global streams, and reseeds them.
GLOBAL_DRAW: dict[str, dict[str, Callable[[], float]]] = {
    "python": {"uniform": random.random, "gauss": lambda: random.gauss(0.0, 1.0)},
    "numpy": {
        "uniform": lambda: float(np.random.rand()),
        "gauss": lambda: float(np.random.randn()),
    },
    "torch": {
        "uniform": lambda: torch.rand(()).item(),
        "gauss": lambda: torch.randn(()).item(),
    },
}
GLOBAL_SEED: dict[str, Callable[[int], object]] = {
    "python": random.seed,
    "numpy": np.random.seed,
    "torch": torch.manual_seed,
}

seeds = st.sampled_from([0, 1, 42, BASE_SEED]) | st.integers(0, 2**32 - 1)
task_indices = st.integers(0, MAX_TASKS - 1)
# Who runs an operation on a task: the caller (None), or another live task's step.
proxies = st.none() | task_indices


def replay(stream: str, seed: int, draws: tuple[str, ...]) -> float:
    """The last of ``draws`` made from a private generator seeded like the recipe."""
    if stream == "python":
        r = random.Random(seed)
        ops: dict[str, Callable[[], float]] = {
            "uniform": r.random,
            "gauss": lambda: r.gauss(0.0, 1.0),
        }
    elif stream == "numpy":
        rs = np.random.RandomState(seed)
        ops = {"uniform": lambda: float(rs.rand()), "gauss": lambda: float(rs.randn())}
    else:
        g = torch.Generator().manual_seed(seed)
        ops = {
            "uniform": lambda: torch.rand((), generator=g).item(),
            "gauss": lambda: torch.randn((), generator=g).item(),
        }
    value = 0.0
    for kind in draws:
        value = ops[kind]()
    return value


Model = dict[str, tuple[int, tuple[str, ...]]]
# torch's flags and PYTHONHASHSEED: not modelled, but observed after each change
# and expected unchanged until the next one.
Flags = tuple[dict[str, Any], str | None]


def seeded(seed: int) -> Model:
    return {stream: (seed, ()) for stream in STREAMS}


def model_after_entering(scope: Scope, model: Model) -> Model:
    """``deterministic(s)`` starts every stream afresh; ``isolated()`` keeps them."""
    return dict(model) if scope.seed is None else seeded(scope.seed)


def flags_now() -> Flags:
    return torch_flags(), os.environ.get("PYTHONHASHSEED")


def flip_benchmark() -> None:
    torch.backends.cudnn.benchmark = not torch.backends.cudnn.benchmark


@dataclass
class Held:
    """A scope a place entered and has not exited, with what the place had before it."""

    scope: Scope
    active: ActiveScope
    model: Model
    flags: Flags


@dataclass
class Place:
    """The caller or one task: what its next draws must give, its flags, the scopes it holds."""

    model: Model
    flags: Flags
    held: list[Held] = field(default_factory=list)

    def innermost(self, default: ActiveScope | None) -> ActiveScope | None:
        return self.held[-1].active if self.held else default

    def entered(self, scope: Scope, active: ActiveScope, flags: Flags) -> None:
        assert active.scope is scope
        if scope.seed is None:
            assert flags == self.flags, "isolated() changed a setting on entry"
        self.held.append(Held(scope, active, self.model, self.flags))
        self.model = model_after_entering(scope, self.model)
        self.flags = flags

    def exited(self) -> None:
        held = self.held.pop()
        self.model, self.flags = held.model, held.flags

    def drew(self, stream: str, kind: str, value: float) -> None:
        seed, draws = self.model[stream]
        draws = (*draws, kind)
        assert value == replay(stream, seed, draws), f"{stream} {kind} draw #{len(draws)}"
        self.model = {**self.model, stream: (seed, draws)}

    def reseeded(self, stream: str, seed: int) -> None:
        self.model = {**self.model, stream: (seed, ())}

    def flipped_benchmark(self, flags: Flags) -> None:
        torch_before, hash_seed = self.flags
        flipped = {**torch_before, "cudnn.benchmark": not torch_before["cudnn.benchmark"]}
        assert flags == (flipped, hash_seed)
        self.flags = flags


# -- the tasks' bodies -------------------------------------------------------------

Command = tuple[Any, ...]


class Reply(NamedTuple):
    """What a task's step reports: its result, and the task's scope and flags at its end."""

    value: Any
    current: ActiveScope | None
    flags: Flags


def reply(value: Any) -> Reply:
    return Reply(value, current_scope(), flags_now())


class Delivered(Exception):
    """A command thrown into a task rather than sent: its body takes it the same way."""

    def __init__(self, command: Command) -> None:
        super().__init__(command)
        self.command = command


def carry_out(command: Command) -> Any:
    """Every command but entering and exiting a scope: the same for every kind of body."""
    match command:
        case ("draw", stream, kind):
            return GLOBAL_DRAW[stream][kind]()
        case ("seed", stream, seed):
            GLOBAL_SEED[stream](seed)
        case ("flip benchmark",):
            flip_benchmark()
        case ("call", work):
            return work()
        case _:
            raise AssertionError(f"unknown command {command!r}")
    return None


def act(command: Command, held: list[Scope]) -> Any:
    """Carry out ``command`` in a generator: ``with`` scopes, entered and exited by hand."""
    if command[0] == "enter":
        active = command[1].__enter__()
        held.append(command[1])
        return active
    if command == ("exit",):
        return held.pop().__exit__(None, None, None)
    return carry_out(command)


async def act_async(command: Command, held: list[Scope]) -> Any:
    """Carry out ``command`` in a coroutine: ``async with`` scopes, entered and exited by hand."""
    if command[0] == "enter":
        active = await command[1].__aenter__()
        held.append(command[1])
        return active
    if command == ("exit",):
        return await held.pop().__aexit__(None, None, None)
    return carry_out(command)


def serve_yields() -> Generator[Reply, Command, None]:
    """A generator body that carries out one command per step, holding scopes across yields."""
    held: list[Scope] = []
    result = None
    try:
        while True:
            try:
                command = yield reply(result)
            except Delivered as thrown:
                command = thrown.command
            if command == ("stop",):
                return
            result = act(command, held)
    finally:
        while held:
            held.pop().__exit__(None, None, None)


class NextCommand:
    """Awaiting it hands ``reply`` to whoever drives the coroutine and returns the next command."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply

    def __await__(self) -> Generator[Reply, Command, Command]:
        try:
            command = yield self.reply
        except Delivered as thrown:
            command = thrown.command
        return command


async def serve_awaits() -> None:
    """``serve_yields`` as a coroutine: each command comes in at an await."""
    held: list[Scope] = []
    result = None
    try:
        while True:
            command = await NextCommand(reply(result))
            if command == ("stop",):
                return
            result = await act_async(command, held)
    finally:
        while held:
            await held.pop().__aexit__(None, None, None)


async def serve_async_yields() -> AsyncGenerator[Reply, Command]:
    """``serve_yields`` as an async generator."""
    held: list[Scope] = []
    result = None
    try:
        while True:
            try:
                command = yield reply(result)
            except Delivered as thrown:
                command = thrown.command
            if command == ("stop",):
                return
            result = await act_async(command, held)
    finally:
        while held:
            await held.pop().__aexit__(None, None, None)


class Steppable(Protocol):
    def send(self, value: Any, /) -> Any: ...
    def throw(self, exc: BaseException, /) -> Any: ...
    def close(self) -> Any: ...


class ByHand:
    """An async generator driven like a generator: it never awaits anything that suspends."""

    def __init__(self, agen: AsyncGenerator[Reply, Command]) -> None:
        self.agen = agen

    def send(self, command: Command | None) -> Reply:
        return self._finish(self.agen.asend(command))  # type: ignore[arg-type]

    def throw(self, exc: BaseException) -> Reply:
        return self._finish(self.agen.athrow(exc))

    def close(self) -> None:
        self._finish(self.agen.aclose())

    @staticmethod
    def _finish(step: Coroutine[Any, Any, _T]) -> _T:
        try:
            step.send(None)
        except StopIteration as done:
            result: _T = done.value
            return result
        except StopAsyncIteration:
            raise StopIteration from None
        raise AssertionError("the async generator awaited something that suspends")


BODIES: dict[str, Callable[[Scope], Steppable]] = {
    "generator": lambda scope: scope(serve_yields)(),
    "coroutine": lambda scope: scope(serve_awaits)(),
    "async generator": lambda scope: ByHand(scope(serve_async_yields)()),
}


def step(handle: Steppable, command: Command | None, *, thrown: bool = False) -> Reply | None:
    """One step of a task, driven by hand (no event loop); ``None`` once its body returns."""
    try:
        if thrown:
            result: Reply = handle.throw(Delivered(command or ()))
        else:
            result = handle.send(command)
    except StopIteration:
        return None
    return result


@dataclass
class Task:
    name: str
    handle: Steppable
    scope: Scope  # the one it is decorated with
    entry: ActiveScope  # that scope's entry for this task, current when it holds none
    place: Place

    def __repr__(self) -> str:
        return self.name


# -- the machine ---------------------------------------------------------------------


class ScopeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.outside = snapshot_global_state()
        random.seed(BASE_SEED)
        np.random.seed(BASE_SEED)
        torch.manual_seed(BASE_SEED)
        self.caller = Place(seeded(BASE_SEED), flags_now())
        self.tasks: list[Task] = []
        self.started = 0

    # -- the caller

    def _enter(self, scope: Scope) -> None:
        active = scope.__enter__()
        self.caller.entered(scope, active, flags_now())

    @rule(seed=seeds, strict=st.booleans())
    def enter_deterministic(self, seed: int, strict: bool) -> None:
        self._enter(deterministic(seed, strict=strict))

    @rule()
    def enter_isolated(self) -> None:
        self._enter(isolated())

    @rule(index=st.integers(0, 7))
    def reenter_a_known_scope(self, index: int) -> None:
        """Enter again a scope active further out, or one a task is decorated with or holds."""
        known = self._known_scopes()
        if known:
            self._enter(known[index % len(known)])

    @precondition(lambda self: self.caller.held)
    @rule()
    def exit_innermost(self) -> None:
        self.caller.held[-1].scope.__exit__(None, None, None)
        self.caller.exited()

    @rule(stream=st.sampled_from(STREAMS), kind=st.sampled_from(KINDS))
    def draw(self, stream: str, kind: str) -> None:
        self.caller.drew(stream, kind, GLOBAL_DRAW[stream][kind]())

    @rule(stream=st.sampled_from(STREAMS), seed=seeds)
    def reseed(self, stream: str, seed: int) -> None:
        GLOBAL_SEED[stream](seed)
        self.caller.reseeded(stream, seed)

    @rule()
    def flip_benchmark(self) -> None:
        flip_benchmark()
        self.caller.flipped_benchmark(flags_now())

    @invariant()
    def the_caller_sees_its_own_innermost_entry_and_flags(self) -> None:
        assert current_scope() is self.caller.innermost(None)
        assert flags_now() == self.caller.flags

    # -- tasks

    def _known_scopes(self) -> list[Scope]:
        known = [held.scope for held in self.caller.held]
        for task in self.tasks:
            known += [task.scope, *(held.scope for held in task.place.held)]
        return known

    def _task(self, index: int) -> Task:
        return self.tasks[index % len(self.tasks)]

    def _proxy(self, index: int | None, *busy: Task) -> Task | None:
        """The task whose step runs the operation, if any: never one the operation steps."""
        if index is None:
            return None
        free = [task for task in self.tasks if task not in busy]
        return free[index % len(free)] if free else None

    def _check(self, task: Task, answer: Reply | None) -> Reply:
        """A step's reply shows the task's own innermost entry and flags."""
        assert answer is not None, f"{task} ended early"
        assert answer.current is task.place.innermost(task.entry)
        assert answer.flags == task.place.flags
        return answer

    def _run(self, proxy: Task | None, work: Callable[[], Any]) -> Any:
        """``work()`` run by the caller, or inside a step of ``proxy``, which must not notice."""
        if proxy is None:
            return work()
        return self._check(proxy, step(proxy.handle, ("call", work))).value

    def _send(self, task: Task, via: int | None, command: Command, thrown: bool) -> Reply:
        """Run one step of ``task`` that carries out ``command``, sent or thrown in."""
        answer: Reply | None = self._run(
            self._proxy(via, task), lambda: step(task.handle, command, thrown=thrown)
        )
        assert answer is not None, f"{task} ended early"
        return answer

    @precondition(lambda self: len(self.tasks) < MAX_TASKS)
    @rule(
        body=st.sampled_from(sorted(BODIES)),
        decorator=st.tuples(st.just("deterministic"), seeds, st.booleans())
        | st.just(("isolated",))
        | st.tuples(st.just("known"), st.integers(0, 7)),
        via=proxies,
    )
    def start_task(self, body: str, decorator: tuple[Any, ...], via: int | None) -> None:
        """Decorate a body, make a task of it and run its first step (up to its first yield)."""
        known = self._known_scopes()
        if decorator[0] == "deterministic":
            scope = deterministic(decorator[1], strict=decorator[2])
        elif decorator[0] == "known" and known:
            scope = known[decorator[1] % len(known)]
        else:
            scope = isolated()
        handle = BODIES[body](scope)
        proxy = self._proxy(via)
        starter = proxy.place if proxy else self.caller
        first = self._run(proxy, lambda: step(handle, None))
        assert first is not None
        entry = first.current
        assert entry is not None
        assert entry.scope is scope
        assert entry is not starter.innermost(None)
        assert all(entry is not task.entry for task in self.tasks)
        if scope.seed is None:
            # Its own state is whatever its first step found, then its own copy of it.
            assert first.flags == starter.flags
        place = Place(model_after_entering(scope, starter.model), first.flags)
        self.started += 1
        self.tasks.append(Task(f"{body} {self.started}", handle, scope, entry, place))

    @precondition(lambda self: self.tasks)
    @rule(
        index=task_indices,
        stream=st.sampled_from(STREAMS),
        kind=st.sampled_from(KINDS),
        via=proxies,
        thrown=st.booleans(),
    )
    def task_draws(self, index: int, stream: str, kind: str, via: int | None, thrown: bool) -> None:
        task = self._task(index)
        answer = self._send(task, via, ("draw", stream, kind), thrown)
        task.place.drew(stream, kind, answer.value)
        self._check(task, answer)

    @precondition(lambda self: self.tasks)
    @rule(
        index=task_indices,
        stream=st.sampled_from(STREAMS),
        seed=seeds,
        via=proxies,
        thrown=st.booleans(),
    )
    def task_reseeds(
        self, index: int, stream: str, seed: int, via: int | None, thrown: bool
    ) -> None:
        task = self._task(index)
        answer = self._send(task, via, ("seed", stream, seed), thrown)
        task.place.reseeded(stream, seed)
        self._check(task, answer)

    @precondition(lambda self: self.tasks)
    @rule(index=task_indices, via=proxies, thrown=st.booleans())
    def task_flips_benchmark(self, index: int, via: int | None, thrown: bool) -> None:
        task = self._task(index)
        answer = self._send(task, via, ("flip benchmark",), thrown)
        task.place.flipped_benchmark(answer.flags)
        self._check(task, answer)

    def _task_enters(self, index: int, via: int | None, scope: Scope, thrown: bool) -> None:
        task = self._task(index)
        answer = self._send(task, via, ("enter", scope), thrown)
        task.place.entered(scope, answer.value, answer.flags)
        self._check(task, answer)

    @precondition(lambda self: self.tasks)
    @rule(index=task_indices, seed=seeds, strict=st.booleans(), via=proxies, thrown=st.booleans())
    def task_enters_deterministic(
        self, index: int, seed: int, strict: bool, via: int | None, thrown: bool
    ) -> None:
        self._task_enters(index, via, deterministic(seed, strict=strict), thrown)

    @precondition(lambda self: self.tasks)
    @rule(index=task_indices, via=proxies, thrown=st.booleans())
    def task_enters_isolated(self, index: int, via: int | None, thrown: bool) -> None:
        self._task_enters(index, via, isolated(), thrown)

    @precondition(lambda self: self.tasks)
    @rule(index=task_indices, scope_index=st.integers(0, 7), via=proxies, thrown=st.booleans())
    def task_reenters_a_known_scope(
        self, index: int, scope_index: int, via: int | None, thrown: bool
    ) -> None:
        """Enter a scope object the caller, this task or another one is decorated with or holds."""
        known = self._known_scopes()
        self._task_enters(index, via, known[scope_index % len(known)], thrown)

    @precondition(lambda self: any(task.place.held for task in self.tasks))
    @rule(index=task_indices, via=proxies, thrown=st.booleans())
    def task_exits_its_innermost_held_scope(
        self, index: int, via: int | None, thrown: bool
    ) -> None:
        holding = [task for task in self.tasks if task.place.held]
        task = holding[index % len(holding)]
        answer = self._send(task, via, ("exit",), thrown)
        task.place.exited()
        self._check(task, answer)

    @precondition(lambda self: self.tasks)
    @rule(
        index=task_indices, how=st.sampled_from(["close", "send stop", "throw stop"]), via=proxies
    )
    def finish_task(self, index: int, how: str, via: int | None) -> None:
        """Close a task, or let its body return: either way it exits every scope it holds."""
        task = self._task(index)
        proxy = self._proxy(via, task)
        if how == "close":
            self._run(proxy, task.handle.close)
        else:
            thrown = how == "throw stop"
            assert self._run(proxy, lambda: step(task.handle, ("stop",), thrown=thrown)) is None
        self.tasks.remove(task)

    def teardown(self) -> None:
        try:
            while self.tasks:
                self.tasks.pop().handle.close()
            while self.caller.held:
                self.exit_innermost()
            for stream in STREAMS:
                for kind in KINDS:
                    self.draw(stream, kind)
            assert current_scope() is None
            assert flags_now() == self.caller.flags
        finally:
            for task in self.tasks:  # left by a failure: close what can be closed
                with contextlib.suppress(Exception):
                    task.handle.close()
            if _scope._entries or current_scope() is not None:
                # A failed example must not leave entries behind for the next one.
                _scope._stack.set(())
                _scope._entries.clear()
                _imports.uninstall()
            restore_global_state(self.outside)


def test_random_interleavings_of_scopes_draws_and_held_task_scopes_never_leak() -> None:
    run_state_machine_as_test(
        ScopeMachine,
        settings=settings(max_examples=200, stateful_step_count=50, deadline=None),
    )


@pytest.mark.parametrize("body", sorted(BODIES))
def test_a_task_carries_out_commands_sent_or_thrown_in_its_own_state(body: str) -> None:
    """The harness itself, against a body run straight through."""
    with deterministic(3):
        expected = [random.random(), random.random()]
        with isolated() as inner:
            expected.append(random.random())
    random.seed(7)
    handle = BODIES[body](deterministic(3))
    first = step(handle, None)
    assert first is not None
    assert first.current is not None
    assert first.current.seed == 3
    got = []
    for thrown in (False, True):
        drawn = step(handle, ("draw", "python", "uniform"), thrown=thrown)
        assert drawn is not None
        got.append(drawn.value)
    entered = step(handle, ("enter", inner.scope), thrown=True)
    assert entered is not None
    assert entered.current is entered.value
    drawn = step(handle, ("draw", "python", "uniform"))
    assert drawn is not None
    assert [*got, drawn.value] == expected
    assert step(handle, ("stop",)) is None
    assert current_scope() is None
    assert random.random() == random.Random(7).random()
