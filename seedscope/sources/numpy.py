"""numpy's legacy global generator (``np.random.seed``, ``np.random.rand``, ...)."""

from __future__ import annotations

import importlib
import sys
from typing import Any

from .._plain import b64, check_mt19937_key, expect_fields, read_bytes, read_float, read_int
from .base import ProcessWide, entropy_hooked, hook_entropy

__all__ = ["NumpyGlobal", "dump_legacy_state", "load_legacy_state"]

_WORDS = 624


class NumpyGlobal(ProcessWide):
    name = "numpy"
    # ``import numpy`` does not create the global RandomState; numpy.random does.
    module = "numpy.random"

    def capture(self) -> Any:
        if "numpy" not in entropy_hooked:
            hook_entropy("numpy")
        return sys.modules["numpy.random"].get_state(legacy=False)

    def seed(self, seed: int) -> None:
        sys.modules["numpy.random"].seed(seed)

    def restore(self, state: Any) -> None:
        # set_state copies the key into the generator one word at a time:
        # from a list, twenty times faster than from get_state's array (the
        # same words, so the same state).
        inner = state["state"]
        key = inner["key"]
        if hasattr(key, "tolist"):
            state = {**state, "state": {**inner, "key": key.tolist()}}
        sys.modules["numpy.random"].set_state(state)

    def dump_state(self, state: Any) -> Any:
        return dump_legacy_state(state)

    def load_state(self, data: Any) -> Any:
        return load_legacy_state(data, "state")


def dump_legacy_state(state: Any) -> dict[str, Any]:
    """A ``RandomState`` state (``get_state(legacy=False)``) as plain data."""
    return {
        "bit_generator": state["bit_generator"],
        "key": b64(state["state"]["key"].astype("<u4").tobytes()),
        "pos": int(state["state"]["pos"]),
        "has_gauss": int(state["has_gauss"]),
        "gauss": float(state["gauss"]),
    }


def load_legacy_state(data: Any, what: str) -> dict[str, Any]:
    fields = expect_fields(data, what, ("bit_generator", "key", "pos", "has_gauss", "gauss"))
    if fields["bit_generator"] != "MT19937":
        raise ValueError(
            f"{what} 'bit_generator' must be 'MT19937', got {fields['bit_generator']!r}"
        )
    np = importlib.import_module("numpy")
    key = np.frombuffer(
        read_bytes(fields["key"], f"{what} 'key'", size=4 * _WORDS), dtype="<u4"
    ).astype(np.uint32)
    check_mt19937_key(key.tolist(), f"{what} 'key'")  # set_state takes it, then draws only 0
    state = {
        "bit_generator": "MT19937",
        "state": {
            "key": key,
            "pos": read_int(fields["pos"], f"{what} 'pos'", low=0, high=_WORDS),
        },
        "has_gauss": read_int(fields["has_gauss"], f"{what} 'has_gauss'", low=0, high=1),
        "gauss": read_float(fields["gauss"], f"{what} 'gauss'"),
    }
    # numpy checks it too, on a throwaway generator seeded so as to take no entropy.
    np.random.RandomState(np.random.MT19937(0)).set_state(state)
    return state
