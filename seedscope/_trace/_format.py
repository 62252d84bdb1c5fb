"""The trace file: a versioned stream of binary records, written and read without pickle.

Layout::

    header   MAGIC, format version (u16), metadata length (u32), metadata (JSON)
    records  one kind byte each, then a fixed struct and its variable parts
    end      an ``E`` record, then a footer that points back at it

Records: ``S`` a string (op names, module paths and locations are written once
and referred to by number), ``O`` an operation, ``G`` the generator states from
that point on, ``P`` a seed a scope was entered with, ``E`` the end (the op
count and the seeds again, so that :func:`summary` reads them without walking
the file). The writer buffers records and writes them in large blocks; the
reader reads them one at a time: neither holds more than one record and the
string table, however long the run.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

__all__ = [
    "GENERATORS",
    "NO_STRING",
    "VERSION",
    "GeneratorStates",
    "Input",
    "Op",
    "Summary",
    "TraceError",
    "TraceReader",
    "TraceWriter",
    "metadata",
    "summary",
]

MAGIC = b"SEEDSCOPE-TRACE\n"
VERSION = 1
_FOOTER_MAGIC = b"SEEDSCOPE-END\n\x00\x00"
_FOOTER = struct.Struct("<Q16s")  # offset of the E record, magic
_HEADER = struct.Struct("<HI")
_STRING = struct.Struct("<I")
_OP = struct.Struct("<BIIIHH")  # flags, name, module, location, inputs, outputs
_INPUT = struct.Struct("<16sBqI")  # digest, kind, producer index, producer location
_GENERATORS = struct.Struct("<IB")  # location, which generators are present
_SEED = struct.Struct("<q")
_END = struct.Struct("<QI")  # ops, seeds
NO_STRING = 0xFFFFFFFF
DIGEST_SIZE = 16
_BLOCK = 1 << 20  # the writer's buffer is written out when it grows past this

# Op flags.
BACKWARD, RANDOM, FROM_DATA, VIEW, UNINITIALIZED = 1, 2, 4, 8, 16
# Input kinds: what made an op's input.
TRACED, OUTSIDE, ARGUMENTS, UNWRITTEN = 0, 1, 2, 3
# The global generators whose states ``G`` records hold, in this order.
GENERATORS = ("random", "numpy", "torch")


class TraceError(ValueError):
    """A file that is not a seedscope trace, or one that ends early."""


@dataclass(frozen=True)
class Input:
    digest: bytes
    kind: int  # TRACED, OUTSIDE, ARGUMENTS or UNWRITTEN
    producer: int  # the index of the op that made it, or -1
    producer_location: str | None


@dataclass(frozen=True)
class Op:
    index: int
    name: str
    flags: int
    module: str | None
    location: str | None
    generator: bytes | None  # a random op's generator state before it ran
    inputs: tuple[Input, ...]
    outputs: tuple[bytes, ...]

    @property
    def backward(self) -> bool:
        return bool(self.flags & BACKWARD)

    @property
    def phase(self) -> str:
        return "backward" if self.flags & BACKWARD else "forward"


@dataclass(frozen=True)
class GeneratorStates:
    before: int  # the index of the next op
    location: str | None
    states: dict[str, bytes]  # by name, for the generators present in the process


@dataclass(frozen=True)
class Summary:
    ops: int
    seeds: tuple[int, ...]  # of the scopes entered, in order; -1 for isolated()
    metadata: dict[str, Any]


def metadata() -> dict[str, Any]:
    """The header of a trace this process writes: the versions that recorded it."""
    from .. import __version__

    return {
        "seedscope": __version__,
        "python": sys.version.split()[0],
        "torch": getattr(sys.modules.get("torch"), "__version__", None),
    }


class TraceWriter:
    """Writes records to ``path`` through a buffer; ``close`` ends the file properly.

    The file is made on the first record, unless ``eager``: a process that
    records nothing leaves no file.
    """

    def __init__(self, path: str, metadata: dict[str, Any], *, eager: bool = True) -> None:
        self.path = path
        self._metadata = metadata
        self._fd: int | None = None
        self._buffer = bytearray()
        self._offset = 0
        self._strings: dict[str, int] = {}
        self.ops = 0
        self.seeds: list[int] = []
        self.closed = False
        if eager:
            self._open()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        meta = json.dumps(self._metadata, sort_keys=True).encode()
        self._buffer += MAGIC + _HEADER.pack(VERSION, len(meta)) + meta

    def string(self, text: str | None) -> int:
        """The number of ``text`` in the string table, writing it the first time."""
        if text is None:
            return NO_STRING
        number = self._strings.get(text)
        if number is None:
            number = self._strings[text] = len(self._strings)
            data = text.encode("utf-8", "surrogatepass")
            self.write(b"S" + _STRING.pack(len(data)) + data)
        return number

    def write(self, record: bytes) -> None:
        if self._fd is None:
            if self.closed:
                return
            self._open()
        self._buffer += record
        if len(self._buffer) >= _BLOCK:
            self.flush()

    def op(
        self,
        flags: int,
        name: int,
        module: int,
        location: int,
        generator: bytes | None,
        inputs: list[bytes],
        outputs: list[bytes],
    ) -> int:
        """Write one op (inputs packed with :func:`pack_input`); returns its index."""
        head = b"O" + _OP.pack(flags, name, module, location, len(inputs), len(outputs))
        self.write(b"".join((head, generator or b"", *inputs, *outputs)))
        self.ops += 1
        return self.ops - 1

    def generators(self, location: int, states: dict[str, bytes]) -> None:
        present = 0
        parts = []
        for bit, name in enumerate(GENERATORS):
            state = states.get(name)
            if state is not None:
                present |= 1 << bit
                parts.append(state)
        self.write(b"G" + _GENERATORS.pack(location, present) + b"".join(parts))

    def seed(self, seed: int | None) -> None:
        value = -1 if seed is None else seed
        self.seeds.append(value)
        self.write(b"P" + _SEED.pack(value))

    def flush(self) -> None:
        if self._fd is None or not self._buffer:
            return
        view = memoryview(self._buffer)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._offset += len(self._buffer)
        view.release()
        self._buffer.clear()

    def close(self) -> None:
        """Write the end record and footer, and close the file (if one was made)."""
        if self.closed:
            return
        self.closed = True
        if self._fd is None:
            return
        end = self._offset + len(self._buffer)
        self._buffer += b"E" + _END.pack(self.ops, len(self.seeds))
        self._buffer += b"".join(_SEED.pack(seed) for seed in self.seeds)
        self._buffer += _FOOTER.pack(end, _FOOTER_MAGIC)
        try:
            self.flush()
        finally:
            os.close(self._fd)
            self._fd = None

    def abandon(self) -> None:
        """Drop the buffer and close without writing: for a forked child's copy."""
        self._buffer.clear()
        self.closed = True
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def pack_input(digest: bytes, kind: int, producer: int, location: int) -> bytes:
    return _INPUT.pack(digest, kind, producer, location)


