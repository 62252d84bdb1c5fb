"""A source that writes down the seeds it is given, for tests of when a scope seeds."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seedscope import Source


class SeedRecorder(Source):
    """The source of a module (imported or not yet): it has no state, and records each seed."""

    name = "recorder"
    module: str

    def __init__(self, module: str) -> None:
        self.module = module
        self.seeds: list[int] = []

    def capture(self) -> Any:
        return None

    def seed(self, seed: int) -> None:
        self.seeds.append(seed)

    def restore(self, state: Any) -> None:
        pass


@pytest.fixture
def late_recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SeedRecorder]:
    """The recorder of a module of this test's own that nothing has imported yet."""
    module = "seedscope_late_" + re.sub(r"\W", "_", tmp_path.name)
    (tmp_path / f"{module}.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield SeedRecorder(module)
    sys.modules.pop(module, None)
