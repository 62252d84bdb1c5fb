"""The ``random`` module's hidden global ``Random`` instance."""

from __future__ import annotations

import random
from typing import Any

from .._plain import (
    check_mt19937_key,
    expect_fields,
    read_float,
    read_int,
    words_from_b64,
    words_to_b64,
)
from .base import ProcessWide

__all__ = ["PythonRandom", "load_random_state"]

_WORDS = 624  # MT19937's state, then the position in it


class PythonRandom(ProcessWide):
    name = "python"
    module = None  # random is imported by seedscope itself

    def capture(self) -> Any:
        return random.getstate()

    def seed(self, seed: int) -> None:
        # Exactly random.seed(seed). A seed seen before is set from its cached
        # state, a third cheaper; a new one (each test of a seeded test run
        # has its own) is seeded directly: building the state to cache would
        # cost three times as much as the seeding it saves.
        state = _seeded_states.get(seed)
        if state is not None:
            random.setstate(state)
            return
        random.seed(seed)
        if seed in _seeded_states:  # the second time: worth caching
            # From a generator of its own: another thread may draw from random's.
            _seeded_states[seed] = random.Random(seed).getstate()
        else:
            if len(_seeded_states) >= _CACHED:
                _seeded_states.clear()
            _seeded_states[seed] = None

    def restore(self, state: Any) -> None:
        random.setstate(state)

    def dump_state(self, state: Any) -> Any:
        version, internal, gauss_next = state
        return {
            "version": version,
            "key": words_to_b64(internal[:-1]),
            "pos": internal[-1],
            "gauss_next": gauss_next,
        }

    def load_state(self, data: Any) -> Any:
        return load_random_state(data, "state")


# Seed -> the state random.seed(seed) gives, or None for a seed seen once.
# Emptied when full; a race between threads costs a seeding, nothing more.
_seeded_states: dict[int, tuple[Any, ...] | None] = {}
_CACHED = 128


def load_random_state(data: Any, what: str) -> tuple[Any, ...]:
    """A ``random.Random`` state from :meth:`PythonRandom.dump_state`'s plain data."""
    fields = expect_fields(data, what, ("version", "key", "pos", "gauss_next"))
    version = read_int(fields["version"], f"{what} 'version'", low=3, high=3)
    key = words_from_b64(fields["key"], f"{what} 'key'", count=_WORDS)
    check_mt19937_key(key, f"{what} 'key'")  # random.setstate takes it, then draws only 0
    pos = read_int(fields["pos"], f"{what} 'pos'", low=0, high=_WORDS)
    gauss = fields["gauss_next"]
    gauss_next = None if gauss is None else read_float(gauss, f"{what} 'gauss_next'")
    state = (version, (*key, pos), gauss_next)
    random.Random().setstate(state)  # let random check it too, on a throwaway generator
    return state
