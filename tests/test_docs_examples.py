"""The example test module that docs/testing.md shows really passes under the plugin."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "test_plugin_usage.py"


def test_the_plugin_examples_in_the_docs_pass(pytester: pytest.Pytester) -> None:
    shutil.copy(EXAMPLE, pytester.path / EXAMPLE.name)
    result = pytester.runpytest_subprocess("-p", "seedscope", "-p", "no:randomly", "-s")
    result.assert_outcomes(passed=3)
