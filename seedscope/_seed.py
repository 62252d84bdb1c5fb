"""Seed validation: what counts as a seed, and where a missing one comes from."""

from __future__ import annotations

import numbers
import os

__all__ = [
    "MAX_SEED",
    "SEED_ENV_VAR",
    "SEED_TEXT",
    "parse_digits",
    "parse_seed",
    "seed_from_environment",
    "validate_seed",
]

MAX_SEED = 2**32 - 1
SEED_ENV_VAR = "SEEDSCOPE_SEED"
_ALLOWED = f"an int in [0, {MAX_SEED}] (0 to 2**32 - 1)"
_DIGITS = "written with ASCII digits 0-9"
# What a seed given as text must look like: for error messages that add to it.
SEED_TEXT = f"{_ALLOWED} {_DIGITS}"


def validate_seed(value: object, *, what: str = "seed") -> int:
    """Return ``value`` as a plain ``int`` if it is a valid seed, else raise.

    Valid seeds are ``int`` and numpy integers in [0, 2**32 - 1], the range that
    ``np.random.seed`` and ``PYTHONHASHSEED`` both accept. ``bool`` is refused:
    ``True`` as a seed is almost always a mistake.
    """
    if type(value) is int and 0 <= value <= MAX_SEED:  # the common case, checked fast
        return value
    # numpy integers register as numbers.Integral; bool and np.bool_ must not pass.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be {_ALLOWED}, not {type(value).__name__} {value!r}")
    seed = int(value)
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{what} must be {_ALLOWED}, got {seed}")
    return seed


def parse_digits(text: str, *, what: str, allowed: str) -> int:
    """``text`` as an int if it is ASCII digits 0-9 and nothing else, else ``ValueError``.

    The one parser for the numbers users write as text: seeds (through
    :func:`parse_seed`) and ranks. ``int()`` also takes surrounding whitespace,
    a sign, ``_`` between digits, and the decimal digits of every script
    (Arabic-Indic, fullwidth, ...); in a seed each of those is more likely a
    mistake than the number meant, so none is accepted. Leading zeros are
    (``'007'`` is 7): decimal is the only reading. The error says
    ``{what} must be {allowed} written with ASCII digits 0-9, got {text!r}``.
    """
    # isdigit() alone passes non-ASCII digits; isascii() leaves 0-9. Both refuse ''.
    if text.isascii() and text.isdigit():
        try:
            # Leading zeros would count against int()'s limit on digits.
            return int(text.lstrip("0") or "0")
        except ValueError:  # more digits than int() converts (4300 by default)
            pass
    raise ValueError(f"{what} must be {allowed} {_DIGITS}, got {text!r}")


def parse_seed(text: str, *, what: str) -> int:
    """A seed written as text (``$SEEDSCOPE_SEED``, ``--seed``): see :func:`parse_digits`.

    >>> parse_seed("007", what="--seed")
    7
    >>> parse_seed("+5", what="--seed")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: --seed must be an int in [0, 4294967295] ... ASCII digits 0-9, got '+5'
    """
    seed = parse_digits(text, what=what, allowed=_ALLOWED)
    if seed > MAX_SEED:
        raise ValueError(f"{what} must be {SEED_TEXT}, got {text!r}")
    return seed


def seed_from_environment() -> int:
    """The seed for ``deterministic(None)``: ``$SEEDSCOPE_SEED`` if set, else 0."""
    raw = os.environ.get(SEED_ENV_VAR)
    if raw is None:
        return 0
    return parse_seed(raw, what=f"environment variable {SEED_ENV_VAR}")
