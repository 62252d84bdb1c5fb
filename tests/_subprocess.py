"""Running code in another process (a fresh interpreter, or a forked child), for what one
process cannot undo."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")


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


def in_child(work: Callable[[], _T]) -> _T:
    """Fork, run ``work`` in the child, and return what it returned there."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        status = 1
        try:
            os.close(read)
            with os.fdopen(write, "wb") as pipe:
                pickle.dump(work(), pipe)
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child failed: see its traceback"
    result: _T = pickle.loads(data)
    return result
