"""Seed validation: what counts as a seed, and where a missing one comes from."""

from __future__ import annotations

import numbers
import os

__all__ = ["MAX_SEED", "SEED_ENV_VAR", "seed_from_environment", "validate_seed"]

MAX_SEED = 2**32 - 1
SEED_ENV_VAR = "SEEDSCOPE_SEED"
_ALLOWED = f"an int in [0, {MAX_SEED}] (0 to 2**32 - 1)"


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


def seed_from_environment() -> int:
    """The seed for ``deterministic(None)``: ``$SEEDSCOPE_SEED`` if set, else 0."""
    raw = os.environ.get(SEED_ENV_VAR)
    if raw is None:
        return 0
    try:
        value = int(raw.strip(), 10)
    except ValueError:
        raise ValueError(
            f"environment variable {SEED_ENV_VAR} must be {_ALLOWED}, got {raw!r}"
        ) from None
    return validate_seed(value, what=f"environment variable {SEED_ENV_VAR}")