def _describe_start(data: bytes) -> str:
    if not data:
        return "it is empty"
    return f"it starts with {data[:16]!r}"


def _read_header(file: BinaryIO, path: str) -> dict[str, Any]:
    start = file.read(len(MAGIC))
    if start != MAGIC:
        if MAGIC.startswith(start) and start:
            raise TraceError(f"{path} is truncated: it ends inside the trace header")
        raise TraceError(
            f"{path} is not a seedscope trace ({_describe_start(start)}, not {MAGIC!r})"
        )
    head = file.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise TraceError(f"{path} is truncated: it ends inside the trace header")
    version, length = _HEADER.unpack(head)
    if version != VERSION:
        raise TraceError(
            f"{path} is a seedscope trace of format version {version}; this seedscope reads "
            f"version {VERSION} (record both runs with the same seedscope)"
        )
    raw = file.read(length)
    if len(raw) < length:
        raise TraceError(f"{path} is truncated: it ends inside the trace header")
    try:
        metadata = json.loads(raw)
    except ValueError:
        raise TraceError(f"{path} has a damaged header: its metadata is not JSON") from None
    if not isinstance(metadata, dict):
        raise TraceError(f"{path} has a damaged header: its metadata is not a JSON object")
    return metadata


class TraceReader:
    """The records of a trace, in order: :class:`Op` and :class:`GeneratorStates`.

    Iterating raises :class:`TraceError` for a record that is cut short or
    unknown, and for a file that ends without its end record.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            self._file: BinaryIO = open(self.path, "rb")  # noqa: SIM115  (closed by close())
        except OSError as exc:
            raise TraceError(f"cannot read trace {self.path}: {exc.strerror or exc}") from None
        try:
            self.metadata = _read_header(self._file, self.path)
        except BaseException:
            self._file.close()
            raise
        self._strings: list[str] = []
        self.ops = 0
        self.seeds: tuple[int, ...] = ()
        self.ended = False

    def __enter__(self) -> TraceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def _read(self, size: int, what: str) -> bytes:
        data = self._file.read(size)
        if len(data) < size:
            raise TraceError(
                f"{self.path} is truncated: it ends inside {what} (after {self.ops} ops; "
                "the run that wrote it did not finish: killed, or ended by os._exit)"
            )
        return data

    def _string(self, number: int) -> str | None:
        if number == NO_STRING:
            return None
        if number >= len(self._strings):
            raise TraceError(f"{self.path} is damaged: string {number} is used before it is made")
        return self._strings[number]

    def __iter__(self) -> Iterator[Op | GeneratorStates]:
        return self

    def __next__(self) -> Op | GeneratorStates:
        while True:
            if self.ended:
                raise StopIteration
            kind = self._file.read(1)
            if kind == b"O":
                return self._op()
            if kind == b"S":
                (length,) = _STRING.unpack(self._read(_STRING.size, "a string"))
                data = self._read(length, "a string")
                self._strings.append(data.decode("utf-8", "surrogatepass"))
            elif kind == b"G":
                location, present = _GENERATORS.unpack(
                    self._read(_GENERATORS.size, "generator states")
                )
                states = {}
                for bit, name in enumerate(GENERATORS):
                    if present & (1 << bit):
                        states[name] = self._read(DIGEST_SIZE, "generator states")
                return GeneratorStates(self.ops, self._string(location), states)
            elif kind == b"P":
                self._read(_SEED.size, "a scope's seed")
            elif kind == b"E":
                ops, count = _END.unpack(self._read(_END.size, "the end record"))
                raw = self._read(_SEED.size * count, "the end record")
                self.seeds = tuple(seed for (seed,) in _SEED.iter_unpack(raw))
                self._read(_FOOTER.size, "the footer")
                if ops != self.ops:
                    raise TraceError(
                        f"{self.path} is damaged: its end record counts {ops} ops, "
                        f"the file holds {self.ops}"
                    )
                self.ended = True
            elif not kind:
                raise TraceError(
                    f"{self.path} is truncated: it ends after {self.ops} ops without its end "
                    "record (the run that wrote it did not finish: killed, or ended by os._exit)"
                )
            else:
                raise TraceError(
                    f"{self.path} is damaged: unknown record kind {kind!r} after {self.ops} ops"
                )

    def _op(self) -> Op:
        flags, name, module, location, n_in, n_out = _OP.unpack(self._read(_OP.size, "an op"))
        generator = self._read(DIGEST_SIZE, "an op") if flags & RANDOM else None
        inputs = []
        for _ in range(n_in):
            digest, kind, producer, where = _INPUT.unpack(self._read(_INPUT.size, "an op"))
            inputs.append(Input(digest, kind, producer, self._string(where)))
        outputs = tuple(self._read(DIGEST_SIZE, "an op") for _ in range(n_out))
        op = Op(
            self.ops,
            self._string(name) or "?",
            flags,
            self._string(module),
            self._string(location),
            generator,
            tuple(inputs),
            outputs,
        )
        self.ops += 1
        return op


def summary(path: str | os.PathLike[str]) -> Summary:
    """The op count, seeds and metadata of a finished trace, read from its end."""
    name = os.fspath(path)
    try:
        file = open(name, "rb")  # noqa: SIM115
    except OSError as exc:
        raise TraceError(f"cannot read trace {name}: {exc.strerror or exc}") from None
    with file:
        metadata = _read_header(file, name)
        size = file.seek(0, os.SEEK_END)
        if size >= _FOOTER.size:
            file.seek(size - _FOOTER.size)
            end, magic = _FOOTER.unpack(file.read(_FOOTER.size))
        else:
            end, magic = 0, b""
        if magic != _FOOTER_MAGIC or not 0 < end < size:
            raise TraceError(
                f"{name} is truncated: it has no end record (the run that wrote it did not "
                "finish: killed, or ended by os._exit)"
            )
        file.seek(end)
        record = file.read(1 + _END.size)
        if record[:1] != b"E" or len(record) < 1 + _END.size:
            raise TraceError(f"{name} is damaged: its footer does not point at its end record")
        ops, count = _END.unpack(record[1:])
        raw = file.read(_SEED.size * count)
        if len(raw) < _SEED.size * count:
            raise TraceError(f"{name} is damaged: its end record is cut short")
        seeds = tuple(seed for (seed,) in _SEED.iter_unpack(raw))
    return Summary(ops, seeds, metadata)
