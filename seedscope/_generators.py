"""User-owned generators: ``deterministic(seed, generators=[...])`` and ``capture(generators=...)``.

Each generator object gets a source of its own, placed after the global
sources, so the engine captures, seeds and restores it like any other state.
The generator at position ``i`` is seeded with ``derive_seed(seed, "generators", i)``:
each one has its own stream, and none repeats a global stream.
"""

from __future__ import annotations

import functools
import random
import sys
from collections.abc import Iterable
from typing import Any

from ._derive import derive_seed
from ._plain import b64, check_mt19937_key, expect_fields, read_bytes, read_int, read_str
from .sources.base import Source

__all__ = ["GeneratorSource", "generator_sources"]

_KINDS = "torch.Generator, numpy.random.Generator, numpy.random.RandomState or random.Random"


def _kind(obj: object) -> str:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Generator):
        return "torch"
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(obj, np.random.Generator):
            return "numpy"
        if isinstance(obj, np.random.RandomState):
            return "numpy.RandomState"
    if isinstance(obj, random.Random):
        if isinstance(obj, random.SystemRandom):
            raise TypeError(
                "random.SystemRandom reads the operating system's entropy: it has no state "
                "to seed or restore"
            )
        return "random"
    raise TypeError(f"generators items must be a {_KINDS}, not {type(obj).__name__} {obj!r}")


@functools.lru_cache(maxsize=256)
def _generator_seed(seed: int, index: int) -> int:
    # A scope derives the same seeds on every entry: hash them once.
    return derive_seed(seed, "generators", index)


class GeneratorSource(Source):
    """The state of one generator object that the user owns."""

    module = None

    def __init__(self, generator: Any, index: int) -> None:
        self.generator = generator
        self.index = index
        self.kind = _kind(generator)
        self.name = f"generators[{index}]"

    @property
    def _state_key(self) -> object:
        # One generator's state, whichever scope lists it and at what position:
        # an entry that leaves while a later one of another thread saved the
        # same generator hands its saved state on to it (see the engine).
        # Computed when asked: a pickled scope's copy holds another generator.
        return ("generator", id(self.generator))

    def capture(self) -> Any:
        g, kind = self.generator, self.kind
        if kind == "torch":
            return g.get_state()
        if kind == "numpy":
            return g.bit_generator.state
        if kind == "numpy.RandomState":
            return g.get_state(legacy=False)
        return g.getstate()

    def seed(self, seed: int) -> None:
        g, kind = self.generator, self.kind
        derived = _generator_seed(seed, self.index)
        if kind == "torch":
            g.manual_seed(derived)
        elif kind == "numpy":
            # What np.random.default_rng(derived) holds, for this bit generator type.
            g.bit_generator.state = type(g.bit_generator)(derived).state
        else:  # random.Random and RandomState
            g.seed(derived)

    def restore(self, state: Any) -> None:
        g, kind = self.generator, self.kind
        if kind == "torch":
            g.set_state(state)
        elif kind == "numpy":
            g.bit_generator.state = state
        elif kind == "numpy.RandomState":
            g.set_state(state)
        else:
            g.setstate(state)

    # -- plain data ------------------------------------------------------------

    def dump_state(self, state: Any) -> Any:
        kind = self.kind
        if kind == "torch":
            from .sources.torch import dump_tensor

            return {"kind": kind, "state": dump_tensor(state)}
        if kind == "numpy":
            return {"kind": kind, "state": _dump_numpy(state)}
        if kind == "numpy.RandomState":
            from .sources.numpy import dump_legacy_state

            return {"kind": kind, "state": dump_legacy_state(state)}
        from .sources.python import PythonRandom

        return {"kind": kind, "state": PythonRandom().dump_state(state)}

    def load_state(self, data: Any) -> Any:
        fields = expect_fields(data, "state", ("kind", "state"))
        kind = read_str(fields["kind"], "state 'kind'")
        if kind != self.kind:
            raise ValueError(
                f"holds the state of a {kind} but the generator given is a {self.kind}"
            )
        value = fields["state"]
        if kind == "torch":
            return self._load_torch(value)
        if kind == "numpy":
            return self._load_numpy(value)
        if kind == "numpy.RandomState":
            from .sources.numpy import load_legacy_state

            return load_legacy_state(value, "state 'state'")
        from .sources.python import load_random_state

        return load_random_state(value, "state 'state'")

    def _load_torch(self, value: object) -> Any:
        from .sources.torch import check_cpu_generator_state, check_philox_state

        torch = sys.modules["torch"]
        g = self.generator
        data = read_bytes(value, "state 'state'", size=len(g.get_state()))
        state = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        if g.device.type == "cpu":
            try:
                torch.Generator().set_state(state)  # torch checks it on a throwaway generator
            except RuntimeError as exc:
                raise ValueError(f"'state' is not a valid torch generator state: {exc}") from None
            check_cpu_generator_state(data, "state 'state'")
        elif g.device.type in ("cuda", "xpu"):
            check_philox_state(data, "state 'state'")
        return state

    def _load_numpy(self, value: object) -> Any:
        bit_generator = self.generator.bit_generator
        state = _load_numpy(value, "state 'state'")
        name = type(bit_generator).__name__
        if not isinstance(state, dict) or state.get("bit_generator") != name:
            raise ValueError(f"'state' is not the state of a {name} bit generator")
        # numpy's setters copy what they need and ignore the rest: a key too
        # long, or the wrong type, would be taken in part.
        _check_layout(state, bit_generator.state, "state 'state'")
        _check_values(name, state, "state 'state'")
        try:
            # numpy checks it on a throwaway generator, seeded so as to take no entropy.
            type(bit_generator)(0).state = state
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise ValueError(f"'state' is not a valid {name} state: {exc!r}") from None
        return state


