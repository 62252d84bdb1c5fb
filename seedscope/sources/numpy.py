"""numpy's legacy global generator (``np.random.seed``, ``np.random.rand``, ...)."""

from __future__ import annotations

import sys
from typing import Any

from .base import Source

__all__ = ["NumpyGlobal"]


class NumpyGlobal(Source):
    name = "numpy"
    # ``import numpy`` does not create the global RandomState; numpy.random does.
    module = "numpy.random"

    def capture(self) -> Any:
        return sys.modules["numpy.random"].get_state(legacy=False)

    def seed(self, seed: int) -> None:
        sys.modules["numpy.random"].seed(seed)

    def restore(self, state: Any) -> None:
        sys.modules["numpy.random"].set_state(state)
