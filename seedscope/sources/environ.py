"""Environment variables that child processes read to be reproducible.

``PYTHONHASHSEED`` only affects interpreters started after it is set: the
running one fixed its hash seed at start-up (``seedscope run`` fixes that).
``CUBLAS_WORKSPACE_CONFIG`` only takes effect if set before CUDA starts.
"""

from __future__ import annotations

import errno
import itertools
import os
import sys
import warnings
from collections.abc import Iterator
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
_ENCODE_VALUE = getattr(_FAST_ENVIRON, "encodevalue", None)
_KEYS = (
    {name: _ENCODE(name) for name in (HASH_SEED, CUBLAS_CONFIG)}
    if type(_FAST_DATA) is dict
    and _ENCODE is not None
    and _DECODE is not None
    and _ENCODE_VALUE is not None
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
        _set_hash_seed(str(seed))
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
        _unset(name)
    elif name == HASH_SEED:
        _set_hash_seed(value)
    else:
        os.environ[name] = value


def _unset(name: str) -> None:
    """``del os.environ[name]`` for a variable that is set, without encoding the name again."""
    if _KEYS is None or os.environ is not _FAST_ENVIRON:
        del os.environ[name]
        return
    key = _KEYS[name]
    os.unsetenv(key)
    _FAST_DATA.pop(key, None)  # type: ignore[union-attr]


# -- PYTHONHASHSEED in the C environment, without glibc's copies ------------------------
#
# os.environ[name] = value calls setenv(), and glibc's setenv keeps every
# "NAME=value" string it was ever given, so that pointers getenv() returned stay
# valid: 64 bytes that are never freed for each distinct seed, and scattered
# among the buffers torch allocates and frees on every entry they fragment the
# heap, about 2.5 kB per distinct seed in all. So on glibc a seed goes into the
# C environment with putenv(), which stores the pointer it is given and copies
# nothing, from a ring of buffers of ours:
#
# - the buffers are calloc'ed once and never freed, since the C environment may
#   point at one until the process ends, after Python's own objects are gone;
# - a buffer is written again only after the _RING - 1 others were put in
#   (the one in the environment is never the next), so a pointer getenv()
#   returned keeps its value through that many changes (POSIX lets the very
#   next one change it) and always points at a string: a buffer's last byte is
#   never written and stays NUL;
# - os.environ's own dict is updated and the same audit event raised as by
#   os.environ.__setitem__.
#
# Values other than digits (such as "random") take the plain path: only seeds
# come in unbounded variety. Other C libraries (musl frees what it replaces)
# and replaced os.environ objects take it too.

_RING = 256  # buffers
_SLOT = 64  # bytes per buffer: "PYTHONHASHSEED=", the value, its NUL, and a last NUL
_PREFIX = (HASH_SEED + "=").encode("ascii")
_VALUE_MAX = _SLOT - len(_PREFIX) - 2

_ring: Iterator[Any] | None = None  # ctypes char arrays over the buffers, in turn
_putenv: Any = None  # the C library's putenv
_ring_ready = False  # whether _ring was set up, or found unusable


def _set_hash_seed(value: str) -> None:
    """``os.environ[HASH_SEED] = value``, through the ring of buffers where it can."""
    ring = _ring if _ring_ready else _set_up_ring()
    if ring is None or os.environ is not _FAST_ENVIRON:
        os.environ[HASH_SEED] = value
        return
    raw = _ENCODE_VALUE(value)  # type: ignore[misc]
    if len(raw) > _VALUE_MAX or not raw.isdigit():
        os.environ[HASH_SEED] = value
        return
    key = _KEYS[HASH_SEED]  # type: ignore[index]
    sys.audit("os.putenv", key, raw)
    buffer = next(ring)
    buffer.value = _PREFIX + raw  # copied, with a NUL after it
    if _putenv(buffer) != 0:  # glibc's putenv only fails for want of memory
        raise OSError(errno.ENOMEM, os.strerror(errno.ENOMEM))
    _FAST_DATA[key] = raw  # type: ignore[index]


def _set_up_ring() -> Iterator[Any] | None:
    # No lock (which a fork could leave held): threads that race here each make
    # a ring, and the buffers of those that lose stay valid, never freed either.
    global _ring, _putenv, _ring_ready
    if not _ring_ready:
        if _KEYS is not None and _is_glibc():
            try:
                _ring, _putenv = _make_ring()
            except (ImportError, OSError, AttributeError, MemoryError):
                _ring = None  # no ctypes, or no such C function: os.environ it is
        _ring_ready = True
    return _ring


def _is_glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False


def _make_ring() -> tuple[Iterator[Any], Any]:
    import ctypes

    # PyDLL: the calls keep the GIL, as os.putenv does.
    libc = ctypes.PyDLL(None)
    calloc = libc.calloc
    calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
    calloc.restype = ctypes.c_void_p
    base = calloc(_RING, _SLOT)
    if not base:
        raise MemoryError("calloc failed")
    # Each array stops one byte short of its buffer, whose last byte stays NUL.
    array = ctypes.c_char * (_SLOT - 1)
    buffers = [array.from_address(base + i * _SLOT) for i in range(_RING)]
    putenv = libc.putenv
    putenv.restype = ctypes.c_int
    return itertools.cycle(buffers), putenv
