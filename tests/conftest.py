"""Shared fixtures, and which tests run where.

The full environment (``nox -s tests``) has numpy and torch: every test runs,
with fixtures from ``_global_state`` that put all global state back after each
test. The minimal one (``nox -s tests_minimal``) has neither: only the modules
in ``WITHOUT_NUMPY_OR_TORCH`` are collected there.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

WITHOUT_NUMPY_OR_TORCH = {
    "test_without_numpy_or_torch.py",
    "test_environ.py",
    # The command line: real subprocesses, the standard library alone.
    "test_cli_run.py",
    "test_cli_verify.py",
    "test_doctor.py",
    "test_hash_seed.py",
    # Snapshot checks: the numpy and torch parts skip where those are missing.
    "test_snapshot_validation.py",
    # Pickling decorated functions, and running them in spawned processes.
    "test_pickling.py",
}

if all(importlib.util.find_spec(name) for name in ("numpy", "torch")):
    from _global_state import (  # noqa: F401  (fixtures and helpers the tests share)
        HAS_FP32_PRECISION,
        GlobalState,
        Streams,
        _isolate_global_state,
        restore_global_state,
        snapshot,
        snapshot_global_state,
        streams,
        tf32_settings,
        torch_flags,
    )
    from _recording import late_recorder  # noqa: F401  (a fixture the tests share)
else:
    collect_ignore = sorted(
        path.name
        for path in Path(__file__).parent.glob("test_*.py")
        if path.name not in WITHOUT_NUMPY_OR_TORCH
    )
