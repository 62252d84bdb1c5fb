"""The ``random`` module's hidden global ``Random`` instance."""

from __future__ import annotations

import random
from typing import Any

from .base import Source

__all__ = ["PythonRandom"]


class PythonRandom(Source):
    name = "python"
    module = None  # random is imported by seedscope itself

    def capture(self) -> Any:
        return random.getstate()

    def seed(self, seed: int) -> None:
        random.seed(seed)

    def restore(self, state: Any) -> None:
        random.setstate(state)
