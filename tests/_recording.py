"""A source that writes down the seeds it is given, for tests of when a scope seeds."""

from __future__ import annotations

from typing import Any

from seedscope import Source


class SeedRecorder(Source):
    """The source of a module (imported or not yet): it has no state, and records each seed."""

    name = "recorder"

    def __init__(self, module: str) -> None:
        self.module = module
        self.seeds: list[int] = []

    def capture(self) -> Any:
        return None

    def seed(self, seed: int) -> None:
        self.seeds.append(seed)

    def restore(self, state: Any) -> None:
        pass
