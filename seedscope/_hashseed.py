"""Which hash seed the running interpreter was started with.

Python salts ``str`` and ``bytes`` hashes once, at start-up, from
``PYTHONHASHSEED``; changing the variable later changes nothing in the running
process. So ``os.environ`` cannot tell whether this interpreter's hash seed is
fixed: code may have set the variable after start-up, and ``-E`` makes Python
ignore it.

The check here does not trust the environment. It takes the candidate seeds
(``PYTHONHASHSEED`` from the start-up environment, which Linux keeps in
``/proc/self/environ``, and from ``os.environ``), computes for each one the
hash CPython would give a probe string under that seed (its documented
generator for the secret key, then SipHash-1-3 or SipHash-2-4 as
``sys.hash_info.algorithm`` says), and compares that with the probe's real
``hash()``. A match proves the seed. On an interpreter with another hash
algorithm (a custom build, PyPy) nothing can be computed, and the start-up
environment is read instead.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

__all__ = ["HashSeed", "startup_environ", "startup_hash_seed"]

VARIABLE = "PYTHONHASHSEED"
_PROBE = b"seedscope hash seed probe"  # longer than any Py_HASH_CUTOFF (at most 7)
_MASK = (1 << 64) - 1


@dataclass(frozen=True)
class HashSeed:
    """What is known about this interpreter's hash seed.

    ``fixed``: whether ``str``/``bytes`` hashes are the same in every process
    started this way (``None``: cannot tell). ``seed``: the ``PYTHONHASHSEED``
    value when known. ``how``: how that was found out, for reports.
    """

    fixed: bool | None
    seed: int | None
    how: str


def startup_environ() -> dict[str, str] | None:
    """The environment this process started with, or None where it cannot be read.

    On Linux the kernel keeps it in ``/proc/self/environ``, whatever the
    program did to ``os.environ`` since.
    """
    try:
        with open("/proc/self/environ", "rb") as file:
            raw = file.read()
    except OSError:
        return None
    environ: dict[str, str] = {}
    for entry in raw.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep:
            environ[os.fsdecode(name)] = os.fsdecode(value)
    return environ


def _parse(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw.strip(), 10)
    except ValueError:
        return None  # "random", or a value Python refuses at start-up
    return value if 0 <= value <= 2**32 - 1 else None


def _secret(seed: int) -> bytes:
    """CPython's ``_Py_HashSecret`` for ``PYTHONHASHSEED=seed`` (Python/bootstrap_hash.c)."""
    if seed == 0:
        return bytes(24)  # 0 means "no randomization": an all-zero key
    out = bytearray(24)
    x = seed
    for index in range(24):
        x = (x * 214013 + 2531011) & 0xFFFFFFFF
        out[index] = (x >> 16) & 0xFF
    return bytes(out)


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & _MASK


def _siphash(k0: int, k1: int, data: bytes, c_rounds: int, d_rounds: int) -> int:
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def rounds(count: int) -> None:
        nonlocal v0, v1, v2, v3
        for _ in range(count):
            v0 = (v0 + v1) & _MASK
            v2 = (v2 + v3) & _MASK
            v1 = _rotl(v1, 13) ^ v0
            v3 = _rotl(v3, 16) ^ v2
            v0 = _rotl(v0, 32)
            v2 = (v2 + v1) & _MASK
            v0 = (v0 + v3) & _MASK
            v1 = _rotl(v1, 17) ^ v2
            v3 = _rotl(v3, 21) ^ v0
            v2 = _rotl(v2, 32)

    whole = len(data) - len(data) % 8
    for start in range(0, whole, 8):
        word = int.from_bytes(data[start : start + 8], "little")
        v3 ^= word
        rounds(c_rounds)
        v0 ^= word
    last = ((len(data) & 0xFF) << 56) | int.from_bytes(data[whole:], "little")
    v3 ^= last
    rounds(c_rounds)
    v0 ^= last
    v2 ^= 0xFF
    rounds(d_rounds)
    return v0 ^ v1 ^ v2 ^ v3


_ROUNDS = {"siphash13": (1, 3), "siphash24": (2, 4)}


def _expected_hash(seed: int) -> int | None:
    """``hash(_PROBE)`` in an interpreter started with ``PYTHONHASHSEED=seed``; None: unknown."""
    info = sys.hash_info
    rounds = _ROUNDS.get(info.algorithm)
    if rounds is None or sys.implementation.name != "cpython":
        return None
    secret = _secret(seed)
    k0 = int.from_bytes(secret[:8], "little")
    k1 = int.from_bytes(secret[8:16], "little")
    value = _siphash(k0, k1, _PROBE, *rounds) & ((1 << info.width) - 1)
    if value >= 1 << (info.width - 1):  # Py_hash_t is signed
        value -= 1 << info.width
    return -2 if value == -1 else value


def can_verify() -> bool:
    """Whether this interpreter's hash seed can be checked by computation."""
    return _expected_hash(0) is not None


def has_hash_seed(seed: int) -> bool | None:
    """Whether this interpreter was started with ``PYTHONHASHSEED=seed``; None: cannot tell."""
    expected = _expected_hash(seed)
    return None if expected is None else expected == hash(_PROBE)


def startup_hash_seed() -> HashSeed:
    """Whether, and to what, this interpreter's hash seed was fixed at start-up."""
    at_start = startup_environ()
    start_raw = None if at_start is None else at_start.get(VARIABLE)
    now_raw = os.environ.get(VARIABLE)
    candidates: list[int] = []
    for raw in (start_raw, now_raw, "0"):
        value = _parse(raw)
        if value is not None and value not in candidates:
            candidates.append(value)

    if can_verify():
        for candidate in candidates:
            if has_hash_seed(candidate):
                return HashSeed(
                    True, candidate, f"hash() checked: it agrees with {VARIABLE}={candidate}"
                )
        if at_start is not None:
            where = (
                f"{VARIABLE} was unset at start-up"
                if start_raw is None
                else f"{VARIABLE}={start_raw!r} at start-up"
            )
        else:
            where = f"{VARIABLE} is unset" if now_raw is None else f"{VARIABLE}={now_raw!r}"
        if sys.flags.ignore_environment and (start_raw or now_raw):
            where += ", and Python ignored the environment (-E or -I)"
        return HashSeed(False, None, f"hash() checked: {where}")

    # Another hash algorithm: trust the start-up environment, or failing that os.environ.
    if sys.flags.ignore_environment:
        return HashSeed(None, None, "Python ignored the environment (-E or -I); cannot check")
    raw, source = (start_raw, "start-up environment") if at_start else (now_raw, "os.environ")
    value = _parse(raw)
    if value is not None:
        return HashSeed(True, value, f"{VARIABLE}={raw} in the {source} (not verified)")
    if at_start is None:
        return HashSeed(None, None, "the start-up environment cannot be read here")
    return HashSeed(False, None, f"{VARIABLE} was not set to a seed at start-up")
