"""torch's default CPU generator."""

from __future__ import annotations

import sys
from typing import Any

from .base import Source

__all__ = ["TorchCPU"]


class TorchCPU(Source):
    name = "torch"
    module = "torch"

    def capture(self) -> Any:
        return sys.modules["torch"].default_generator.get_state()

    def seed(self, seed: int) -> None:
        # What torch.manual_seed does for the CPU, without its ~100 us of
        # accelerator bookkeeping (the accelerators source does that part).
        sys.modules["torch"].default_generator.manual_seed(seed)

    def restore(self, state: Any) -> None:
        sys.modules["torch"].default_generator.set_state(state)
