"""Fake CUDA-like devices for the snapshot tests: Philox generators that start on demand.

Where no GPU is at hand, these stand in for ``torch.cuda`` behind seedscope's
accelerator backend (``accelerators._LazyBackend``): per-device generators
whose state is torch's CUDA layout (seed and offset), created when the device
starts, with the lazy-seed tracker torch itself uses.
"""

from __future__ import annotations

import os
import struct
import sys
from typing import Any


class FakePhiloxGenerator:
    """What a CUDA generator's state is and checks: seed and offset, a multiple of 4."""

    def __init__(self) -> None:
        self.seed_value, self.offset = 0, 0

    def get_state(self) -> Any:
        torch = sys.modules["torch"]
        data = struct.pack("<QQ", self.seed_value, self.offset)
        return torch.frombuffer(bytearray(data), dtype=torch.uint8)

    def set_state(self, state: Any) -> None:
        data = state.numpy().tobytes()
        if len(data) != 16:
            raise RuntimeError("RNG state is wrong size")
        seed_value, offset = struct.unpack("<QQ", data)
        if offset % 4:
            raise RuntimeError("offset must be a multiple of 4")
        self.seed_value, self.offset = seed_value, offset

    def manual_seed(self, seed: int) -> FakePhiloxGenerator:
        self.seed_value, self.offset = seed, 0
        return self

    def seed(self) -> int:
        # torch seeds from the operating system; any seed does for a fake.
        self.manual_seed(int.from_bytes(os.urandom(8), "little"))
        return self.seed_value

    def draw(self) -> None:
        self.offset += 4


class FakeCuda:
    """A CUDA-like module whose devices have Philox generators and start on demand."""

    def __init__(self, devices: int, *, started: bool, name: str = "fakecuda") -> None:
        torch = sys.modules["torch"]
        self._devices = devices
        self._started = False
        self.default_generators: tuple[FakePhiloxGenerator, ...] = ()
        self._lazy_seed_tracker = torch.cuda._LazySeedTracker()
        self.__name__ = f"torch.{name}"  # the backend's name in snapshots
        if started:
            self.start()

    def is_initialized(self) -> bool:
        return self._started

    def device_count(self) -> int:
        return self._devices

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.default_generators = tuple(FakePhiloxGenerator() for _ in range(self._devices))
        for generator in self.default_generators:
            generator.seed()
        for call in self._lazy_seed_tracker.get_calls():
            if call is not None:
                call[0]()  # as torch's lazy init does: an error here breaks CUDA's start
