"""Environment variables that child processes read to be reproducible.

``PYTHONHASHSEED`` only affects interpreters started after it is set: the
running one fixed its hash seed at start-up (``seedscope run`` fixes that).
``CUBLAS_WORKSPACE_CONFIG`` only takes effect if set before CUDA starts.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

from .._errors import SeedscopeWarning
from .._plain import expect_fields, read_optional_str
from .base import Source

__all__ = ["EnvironmentVariables", "cublas_config_needed"]

HASH_SEED = "PYTHONHASHSEED"
CUBLAS_CONFIG = "CUBLAS_WORKSPACE_CONFIG"
CUBLAS_DETERMINISTIC = ":4096:8"
_CUBLAS_DETERMINISTIC_VALUES = (":4096:8", ":16:8")


def cublas_config_needed(cuda_version: str | None) -> bool:
    """Whether cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` to be deterministic.

    cuBLAS from CUDA 10.2 on picks workspaces nondeterministically unless the
    variable is set; builds without CUDA (CPU, ROCm) have no cuBLAS.
    """
    if not cuda_version:
        return False
    major, _, rest = cuda_version.partition(".")
    minor = rest.partition(".")[0]
    try:
        return (int(major), int(minor or 0)) >= (10, 2)
    except ValueError:
        return True


def _torch_needs_cublas_config() -> bool:
    torch = sys.modules.get("torch")
    if torch is None:
        return True  # not known yet; harmless if torch turns out to be CPU-only
    return cublas_config_needed(torch.version.cuda)


class EnvironmentVariables(Source):
    name = "environ"
    module = None

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict

    def capture(self) -> tuple[str | None, str | None]:
        get = os.environ.get
        return get(HASH_SEED), get(CUBLAS_CONFIG)

    def seed(self, seed: int) -> None:
        os.environ[HASH_SEED] = str(seed)
        if not self.strict or os.environ.get(CUBLAS_CONFIG) in _CUBLAS_DETERMINISTIC_VALUES:
            return
        if not _torch_needs_cublas_config():
            return
        os.environ[CUBLAS_CONFIG] = CUBLAS_DETERMINISTIC
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            warnings.warn(
                f"{CUBLAS_CONFIG} was set to {CUBLAS_DETERMINISTIC!r} after CUDA started, "
                "so cuBLAS in this process ignores it; set it before the first CUDA call "
                "or start the program with `seedscope run --strict`",
                SeedscopeWarning,
                stacklevel=2,
            )

    def restore(self, state: tuple[str | None, ...]) -> None:
        _set_or_unset(HASH_SEED, state[0])
        _set_or_unset(CUBLAS_CONFIG, state[1])

    def dump_state(self, state: tuple[str | None, ...]) -> Any:
        return {HASH_SEED: state[0], CUBLAS_CONFIG: state[1]}

    def load_state(self, data: Any) -> tuple[str | None, str | None]:
        fields = expect_fields(data, "state", (HASH_SEED, CUBLAS_CONFIG))
        return (
            read_optional_str(fields[HASH_SEED], f"state {HASH_SEED!r}"),
            read_optional_str(fields[CUBLAS_CONFIG], f"state {CUBLAS_CONFIG!r}"),
        )


def _set_or_unset(name: str, value: str | None) -> None:
    environ = os.environ
    if environ.get(name) == value:
        return
    if value is None:
        del environ[name]
    else:
        environ[name] = value