def _check_layout(value: Any, like: Any, what: str) -> None:
    """``value`` has the fields of ``like`` (a state of the same bit generator), with
    ints where it has ints and arrays of the same type and shape."""
    np = sys.modules["numpy"]
    if isinstance(like, dict):
        if not isinstance(value, dict) or set(value) != set(like):
            got = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise ValueError(f"{what} must have the fields {sorted(like)}, got {got}")
        for key, item in like.items():
            _check_layout(value[key], item, f"{what} {key!r}")
    elif isinstance(like, np.ndarray):
        if (
            not isinstance(value, np.ndarray)
            or value.dtype != like.dtype
            or value.shape != like.shape
        ):
            got = (
                f"{value.dtype} of shape {list(value.shape)}"
                if isinstance(value, np.ndarray)
                else type(value).__name__
            )
            raise ValueError(
                f"{what} must be an array of {like.dtype} of shape {list(like.shape)}, got {got}"
            )
    elif type(like) is int and type(value) is not int:
        raise ValueError(f"{what} must be an int, not {type(value).__name__}")


# numpy's setters take any C int for these, and a draw then reads outside the
# generator's buffers (MT19937 'pos', Philox 'buffer_pos'). The ranges are
# those numpy's own states keep to.
_POSITIONS = {"MT19937": (("state", "pos"), 624), "Philox": (("buffer_pos",), 4)}


def _check_values(name: str, state: dict[str, Any], what: str) -> None:
    if name in _POSITIONS:
        path, high = _POSITIONS[name]
        value: Any = state
        for key in path:
            value = value[key]
        read_int(value, f"{what} {path[-1]!r}", low=0, high=high)
    if name == "MT19937":
        check_mt19937_key(state["state"]["key"].tolist(), f"{what} 'key'")
    if name in ("PCG64", "PCG64DXSM"):
        for key in ("state", "inc"):
            read_int(state["state"][key], f"{what} {key!r}", low=0, high=2**128 - 1)
        if not state["state"]["inc"] % 2:
            # PCG's increment is odd (seeding makes it so); with an even one
            # the stream is short, and all zero from a zero state.
            raise ValueError(
                f"{what} 'inc' is {state['state']['inc']}: a PCG increment must be odd"
            )
    if "has_uint32" in state:
        read_int(state["has_uint32"], f"{what} 'has_uint32'", low=0, high=1)
        read_int(state["uinteger"], f"{what} 'uinteger'", low=0, high=2**32 - 1)


def _dump_numpy(value: Any) -> Any:
    """A bit generator's state: dicts, ints, strings and arrays (as dtype + base64)."""
    if isinstance(value, dict):
        return {key: _dump_numpy(item) for key, item in value.items()}
    if isinstance(value, (int, str)):
        return int(value) if isinstance(value, int) else value
    if hasattr(value, "dtype") and hasattr(value, "tobytes"):
        array = value.astype(value.dtype.newbyteorder("<"))
        return {"dtype": array.dtype.str, "shape": list(array.shape), "data": b64(array.tobytes())}
    raise TypeError(f"unexpected {type(value).__name__} in a numpy bit generator state")


def _load_numpy(value: Any, what: str) -> Any:
    if isinstance(value, dict):
        if set(value) == {"dtype", "shape", "data"}:
            np = sys.modules["numpy"]
            dtype = read_str(value["dtype"], f"{what} 'dtype'")
            if dtype not in ("<u4", "<u8", "<i4", "<i8", "|u1"):
                raise ValueError(f"{what} has an unexpected array type {dtype!r}")
            shape = value["shape"]
            if not isinstance(shape, list):
                raise ValueError(f"{what} 'shape' must be a list of ints")
            dims = [read_int(n, f"{what} 'shape'", low=0, high=2**20) for n in shape]
            size = np.dtype(dtype).itemsize
            for n in dims:
                size *= n
            data = read_bytes(value["data"], f"{what} 'data'", size=size)
            array = np.frombuffer(data, dtype=dtype).reshape(dims)
            return array.astype(array.dtype.newbyteorder("="))
        return {key: _load_numpy(item, f"{what} {key!r}") for key, item in value.items()}
    if type(value) in (int, str):
        return value
    raise ValueError(f"{what} has an unexpected {type(value).__name__}")


def generator_sources(generators: Iterable[Any] | None) -> tuple[GeneratorSource, ...]:
    """Validate ``generators=`` and make one source per generator, in order."""
    if generators is None:
        return ()
    if isinstance(generators, (str, bytes)) or not isinstance(generators, Iterable):
        raise TypeError(
            "generators must be a list of generator objects (wrap a single one in [...]), "
            f"not {type(generators).__name__}"
        )
    items = list(generators)
    seen: set[int] = set()
    for item in items:
        if id(item) in seen:
            raise ValueError(f"generator {item!r} is listed twice")
        seen.add(id(item))
    return tuple(GeneratorSource(item, index) for index, item in enumerate(items))
