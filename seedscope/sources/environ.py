"""Environment variables that child processes read to be reproducible.

``PYTHONHASHSEED`` only affects interpreters started after it is set: the
running one fixed its hash seed at start-up (``seedscope run`` fixes that).
``CUBLAS_WORKSPACE_CONFIG`` only takes effect if set before CUDA starts.
``SEEDSCOPE_SEED`` is what ``deterministic()`` without a seed reads, so a
child process that enters one inside a scope of its parent gets the parent's
seed, as Lightning's ``seed_everything`` passes ``PL_GLOBAL_SEED`` on.
"""

from __future__ import annotations

import errno
import itertools
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from .._errors import SeedscopeWarning
from .._plain import check_environment_variable, expect_fields, read_optional_str
from .._seed import SEED_ENV_VAR
from .base import ProcessWide

__all__ = [
    "MANAGED",
    "EnvironmentVariables",
    "cublas_config_needed",
    "decode",
    "getenv",
    "raw_reader",
]

HASH_SEED = "PYTHONHASHSEED"
CUBLAS_CONFIG = "CUBLAS_WORKSPACE_CONFIG"
#: The variables a scope saves and restores, in the order of its state.
MANAGED = (HASH_SEED, CUBLAS_CONFIG, SEED_ENV_VAR)
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
    {name: _ENCODE(name) for name in MANAGED}
    if type(_FAST_DATA) is dict
    and _ENCODE is not None
    and _DECODE is not None
    and _ENCODE_VALUE is not None
    else None
)


def getenv(name: str) -> str | None:
    """``os.environ.get(name)`` for the variables this module manages, without the encoding."""
    if _KEYS is None or os.environ is not _FAST_ENVIRON:
        return os.environ.get(name)
    raw = _FAST_DATA.get(_KEYS[name])  # type: ignore[union-attr]
    return None if raw is None else _DECODE(raw)  # type: ignore[misc]


def raw_reader(names: tuple[str, ...]) -> Callable[[], tuple[Any, ...]]:
    """A function that reads ``names`` from the environment, for comparing.

    Its values are ``os.environ``'s own (encoded bytes on POSIX), read
    without decoding: two reads are equal when the variables are. Turn a
    value into text with :func:`decode`. For code that reads many variables
    around every test.
    """
    if _KEYS is None:
        return lambda: tuple(map(os.environ.get, names))
    keys = tuple(map(_ENCODE, names))  # type: ignore[arg-type]
    get = _FAST_DATA.get  # type: ignore[union-attr]

    def read() -> tuple[Any, ...]:
        if os.environ is not _FAST_ENVIRON:
            return tuple(map(os.environ.get, names))
        return tuple(map(get, keys))

    return read


def decode(value: Any) -> str | None:
    """The text of a value that :func:`raw_reader`'s function read (None: unset)."""
    if value is None or isinstance(value, str) or _DECODE is None:
        return value  # type: ignore[no-any-return]
    return _DECODE(value)  # type: ignore[no-any-return]


class EnvironmentVariables(ProcessWide):
    name = "environ"
    module = None

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict

    def capture(self) -> tuple[str | None, str | None, str | None]:
        return getenv(HASH_SEED), getenv(CUBLAS_CONFIG), getenv(SEED_ENV_VAR)

    def seed(self, seed: int) -> None:
        text = str(seed)
        _set_seed_variable(HASH_SEED, text)
        _set_seed_variable(SEED_ENV_VAR, text)
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
        for name, value in zip(MANAGED, state, strict=True):
            _set_or_unset(name, value)

    def dump_state(self, state: tuple[str | None, ...]) -> Any:
        return dict(zip(MANAGED, state, strict=True))

    def load_state(self, data: Any) -> tuple[str | None, ...]:
        fields = expect_fields(data, "state", MANAGED)
        state = tuple(read_optional_str(fields[name], f"state {name!r}") for name in MANAGED)
        # Strings, but os.environ refuses more (NUL, what the file system encoding cannot hold).
        for name, value in fields.items():
            check_environment_variable(name, value, "state")
        return state


def _set_or_unset(name: str, value: str | None) -> None:
    if getenv(name) == value:
        return
    if value is None:
        _unset(name)
    elif name in _PREFIXES:
        _set_seed_variable(name, value)
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


