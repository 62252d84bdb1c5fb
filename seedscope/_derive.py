"""Stable derived seeds: one root seed, many independent child seeds.

``derive_seed(42, "tests/test_x.py::test_y")`` is the same number on every
platform, in every process and in every release: it is BLAKE2b over an
unambiguous encoding of the seed and the keys, never Python's ``hash()``
(randomized per process for ``str``). Changing the encoding below changes
every derived seed, so it is frozen; ``tests/test_derive.py`` pins golden values.
"""

from __future__ import annotations

import hashlib
import numbers

from ._seed import validate_seed

__all__ = ["derive_seed"]

# 16 bytes, BLAKE2b's personalization size: separates these digests from any
# other use of BLAKE2b over similar bytes.
_PERSON = b"seedscope.derive"


def _encode(tag: bytes, payload: bytes) -> bytes:
    # Tag, then length, then payload: no two sequences of keys share an encoding.
    return tag + len(payload).to_bytes(8, "little") + payload


def _encode_key(position: int, key: object) -> bytes:
    if isinstance(key, str):
        return _encode(b"s", key.encode("utf-8", "surrogatepass"))
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        value = int(key)
        # Minimal two's-complement bytes: any int, negative or as large as you like.
        return _encode(b"i", value.to_bytes(value.bit_length() // 8 + 1, "little", signed=True))
    raise TypeError(
        f"derive_seed() keys[{position}] must be an int or a str, not {type(key).__name__} {key!r}"
    )


def derive_seed(seed: int, *keys: int | str) -> int:
    """A seed in [0, 2**32 - 1] derived from ``seed`` and ``keys``, stable everywhere.

    ``seed`` must be a valid seed (an int in [0, 2**32 - 1]). Each key is a
    ``str`` or an ``int`` (any int, negative included; ``bool`` is refused);
    ``1`` and ``"1"`` are different keys, and so are ``("ab",)`` and ``("a", "b")``.
    Different keys give statistically independent seeds; the same arguments give
    the same seed on any platform, process and seedscope release.

    >>> derive_seed(42, "tests/test_x.py::test_y") == derive_seed(42, "tests/test_x.py::test_y")
    True
    >>> derive_seed(42, 1) != derive_seed(42, "1")
    True
    """
    root = validate_seed(seed)
    digest = hashlib.blake2b(digest_size=4, person=_PERSON)
    digest.update(_encode(b"r", root.to_bytes(4, "little")))
    for position, key in enumerate(keys):
        digest.update(_encode_key(position, key))
    return int.from_bytes(digest.digest(), "little")
