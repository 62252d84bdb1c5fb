"""Runs for ``seedscope verify --compare`` to compare: each writes files made beforehand."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from _cli import seedscope, write

# Copies run 1's or run 2's version of each file in v1/ or v2/ into place.
COPY_INTO_PLACE = """
    import pathlib, shutil
    counter = pathlib.Path("count.txt")
    run = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(run))
    for made in sorted(pathlib.Path(f"v{min(run, 2)}").iterdir()):
        shutil.copyfile(made, made.name)
"""


def verify_versions(
    tmp_path: Path, name: str, make: Callable[[Path, int], None]
) -> subprocess.CompletedProcess[str]:
    """verify over two runs, each writing ``name`` as ``make(path, run)`` made it."""
    for run in (1, 2):
        (tmp_path / f"v{run}").mkdir()
        make(tmp_path / f"v{run}" / name, run)
    write(tmp_path / "place.py", COPY_INTO_PLACE)
    return seedscope("verify", "--compare", name, "--", sys.executable, "place.py", cwd=tmp_path)