# -- seeds in the C environment, without glibc's copies ---------------------------------
#
# os.environ[name] = value calls setenv(), and glibc's setenv keeps every
# "NAME=value" string it was ever given, so that pointers getenv() returned stay
# valid: 64 bytes that are never freed for each distinct seed, and scattered
# among the buffers torch allocates and frees on every entry they fragment the
# heap, about 2.5 kB per distinct seed in all. So on glibc a seed goes into the
# C environment with putenv(), which stores the pointer it is given and copies
# nothing, from a ring of buffers of ours, one ring per variable
# (PYTHONHASHSEED and SEEDSCOPE_SEED):
#
# - the buffers are calloc'ed once and never freed, since the C environment may
#   point at one until the process ends, after Python's own objects are gone;
# - a buffer is written again only after the _RING - 1 others of its ring were
#   put in (the one in the environment is never the next), so a pointer getenv()
#   returned keeps its value through that many changes of its variable (POSIX
#   lets the very next one change it) and always points at a string: a
#   buffer's last byte is never written and stays NUL;
# - os.environ's own dict is updated and the same audit event raised as by
#   os.environ.__setitem__.
#
# Values other than digits (such as "random") take the plain path: only seeds
# come in unbounded variety. Other C libraries (musl frees what it replaces)
# and replaced os.environ objects take it too.

_RING = 256  # buffers per variable
_SLOT = 64  # bytes per buffer: "NAME=", the value, its NUL, and a last NUL
_PREFIXES = {name: (name + "=").encode("ascii") for name in (HASH_SEED, SEED_ENV_VAR)}

_rings: dict[str, Iterator[Any]] | None = None  # ctypes char arrays over the buffers, in turn
_putenv: Any = None  # the C library's putenv
_ring_ready = False  # whether _rings were set up, or found unusable


def _set_seed_variable(name: str, value: str) -> None:
    """``os.environ[name] = value``, through the variable's ring of buffers where it can."""
    rings = _rings if _ring_ready else _set_up_rings()
    if rings is None or os.environ is not _FAST_ENVIRON:
        os.environ[name] = value
        return
    raw = _ENCODE_VALUE(value)  # type: ignore[misc]
    prefix = _PREFIXES[name]
    if len(prefix) + len(raw) + 2 > _SLOT or not raw.isdigit():
        os.environ[name] = value
        return
    key = _KEYS[name]  # type: ignore[index]
    sys.audit("os.putenv", key, raw)
    buffer = next(rings[name])
    buffer.value = prefix + raw  # copied, with a NUL after it
    if _putenv(buffer) != 0:  # glibc's putenv only fails for want of memory
        raise OSError(errno.ENOMEM, os.strerror(errno.ENOMEM))
    _FAST_DATA[key] = raw  # type: ignore[index]


def _set_up_rings() -> dict[str, Iterator[Any]] | None:
    # No lock (which a fork could leave held): threads that race here each make
    # rings, and the buffers of those that lose stay valid, never freed either.
    global _rings, _putenv, _ring_ready
    if not _ring_ready:
        if _KEYS is not None and _is_glibc():
            try:
                _rings, _putenv = _make_rings()
            except (ImportError, OSError, AttributeError, MemoryError):
                _rings = None  # no ctypes, or no such C function: os.environ it is
        _ring_ready = True
    return _rings


def _is_glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False


def _make_rings() -> tuple[dict[str, Iterator[Any]], Any]:
    import ctypes

    # PyDLL: the calls keep the GIL, as os.putenv does.
    libc = ctypes.PyDLL(None)
    calloc = libc.calloc
    calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
    calloc.restype = ctypes.c_void_p
    base = calloc(_RING * len(_PREFIXES), _SLOT)
    if not base:
        raise MemoryError("calloc failed")
    # Each array stops one byte short of its buffer, whose last byte stays NUL.
    array = ctypes.c_char * (_SLOT - 1)
    rings: dict[str, Iterator[Any]] = {}
    for number, name in enumerate(_PREFIXES):
        first = base + number * _RING * _SLOT
        buffers = [array.from_address(first + i * _SLOT) for i in range(_RING)]
        rings[name] = itertools.cycle(buffers)
    putenv = libc.putenv
    putenv.restype = ctypes.c_int
    return rings, putenv
