"""Running code in a fresh interpreter, for what one process cannot undo."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any


def run_json(code: str, *, env: dict[str, str] | None = None, timeout: float = 300) -> Any:
    """Run ``code`` (dedented) in a fresh interpreter and return the JSON it prints last."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
