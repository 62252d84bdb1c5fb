"""torch's default CPU generator."""

from __future__ import annotations

import importlib
import sys
from typing import Any

from .._plain import b64, expect_fields, read_bytes
from .base import ProcessWide

__all__ = ["TorchCPU", "dump_tensor", "load_cpu_generator_state", "load_tensor"]


class TorchCPU(ProcessWide):
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

    def dump_state(self, state: Any) -> Any:
        return {"state": dump_tensor(state)}

    def load_state(self, data: Any) -> Any:
        fields = expect_fields(data, "state", ("state",))
        return load_cpu_generator_state(fields["state"], "state 'state'")


def dump_tensor(state: Any) -> str:
    """A generator state (a uint8 tensor) as base64 text."""
    return b64(state.numpy().tobytes())


def load_tensor(value: object, what: str, *, size: int | None = None) -> Any:
    data = read_bytes(value, what, size=size)
    torch = importlib.import_module("torch")
    return (
        torch.frombuffer(bytearray(data), dtype=torch.uint8)
        if data
        else torch.empty(0, dtype=torch.uint8)
    )


def load_cpu_generator_state(value: object, what: str) -> Any:
    state = load_tensor(value, what)
    torch = sys.modules["torch"]
    try:
        torch.Generator().set_state(state)  # torch checks it, on a throwaway generator
    except RuntimeError as exc:
        raise ValueError(f"{what} is not a valid torch CPU generator state: {exc}") from None
    return state
