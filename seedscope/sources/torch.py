"""torch's default CPU generator."""

from __future__ import annotations

import importlib
import math
import struct
import sys
from typing import Any

from .._plain import b64, check_mt19937_key, expect_fields, read_bytes
from .base import ProcessWide, entropy_hooked, hook_entropy

__all__ = [
    "TorchCPU",
    "check_cpu_generator_state",
    "check_philox_state",
    "dump_tensor",
    "load_cpu_generator_state",
    "load_tensor",
]

# torch's CPU generator state (CPUGeneratorImplState): the legacy part, which
# is all of a 5048-byte state, then the cached float normal and its flag.
# Legacy part: seed (u64), left (i32), seeded (i32), next (u64), the MT19937
# key as 624 u64 (only their low 32 bits are used), normal_x, normal_y,
# normal_rho (f64) and normal_is_valid (i32).
_CPU_LEGACY_SIZE = 5048
_CPU_STATE_SIZE = 5056
_MT_WORDS = 624
# cuda and xpu generators: a u64 seed, then the Philox offset (u64).
_PHILOX_STATE_SIZE = 16


class TorchCPU(ProcessWide):
    name = "torch"
    module = "torch"

    def capture(self) -> Any:
        if "torch" not in entropy_hooked:
            hook_entropy("torch")
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
    check_cpu_generator_state(state.numpy().tobytes(), what)
    return state


def check_cpu_generator_state(data: bytes, what: str) -> None:
    """What torch's ``set_state`` takes but should not: states no seeding or drawing makes.

    torch checks that 'left' is in [1, 624] and 'next' in [0, 624], but not
    that the draws before the key is next refilled stay inside it (torch
    reads past its end), nor the key (all zero: every draw 0) or the cached
    normal sample (NaN or infinite: the next normal draw is too).
    """
    if len(data) not in (_CPU_LEGACY_SIZE, _CPU_STATE_SIZE):
        return  # a layout torch accepts that this does not know
    left, _, position = struct.unpack_from("<iiQ", data, 8)
    position &= 0xFFFFFFFF  # torch keeps the low 32 bits
    if left + position > _MT_WORDS + 1:
        raise ValueError(
            f"{what} has 'left' {left} and 'next' {position}: torch would draw "
            f"{left + position - _MT_WORDS - 1} word(s) past the end of the MT19937 key "
            f"(left + next must be at most {_MT_WORDS + 1}, as in every state torch makes)"
        )
    words = struct.unpack_from(f"<{_MT_WORDS}Q", data, 24)
    check_mt19937_key([word & 0xFFFFFFFF for word in words], f"{what} MT19937 key")
    normal_x, normal_y, normal_rho, normal_is_valid = struct.unpack_from("<dddi", data, 5016)
    if normal_is_valid and not all(map(math.isfinite, (normal_x, normal_y, normal_rho))):
        raise ValueError(
            f"{what} caches a normal sample that is not a finite float "
            f"({normal_x!r}, {normal_y!r}, {normal_rho!r})"
        )
    if len(data) == _CPU_STATE_SIZE and data[5052]:
        (sample,) = struct.unpack_from("<f", data, 5048)
        if not math.isfinite(sample):
            raise ValueError(f"{what} caches a float normal sample that is not finite: {sample!r}")


def check_philox_state(data: bytes, what: str) -> None:
    """A cuda or xpu generator state: ``set_state`` refuses an offset not a multiple of 4."""
    if len(data) != _PHILOX_STATE_SIZE:
        return
    offset = int.from_bytes(data[8:], "little")
    if offset % 4:
        raise ValueError(
            f"{what} has Philox offset {offset}, which torch refuses: the offset must be a "
            "multiple of 4"
        )
