"""The examples the docs point to really run: the pytest plugin's, and the README's demo."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from _cli import ROOT, SEEDSCOPE, run

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "test_plugin_usage.py"
DEMO = "examples/reproducible_training.py"


def test_the_plugin_examples_in_the_docs_pass(pytester: pytest.Pytester) -> None:
    shutil.copy(EXAMPLE, pytester.path / EXAMPLE.name)
    result = pytester.runpytest_subprocess("-p", "seedscope", "-p", "no:randomly", "-s")
    result.assert_outcomes(passed=3)


def test_the_demo_is_reproducible_and_says_in_one_line_what_it_showed() -> None:
    # The README's demo command, without nox: `seedscope verify -- python <demo>`.
    # Two trainings with DataLoader workers: a minute or more on a busy two-core machine.
    result = run(*SEEDSCOPE, "verify", "--", sys.executable, DEMO, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reproducible: 2 runs of" in result.stdout
    summary = [line for line in result.stdout.splitlines() if line.startswith("Shown: ")]
    assert summary == [
        "Shown: training with dropout and a 2-worker DataLoader seeded by dataloader_seeding() "
        "gives bit-identical weights for the same seed and other weights for another, and "
        "leaves the global streams as they were."
    ]
    assert "FAILED" not in result.stdout
