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
from .base import ProcessWide

__all__ = ["EnvironmentVariables", "cublas_config_needed", "getenv"]

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


# os.environ.get encodes the key and decodes the value on every call; reading
# os.environ's own dict with the keys encoded once is ten times cheaper, and a
# scope reads these variables on every entry and exit. Anything other than
# CPython's os._Environ (or a replaced os.environ) takes the plain path.
_FAST_ENVIRON = os.environ
_FAST_DATA: dict[Any, Any] | None = getattr(_FAST_ENVIRON, "_data", None)
_ENCODE = getattr(_FAST_ENVIRON, "encodekey", None)
_DECODE = getattr(_FAST_ENVIRON, "decodevalue", None)
_KEYS = (
    {name: _ENCODE(name) for name in (HASH_SEED, CUBLAS_CONFIG)}
    if type(_FAST_DATA) is dict and _ENCODE is not None and _DECODE is not None
    else None
)


def getenv(name: str) -> str | None:
    """``os.environ.get(name)`` for the two variables this module manages, without the encoding."""
    if _KEYS is None or os.environ is not _FAST_ENVIRON:
        return os.environ.get(name)
    raw = _FAST_DATA.get(_KEYS[name])  # type: ignore[union-attr]
    return None if raw is None else _DECODE(raw)  # type: ignore[misc]


class EnvironmentVariables(ProcessWide):
    name = "environ"
    module = None

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict

    def capture(self) -> tuple[str | None, str | None]:
        return getenv(HASH_SEED), getenv(CUBLAS_CONFIG)

    def seed(self, seed: int) -> None:
        os.environ[HASH_SEED] = str(seed)
        if not self.strict or getenv(CUBLAS_CONFIG) in _CUBLAS_DETERMINISTIC_VALUES:
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
    if getenv(name) == value:
        return
    if value is None:
        del os.environ[name]
    else:
        os.environ[name] = value
