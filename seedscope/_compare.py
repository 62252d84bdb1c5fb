"""Nested comparison of two runs' results, bit for bit or within a tolerance.

Used by :func:`~seedscope.check_reproducible` and by ``seedscope verify`` for
tensor files. numpy and torch are never imported here: a tensor or an array
can only exist if its library is already imported, so ``sys.modules`` is
enough to recognise them.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["Mismatch", "find_mismatch", "format_value"]


class Mismatch:
    """Where two runs' results first differ.

    ``path`` names the place as an expression on the result, such as
    ``out["loss"][3]`` or ``out.weights[0, 2]`` (an element of a tensor or
    array). ``first`` and ``second`` are what the two runs had there: the two
    values, or for a structural difference what differs (two types, shapes,
    dtypes, lengths, or a key present in one run only). ``reason`` says which
    kind of difference it is, and ``runs`` which two runs are compared (run 1
    and the first run that differs from it). For an element of a tensor or
    array, ``index`` is its index (also the end of ``path``), else ``None``.
    """

    __slots__ = ("first", "index", "path", "reason", "runs", "second")

    def __init__(
        self,
        path: str,
        first: Any,
        second: Any,
        reason: str = "values differ",
        runs: tuple[int, int] = (1, 2),
        index: tuple[int, ...] | None = None,
    ) -> None:
        self.path = path
        self.first = first
        self.second = second
        self.reason = reason
        self.runs = runs
        self.index = index

    def __str__(self) -> str:
        a, b = self.runs
        return (
            f"{self.path}: {self.reason}: {format_value(self.first)} in run {a}, "
            f"{format_value(self.second)} in run {b}"
        )

    def __repr__(self) -> str:
        return (
            f"Mismatch(path={self.path!r}, first={format_value(self.first)}, "
            f"second={format_value(self.second)}, reason={self.reason!r}, runs={self.runs!r})"
        )


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()

# Large tensors and arrays are compared this many bytes at a time: the comparison's
# temporaries stay small, and the first block that differs ends it.
_BLOCK_BYTES = 4 << 20


def _summary(value: Any) -> str | None:
    """A one-line description of a tensor or array too large to print."""
    torch = sys.modules.get("torch")
    numpy = sys.modules.get("numpy")
    if torch is not None and isinstance(value, torch.Tensor):
        count = value.numel()
    elif numpy is not None and isinstance(value, numpy.ndarray):
        count = value.size
    else:
        return None
    return _shape_summary(type(value).__name__, value.shape, value.dtype, count)


def _shape_summary(kind: str, shape: Any, dtype: Any, count: int) -> str | None:
    """What a report shows for a tensor or array of ``count`` elements: None when it has
    few enough to be shown whole."""
    if count <= 8:
        return None
    return f"<{kind} of shape {tuple(shape)}, dtype {dtype}>"


def format_value(value: Any, limit: int = 200) -> str:
    """A short, exact, one-line text for a value in a report (floats with every digit)."""
    if isinstance(value, type):
        return value.__qualname__
    text = _summary(value)
    if text is None:
        try:
            text = repr(value)
        except Exception as exc:  # a broken __repr__ must not break the report
            text = f"<{type(value).__name__} object; repr failed: {exc!r}>"
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _key(key: Any) -> str:
    if isinstance(key, str):
        escaped = key.replace("\\", "\\\\").replace('"', '\\"')
        if escaped.isprintable():
            return f'["{escaped}"]'
    return f"[{key!r}]"


def _index(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(i) for i in index) + "]"


class _Comparer:
    def __init__(self, rtol: float, atol: float) -> None:
        self.exact = rtol == 0 and atol == 0
        self.rtol = rtol
        self.atol = atol
        self.seen: set[tuple[int, int]] = set()

    def compare(self, a: Any, b: Any, path: str) -> Mismatch | None:
        if a is b:
            return None
        if type(a) is not type(b):
            return Mismatch(path, type(a), type(b), "types differ")
        torch = sys.modules.get("torch")
        if torch is not None:
            if isinstance(a, torch.Tensor):
                return self.tensors(a, b, path, torch)
            if isinstance(a, torch.nn.Module):
                return self.compare(a.state_dict(), b.state_dict(), f"{path}.state_dict()")
        numpy = sys.modules.get("numpy")
        if numpy is not None and isinstance(a, (numpy.ndarray, numpy.generic)):
            return self.arrays(numpy.asarray(a), numpy.asarray(b), path, numpy)
        if isinstance(a, float):
            return None if self.floats_equal(a, b) else Mismatch(path, a, b)
        if isinstance(a, complex):
            equal = self.floats_equal(a.real, b.real) and self.floats_equal(a.imag, b.imag)
            return None if equal else Mismatch(path, a, b)
        if isinstance(a, (int, str, bytes, bytearray, type(None), range)):
            return None if a == b else Mismatch(path, a, b)

        pair = (id(a), id(b))
        if pair in self.seen:
            return None  # a cycle: compared further up
        self.seen.add(pair)
        dataclasses = sys.modules.get("dataclasses")  # imported if a dataclass exists
        if dataclasses is not None and dataclasses.is_dataclass(a):
            for field in dataclasses.fields(a):
                found = self.compare(
                    getattr(a, field.name, MISSING),
                    getattr(b, field.name, MISSING),
                    f"{path}.{field.name}",
                )
                if found:
                    return found
            return None
        if isinstance(a, Mapping):
            return self.mappings(a, b, path)
        if isinstance(a, (list, tuple)):
            return self.sequences(a, b, path)
        if isinstance(a, (set, frozenset)):
            if a == b:
                return None
            return Mismatch(path, _sample(a - b), _sample(b - a), "sets differ (items in one only)")
        if _default_equality(a) and hasattr(a, "__dict__"):
            # No equality of its own (so == is identity): compare the attributes.
            return self.mappings(vars(a), vars(b), path, attributes=True)
        try:
            equal = bool(a == b)
        except Exception as exc:
            return Mismatch(path, a, b, f"cannot be compared ({type(exc).__name__}: {exc})")
        return None if equal else Mismatch(path, a, b)

    def floats_equal(self, a: float, b: float) -> bool:
        if self.exact:
            return struct.pack("<d", a) == struct.pack("<d", b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
        return abs(a - b) <= self.atol + self.rtol * abs(b)

    def mappings(
        self, a: Mapping[Any, Any], b: Mapping[Any, Any], path: str, *, attributes: bool = False
    ) -> Mismatch | None:
        def at(key: Any) -> str:
            return f"{path}.{key}" if attributes else f"{path}{_key(key)}"

        for key, value in a.items():
            if key not in b:
                return Mismatch(at(key), value, MISSING, "key in one run only")
            found = self.compare(value, b[key], at(key))
            if found:
                return found
        for key, value in b.items():
            if key not in a:
                return Mismatch(at(key), MISSING, value, "key in one run only")
        return None

    def sequences(self, a: Any, b: Any, path: str) -> Mismatch | None:
        fields = getattr(type(a), "_fields", None)  # namedtuple
        for index, (x, y) in enumerate(zip(a, b, strict=False)):
            where = f"{path}.{fields[index]}" if fields else f"{path}[{index}]"
            found = self.compare(x, y, where)
            if found:
                return found
        if len(a) != len(b):
            return Mismatch(path, len(a), len(b), "lengths differ")
        return None

    def tensors(self, a: Any, b: Any, path: str, torch: Any) -> Mismatch | None:
        for attribute in ("dtype", "shape", "device", "layout"):
            x, y = getattr(a, attribute), getattr(b, attribute)
            if x != y:
                x, y = (tuple(x), tuple(y)) if attribute == "shape" else (x, y)
                return Mismatch(path, x, y, f"{attribute}s differ")
        if a.layout != torch.strided:
            a, b = a.to_dense(), b.to_dense()
        x = a.detach().cpu().resolve_conj().resolve_neg().contiguous().reshape(-1)
        y = b.detach().cpu().resolve_conj().resolve_neg().contiguous().reshape(-1)
        if x.is_quantized:
            x, y = x.int_repr(), y.int_repr()
        if x.numel() == 0:
            return None
        exact = self.exact or not (x.is_floating_point() or x.is_complex())
        size = x.element_size()
        step = max(1, _BLOCK_BYTES // size)
        for start in range(0, x.numel(), step):
            p, q = x[start : start + step], y[start : start + step]
            if exact:
                differs = (
                    p.view(torch.uint8).reshape(-1, size) != q.view(torch.uint8).reshape(-1, size)
                ).any(dim=1)
            else:
                differs = ~torch.isclose(p, q, rtol=self.rtol, atol=self.atol, equal_nan=True)
            flat = differs.nonzero()
            if flat.numel():
                position = start + int(flat[0, 0])
                index = _unravel(position, tuple(a.shape))
                where = path + _index(index) if index else path
                return Mismatch(where, x[position].item(), y[position].item(), index=index)
        return None

    def arrays(self, a: Any, b: Any, path: str, numpy: Any) -> Mismatch | None:
        if a.dtype != b.dtype:
            return Mismatch(path, a.dtype, b.dtype, "dtypes differ")
        if a.shape != b.shape:
            return Mismatch(path, a.shape, b.shape, "shapes differ")
        if a.size == 0:
            return None
        if a.dtype.hasobject:
            x = numpy.ascontiguousarray(a).reshape(-1)
            y = numpy.ascontiguousarray(b).reshape(-1)
            for position, (p, q) in enumerate(zip(x, y, strict=True)):
                found = self.compare(p, q, path + _index(_unravel(position, a.shape)))
                if found:
                    return found
            return None
        exact = self.exact or a.dtype.kind not in "fc"
        size = a.dtype.itemsize
        for start, x, y in _array_blocks(a, b, numpy):
            if exact:
                differs = (
                    x.view(numpy.uint8).reshape(-1, size) != y.view(numpy.uint8).reshape(-1, size)
                ).any(axis=1)
            else:
                differs = ~numpy.isclose(x, y, rtol=self.rtol, atol=self.atol, equal_nan=True)
            positions = numpy.flatnonzero(differs)
            if positions.size:
                offset = int(positions[0])
                index = _unravel(start + offset, a.shape)
                where = path + _index(index) if index else path
                return Mismatch(where, x[offset].item(), y[offset].item(), index=index)
        return None


def _array_blocks(a: Any, b: Any, numpy: Any) -> Iterator[tuple[int, Any, Any]]:
    """Two arrays of one shape and dtype, in C order a block at a time: (first position, blocks).

    Each block is a contiguous 1-d array; only blocks are copied, never a whole array.
    """
    step = max(1, _BLOCK_BYTES // max(1, a.dtype.itemsize))
    if a.flags.c_contiguous and b.flags.c_contiguous:
        x, y = a.reshape(-1), b.reshape(-1)
        for start in range(0, x.size, step):
            yield start, x[start : start + step], y[start : start + step]
        return
    # Another layout (Fortran order, a strided view): nditer copies block by block.
    blocks = numpy.nditer(
        (a, b),
        flags=("external_loop", "buffered", "zerosize_ok"),
        op_flags=[["readonly", "contig"]] * 2,
        order="C",
        buffersize=step,
    )
    start = 0
    for x, y in blocks:
        yield start, x, y
        start += x.size


def _default_equality(value: Any) -> bool:
    """Whether ``value``'s class keeps object's ``==``, which is identity."""
    equality: object = type(value).__eq__
    return equality is object.__eq__


def _unravel(position: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        position, rest = divmod(position, size)
        index.append(rest)
    return tuple(reversed(index))


def _sample(items: Any, limit: int = 5) -> Any:
    try:
        ordered = sorted(items)
    except TypeError:
        ordered = sorted(items, key=repr)
    if len(ordered) > limit:
        return [*ordered[:limit], f"... ({len(ordered) - limit} more)"]
    return ordered


def find_mismatch(
    first: Any, second: Any, *, root: str = "out", rtol: float = 0.0, atol: float = 0.0
) -> Mismatch | None:
    """The first place where ``first`` and ``second`` differ, or None if they agree.

    Exact comparison (both tolerances 0) is bit for bit: ``-0.0`` differs from
    ``0.0`` and NaNs agree only with the same bits. With a tolerance, floats
    agree when ``|a - b| <= atol + rtol * |b|`` (numpy's and torch's rule) and
    NaN agrees with NaN.
    """
    return _Comparer(rtol, atol).compare(first, second, root)
