"""Random interleavings of nested scopes, exits and draws, checked against a model.

The model keeps, for each global stream, the seed it was last seeded with and
the draws made since. The value a draw must give is found by replaying the
usual recipe on a private generator: ``random.Random(seed)``,
``np.random.RandomState(seed)``, ``torch.Generator().manual_seed(seed)``.
Entering ``deterministic(s)`` starts every stream at (s, no draws); entering
``isolated()`` keeps them; exiting puts back what the entry found.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
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

from seedscope import ActiveScope, Scope, current_scope, deterministic, isolated

BASE_SEED = 2024
STREAMS = ("python", "numpy", "torch")
KINDS = ("uniform", "gauss")

# How the code under test draws from the global streams.
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


class ScopeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.outside = snapshot_global_state()
        random.seed(BASE_SEED)
        np.random.seed(BASE_SEED)
        torch.manual_seed(BASE_SEED)
        self.flags = torch_flags()
        self.model: Model = {stream: (BASE_SEED, ()) for stream in STREAMS}
        self.stack: list[tuple[Scope, ActiveScope, Model]] = []

    def _enter(self, scope: Scope, model: Model) -> None:
        active = scope.__enter__()
        self.stack.append((scope, active, self.model))
        self.model = model

    @rule(
        seed=st.sampled_from([0, 1, 42, BASE_SEED]) | st.integers(0, 2**32 - 1),
        strict=st.booleans(),
    )
    def enter_deterministic(self, seed: int, strict: bool) -> None:
        self._enter(deterministic(seed, strict=strict), {s: (seed, ()) for s in STREAMS})

    @rule()
    def enter_isolated(self) -> None:
        self._enter(isolated(), dict(self.model))

    @rule(depth=st.integers(0, 3))
    def reenter_an_active_scope(self, depth: int) -> None:
        """Enter again a scope object that is active further out."""
        if not self.stack:
            return
        scope, active, _ = self.stack[-1 - min(depth, len(self.stack) - 1)]
        if active.seed is None:
            self._enter(scope, dict(self.model))
        else:
            self._enter(scope, {s: (active.seed, ()) for s in STREAMS})

    @precondition(lambda self: self.stack)
    @rule()
    def exit_innermost(self) -> None:
        scope, _, model = self.stack.pop()
        scope.__exit__(None, None, None)
        self.model = model

    @rule(stream=st.sampled_from(STREAMS), kind=st.sampled_from(KINDS))
    def draw(self, stream: str, kind: str) -> None:
        seed, draws = self.model[stream]
        draws = (*draws, kind)
        assert GLOBAL_DRAW[stream][kind]() == replay(stream, seed, draws)
        self.model[stream] = (seed, draws)

    @invariant()
    def current_scope_is_the_innermost_entry(self) -> None:
        expected = self.stack[-1][1] if self.stack else None
        assert current_scope() is expected

    def teardown(self) -> None:
        try:
            while self.stack:
                self.exit_innermost()
            for stream in STREAMS:
                for kind in KINDS:
                    self.draw(stream, kind)
            assert torch_flags() == self.flags
        finally:
            restore_global_state(self.outside)


def test_random_interleavings_of_scopes_and_draws_never_leak() -> None:
    run_state_machine_as_test(
        ScopeMachine,
        settings=settings(max_examples=50, stateful_step_count=30, deadline=None),
    )
