"""The documented seeding recipe, and draws from the three global streams."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import torch

Draw = tuple[float, float, float]


def draw() -> Draw:
    """One value from each global stream: ``random``, numpy and torch."""
    return random.random(), float(np.random.random()), torch.rand(1).item()


def reseed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def recipe(seed: int, n: int = 3) -> list[Draw]:
    """What the documented recipe draws: seed all three streams, then draw."""
    reseed(seed)
    return [draw() for _ in range(n)]


def stream_after(action: Callable[[], object], n: int = 2) -> list[Draw]:
    """The caller's next draws, from seed 123, after ``action`` runs."""
    reseed(123)
    action()
    return [draw() for _ in range(n)]


def nothing() -> None:
    pass
