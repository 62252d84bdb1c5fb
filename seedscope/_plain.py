"""Plain data for saved states: what JSON and ``torch.load(weights_only=True)`` both accept.

States are turned into dicts, lists, strings, ints, floats, bools and ``None``
only (never tuples, which JSON turns into lists); byte strings become base64
text. The readers here check shapes and types and raise ``ValueError`` (or
``TypeError``) with a message that says what is wrong, so that a snapshot is
validated completely before anything is restored.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "b64",
    "check_environment_variable",
    "check_mt19937_key",
    "expect_fields",
    "is_plain",
    "read_bool",
    "read_bytes",
    "read_float",
    "read_int",
    "read_optional_str",
    "read_str",
    "words_from_b64",
    "words_to_b64",
]


def b64(data: bytes) -> str:
    import base64  # here, not at import: seedscope's import stays light

    return base64.b64encode(data).decode("ascii")


def read_bytes(value: object, what: str, *, size: int | None = None) -> bytes:
    import base64
    import binascii

    if not isinstance(value, str):
        raise ValueError(f"{what} must be base64 text, not {type(value).__name__}")
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"{what} is not valid base64 ({exc})") from None
    if size is not None and len(data) != size:
        raise ValueError(f"{what} must be {size} bytes, got {len(data)}")
    return data


def words_to_b64(words: Any) -> str:
    """32-bit unsigned words as base64 of their little-endian bytes."""
    words = [int(word) for word in words]
    return b64(struct.pack(f"<{len(words)}I", *words))


def words_from_b64(value: object, what: str, *, count: int) -> list[int]:
    data = read_bytes(value, what, size=4 * count)
    return list(struct.unpack(f"<{count}I", data))


def expect_fields(value: object, what: str, fields: tuple[str, ...]) -> Mapping[str, Any]:
    """``value`` as a dict with exactly ``fields`` as keys."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a dict, not {type(value).__name__}")
    missing = [name for name in fields if name not in value]
    if missing:
        raise ValueError(f"{what} is missing {', '.join(map(repr, missing))}")
    extra = [name for name in value if name not in fields]
    if extra:
        raise ValueError(f"{what} has unexpected {', '.join(map(repr, extra))}")
    return value


def read_int(value: object, what: str, *, low: int, high: int) -> int:
    if type(value) is not int:
        raise ValueError(f"{what} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be in [{low}, {high}], got {value}")
    return value


def read_float(value: object, what: str) -> float:
    # JSON may turn 1.0 into 1 on other writers; ints are accepted as floats.
    if type(value) in (float, int):
        try:
            number = float(value)  # type: ignore[arg-type]
        except OverflowError:  # an int beyond the largest float
            number = math.inf
        if math.isfinite(number):
            return number
    raise ValueError(f"{what} must be a finite float, got {value!r}")


def read_bool(value: object, what: str) -> bool:
    if type(value) is not bool:
        raise ValueError(f"{what} must be true or false, not {value!r}")
    return value


def read_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, not {type(value).__name__}")
    return value


def read_optional_str(value: object, what: str) -> str | None:
    return None if value is None else read_str(value, what)


def is_plain(value: object) -> bool:
    """Whether ``value`` is made of JSON types only (str-keyed dicts, lists, no tuples)."""
    if value is None or type(value) in (bool, int, str):
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(is_plain(item) for item in value)
    if type(value) is dict:
        return all(type(key) is str and is_plain(item) for key, item in value.items())
    return False


def check_mt19937_key(words: Sequence[int], what: str) -> None:
    """Refuse an MT19937 key that its recurrence can never leave: every draw from it is 0.

    The recurrence reads only the top bit of the first word and all of the
    other 623; if those are all 0, so is every later word. Seeding never makes
    such a key (CPython and numpy set the top bit of the first word, torch
    starts the second word from a non-zero constant), and no draw leads to it.
    """
    if not words[0] & 0x80000000 and not any(words[1:]):
        raise ValueError(
            f"{what} is a dead MT19937 key: the top bit of its first word and all of its "
            "other 623 words are 0, so every draw from it would be 0 (seeding always sets "
            "one of them)"
        )


def check_environment_variable(name: object, value: object, what: str) -> None:
    """Refuse a name or value that ``os.environ[name] = value`` (or ``del``) would raise on.

    ``None`` means unset. A name must be a non-empty string without ``=``
    (Windows allows one in front) or NUL; a value a string without NUL; both
    must encode to the operating system's environment (file system encoding).
    """
    import os

    windows = os.name == "nt"
    if (
        not isinstance(name, str)
        or not name
        or "\0" in name
        or "=" in (name[1:] if windows else name)
    ):
        raise ValueError(
            f"{what}: {name!r} is not an environment variable name (names are non-empty "
            "strings without '=' or NUL characters)"
        )
    _check_environment_text(name, f"{what} name {name!r}")
    if value is None:
        return
    if not isinstance(value, str):
        raise ValueError(f"{what} {name!r} must be a string or null, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(
            f"{what} {name!r} is {value!r}, with a NUL character, which an environment "
            "variable cannot hold (values are strings without NUL characters)"
        )
    _check_environment_text(value, f"{what} {name!r}")
    # Windows' limit for one variable: "name=value" in UTF-16 code units.
    if windows and len(f"{name}={value}".encode("utf-16-le", "surrogatepass")) // 2 > 32767:
        raise ValueError(f"{what} {name!r} is longer than Windows allows (32767 characters)")


def _check_environment_text(text: str, what: str) -> None:
    import os

    if os.name == "nt":
        return  # Windows keeps the environment as UTF-16 text: any string goes
    try:
        os.fsencode(text)  # what os.environ does on POSIX
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{what} is {text!r}, which the environment cannot hold: {exc.object[exc.start]!r} "
            f"at position {exc.start} has no {exc.encoding} encoding"
        ) from None
