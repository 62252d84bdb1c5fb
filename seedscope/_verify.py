"""``seedscope verify``: run a command several times and compare what each run wrote.

Every run gets the same environment, with ``SEEDSCOPE_SEED`` set; standard
input is empty. Standard output is kept in memory and each ``--compare`` file
is copied aside after each run. Bytes are compared first, a few MiB at a time;
only outputs whose bytes differ are opened as tensor files (numpy or torch
imported then), so that the report can name the first differing tensor, index
and values. Files are not read whole: bytes, text lines and arrays come a chunk
at a time (but for arrays in Fortran order, loaded), and torch.save files are
memory-mapped, so that memory does not grow with the files; an archive member
that would unpack past a limit is refused.
"""

from __future__ import annotations

import ast
import codecs
import contextlib
import io
import math
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, TextIO, TypeVar, cast

from ._compare import (
    MISSING,
    Mismatch,
    _index,
    _key,
    _shape_summary,
    _unravel,
    find_mismatch,
    format_value,
)
from ._seed import SEED_ENV_VAR
from ._trace import _hook
from ._trace._compare import compare_traces
from ._trace._format import TraceError, summary

__all__ = ["verify"]

AGREE, DIFFER, USAGE, FAILED = 0, 1, 2, 3
_TAIL_LINES = 20


class _Failure(Exception):
    """A run failed or an output could not be read: exit code 3."""


@dataclass
class _Output:
    label: str  # "stdout" or the path as given
    kind: str  # "stdout" or "file"
    copies: list[str]  # per run: the saved copy (files)


class _Progress:
    """Run-by-run progress on standard error, live on a terminal."""

    def __init__(self, stream: TextIO, runs: int) -> None:
        self.stream = stream
        self.runs = runs
        self.live = stream.isatty()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def start(self, run: int) -> None:
        started = time.monotonic()
        prefix = f"seedscope verify: run {run}/{self.runs}"
        if not self.live:
            self._write(f"{prefix} ...\n")
            return
        self._stop.clear()

        def tick() -> None:
            while not self._stop.wait(0.2):
                self._write(f"\r{prefix}: running, {time.monotonic() - started:.1f} s")

        self._write(f"{prefix}: running")
        self._thread = threading.Thread(target=tick, daemon=True)
        self._thread.start()

    def finish(self, run: int, seconds: float, status: str) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        end = "\r\x1b[K" if self.live else ""
        self._write(f"{end}seedscope verify: run {run}/{self.runs}: {status} in {seconds:.1f} s\n")


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


def _tail(data: bytes) -> str:
    lines = data.decode("utf-8", "replace").rstrip("\n").splitlines()
    shown = lines[-_TAIL_LINES:]
    skipped = (
        f"  ... ({len(lines) - len(shown)} earlier lines)\n" if len(lines) > len(shown) else ""
    )
    return skipped + "".join(f"  | {line}\n" for line in shown)


class _Terminate(Exception):
    pass


def _execute(
    command: Sequence[str], environ: dict[str, str], progress: _Progress, run: int
) -> tuple[bytes, bytes, int, float]:
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environ,
        )
    except FileNotFoundError:
        raise _Usage(f"command not found: {command[0]}") from None
    except PermissionError:
        raise _Usage(f"cannot run {command[0]}: permission denied") from None
    except OSError as exc:
        raise _Usage(f"cannot run {command[0]}: {exc.strerror or exc}") from None
    progress.start(run)
    try:
        while True:
            try:
                stdout, stderr = process.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                continue
    except BaseException:
        # Interrupted (Ctrl-C reaches the child too) or terminated: do not leave it running.
        try:
            process.terminate()
            process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        progress.finish(run, time.monotonic() - started, "interrupted")
        raise
    seconds = time.monotonic() - started
    status = "done" if process.returncode == 0 else _describe_exit(process.returncode)
    progress.finish(run, seconds, status)
    return stdout, stderr, process.returncode, seconds


class _Usage(Exception):
    """A usage problem found while running (a command that cannot start): exit code 2."""


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino


def _collect(path: str, before: tuple[int, int, int] | None, run: int, copy_to: str) -> None:
    after = _stat(path)
    if after is None:
        if not os.path.exists(path):
            raise _Failure(f"run {run} did not write {path}: it does not exist after the run")
    elif before is not None and after == before:
        raise _Failure(
            f"run {run} did not write {path}: it is unchanged since before the run "
            "(a command compared with --compare must write the file every run)"
        )
    try:
        shutil.copyfile(path, copy_to)
    except OSError as exc:
        raise _Failure(f"cannot read {path} after run {run}: {exc.strerror or exc}") from None


# -- comparing ---------------------------------------------------------------------------

# Files are read this many bytes at a time, from both at once: large enough that a
# comparison runs at the speed of reading, small enough that memory stays flat.
_CHUNK = 4 << 20
# Text is decoded this many bytes at a time, and a line longer than this many
# characters is compared in pieces.
_TEXT_CHUNK = 1 << 20
# An archive member (.npz, torch.save) may unpack to at most 4 GiB, or 16 times the
# archive's size if that is more: deflate turns a few MB of zeros into GBs, while
# torch.save stores its members uncompressed and savez_compressed seldom shrinks real
# data 16-fold.
_MEMBER_LIMIT = 4 << 30
_MEMBER_LIMIT_RATIO = 16
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"  # where str.splitlines splits
_SHOWN_CHARS = 300  # of a line, in the report
_END = "<end of output>"


# What the comparisons read: a file (buffered or not), an archive member, bytes in memory.
_Stream = io.RawIOBase | io.BufferedIOBase


def _read(stream: _Stream, size: int) -> bytes:
    """``size`` bytes of ``stream``, fewer only at its end."""
    data = stream.read(size) or b""
    while 0 < len(data) < size:  # a short read before the end
        more = stream.read(size - len(data))
        if not more:
            break
        data += more
    return data


def _fill(stream: _Stream, view: memoryview) -> int:
    """Read into ``view`` until it is full or ``stream`` ends; how many bytes were read."""
    filled = 0
    while filled < len(view):
        count = stream.readinto(view[filled:])
        if not count:
            break
        filled += count
    return filled


def _chunks(
    first: _Stream, second: _Stream, size: int, length: int | None = None
) -> Iterator[tuple[int, bytes | bytearray, bytes | bytearray]]:
    """Two streams side by side, ``size`` bytes at a time: (offset, first's, second's).

    Full chunks come in two buffers that the next chunk overwrites: reading into the
    same memory again is several times faster than allocating it afresh. Stops after
    the first chunk that is short in either stream. With ``length``, reads that many
    bytes of each, and a stream that ends sooner is an error.
    """
    if length is not None:
        size = max(1, min(size, length))  # small arrays: small buffers
    buffers = bytearray(size), bytearray(size)
    views = memoryview(buffers[0]), memoryview(buffers[1])
    offset = 0
    while length is None or offset < length:
        want = size if length is None else min(size, length - offset)
        counts = _fill(first, views[0][:want]), _fill(second, views[1][:want])
        if length is not None and min(counts) < want:
            raise ValueError(
                f"EOF: the array data ends after {offset + min(counts)} of its {length} bytes"
            )
        if counts == (size, size):
            yield offset, buffers[0], buffers[1]
        else:
            yield offset, bytes(views[0][: counts[0]]), bytes(views[1][: counts[1]])
            return
        offset += size


def _locate(a: bytes | bytearray, b: bytes | bytearray, end: int) -> int | None:
    """The first index below ``end`` where ``a`` and ``b`` differ, or None."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        # Already imported (importing it would cost more than it saves): compare
        # 8 bytes at a time, then look inside the first 8 that differ.
        words = end // 8
        differs = numpy.frombuffer(a, numpy.uint64, words) != numpy.frombuffer(
            b, numpy.uint64, words
        )
        word = int(differs.argmax()) if words else 0
        low = word * 8 if words and differs[word] else words * 8
        high = min(low + 8, end)
    else:
        # Halve the range that holds the first difference (if any): slices of bytes
        # compare with memcmp, so this takes well under a millisecond per chunk.
        low, high = 0, end
        while high - low > 64:
            middle = (low + high) // 2
            if a[low:middle] == b[low:middle]:
                low = middle
            else:
                high = middle
    return next((i for i in range(low, high) if a[i] != b[i]), None)


def _first_difference(first: _Stream, second: _Stream, size: int = _CHUNK) -> int | None:
    """The offset of the first byte where two streams differ, or the length of the
    shorter when it is the start of the other; None when they are equal."""
    for offset, a, b in _chunks(first, second, size):
        if a != b:
            common = min(len(a), len(b))
            found = _locate(a, b, common)
            return offset + (common if found is None else found)
    return None


def _byte_difference(offset: int, sizes: tuple[int, int]) -> str:
    if offset < min(sizes):
        return f"bytes differ from offset {offset}"
    return f"sizes differ: {sizes[0]} and {sizes[1]} bytes"


class _Shown:
    """What the report shows of a line, noted as the line is read piece by piece."""

    def __init__(self, text: str = "") -> None:
        self.start = ""  # one character more than is shown, to know the line is cut
        self.length = 0
        self.printable = True
        self.quotes = ""  # which quotes the line has, for repr() to pick the same
        self.add(text)

    def add(self, piece: str) -> str:
        if len(self.start) <= _SHOWN_CHARS:
            self.start += piece[: _SHOWN_CHARS + 1 - len(self.start)]
        self.length += len(piece)
        self.printable = self.printable and piece.isprintable()
        self.quotes += "".join(q for q in "'\"" if q in piece and q not in self.quotes)
        return piece

    def __str__(self) -> str:
        line = self.start
        if self.length > len(line):
            # Cut anyway: the start, with the whole line's quotes past the cut, shows as
            # the whole line would.
            line += self.quotes
        text = line if self.printable else repr(line)
        return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _line_pieces(stream: _Stream, size: int) -> Iterator[tuple[str, bool]]:
    """The lines of a stream's text, as str.splitlines splits it (invalid UTF-8 replaced).

    Each item is ``(text, ends)``: a line longer than ``size`` characters comes in
    pieces, all but the last with ``ends`` false, so that no more is held at once.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending = ""  # the start of a line whose end is not read yet
    continued = False  # pieces of that line went out already
    after_cr = False  # the text so far ends with "\r", which a "\n" next would join
    while True:
        data = _read(stream, size)
        text = decoder.decode(data, final=not data)
        if text and after_cr:
            after_cr = False
            if text[0] == "\n":
                text = text[1:]
        if text:
            after_cr = text[-1] == "\r"
            text = pending + text
            lines = text.splitlines()
            pending = "" if text[-1] in _LINE_BREAKS else lines.pop()
            if lines:
                continued = False
                for line in lines:
                    yield line, True
            if len(pending) >= size:
                yield pending, False
                pending, continued = "", True
        if not data:
            break
    if pending or continued:
        yield pending, True


def _line(
    first: tuple[str, bool], rest: Iterator[tuple[str, bool]], shown: _Shown
) -> Iterator[str]:
    """The pieces of one line, from its first piece on, each noted in ``shown``."""
    text, ends = first
    while True:
        if text:
            yield shown.add(text)
        if ends:
            return
        text, ends = next(rest)


def _same_line(a: Iterator[str], b: Iterator[str]) -> bool:
    """Whether two lines, given piece by piece, are equal; reads both to their ends."""
    x = y = ""
    while True:
        x, y = x or next(a, ""), y or next(b, "")
        if not x or not y or x[: len(y)] != y[: len(x)]:
            same = not x and not y
            break
        common = min(len(x), len(y))
        x, y = x[common:], y[common:]
    for _ in a:  # the rest, for the report
        pass
    for _ in b:
        pass
    return same


def _text_difference(
    first: _Stream, second: _Stream, runs: tuple[int, int], size: int = _TEXT_CHUNK
) -> str | None:
    """The first line where two outputs differ, with both versions of it; None when every
    line agrees (and only line endings or invalid bytes differ)."""
    pieces = _line_pieces(first, size), _line_pieces(second, size)
    number = 0
    while True:
        number += 1
        a, b = next(pieces[0], None), next(pieces[1], None)
        if a is None and b is None:
            return None
        if a is not None and b is not None and a[1] and b[1]:  # two whole lines: the usual
            if a[0] == b[0]:
                continue
            shown = _Shown(a[0]), _Shown(b[0])
        else:
            shown = _Shown(), _Shown()
            lines: list[Iterator[str]] = []
            for piece, rest, show in zip((a, b), pieces, shown, strict=True):
                if piece is None:
                    show.add(_END)
                    lines.append(iter(()))
                else:
                    lines.append(_line(piece, rest, show))
            if _same_line(*lines) and a is not None and b is not None:
                continue
        return (
            f"line {number} differs:\n    run {runs[0]}: {shown[0]}\n    run {runs[1]}: {shown[1]}"
        )


def _output_difference(a: bytes, b: bytes, runs: tuple[int, int]) -> str:
    """How two runs' standard outputs (which differ) differ."""
    text = _text_difference(io.BytesIO(a), io.BytesIO(b), runs)
    if text is None:
        offset = _first_difference(io.BytesIO(a), io.BytesIO(b))
        text = _byte_difference(0 if offset is None else offset, (len(a), len(b)))
    return text


def _is_text(stream: _Stream) -> bool:
    """Whether a stream is UTF-8 text, without a NUL byte in its first 8 KiB."""
    data = _read(stream, _TEXT_CHUNK)
    if b"\0" in data[:8192]:
        return False
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while data:
            decoder.decode(data)
            data = _read(stream, _TEXT_CHUNK)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _kind(path: str) -> str:
    """What a file holds: "npy", "npz", "torch", "text" or "binary"."""
    with open(path, "rb") as file:
        head = file.read(8)
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (OSError, zipfile.BadZipFile):
            return "binary"
        if any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
            return "torch"
        if names and all(name.endswith(".npy") for name in names):
            return "npz"
        return "binary"
    if os.path.splitext(path)[1].lower() in (".pt", ".pth", ".ckpt"):
        return "torch"  # torch's legacy (pre-1.6) format, a pickle
    with open(path, "rb") as file:
        return "text" if _is_text(file) else "binary"


class _Oversized(Exception):
    """An archive member that would unpack past the limit: refused, exit code 3."""


def _size_text(size: int) -> str:
    """``1536`` -> ``"1.5 KiB (1536 bytes)"``."""
    value, unit = float(size), "bytes"
    for larger in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit} ({size} bytes)"


_ArchiveT = TypeVar("_ArchiveT", bound="_Archive")


class _Archive:
    """A zip archive whose members are refused if they would unpack past the limit."""

    def __init__(self, path: str, run: int) -> None:
        self.run = run
        self.size = os.path.getsize(path)
        self.limit = max(_MEMBER_LIMIT, _MEMBER_LIMIT_RATIO * self.size)
        self.zip = zipfile.ZipFile(path)
        try:
            for info in self.zip.infolist():
                self.check(info, info.file_size, "as the zip archive declares")
        except BaseException:
            self.zip.close()
            raise

    def check(self, info: zipfile.ZipInfo, size: int, declared: str) -> None:
        if size > self.limit:
            raise _Oversized(
                f"member {info.filename} of run {self.run}'s copy would unpack to "
                f"{_size_text(size)}, {declared}, past the limit of {_size_text(self.limit)} "
                f"for a member ({_MEMBER_LIMIT >> 30} GiB, or {_MEMBER_LIMIT_RATIO} times the "
                "archive's size if more)"
            )

    def __enter__(self: _ArchiveT) -> _ArchiveT:
        return self

    def __exit__(self, *exc: object) -> None:
        self.zip.close()


@dataclass
class _NpyHeader:
    shape: tuple[int, ...]
    fortran_order: bool
    dtype: Any
    count: int  # elements
    nbytes: int  # of data, after the header


def _npy_header(stream: _Stream) -> _NpyHeader:
    """Read the header of a .npy file (what numpy.load checks, with allow_pickle=False)."""
    from numpy.lib import format as npy

    version = npy.read_magic(stream)
    if version == (1, 0):
        shape, fortran_order, dtype = npy.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran_order, dtype = npy.read_array_header_2_0(stream)
    elif version == (3, 0):  # a UTF-8 header, which numpy has no public reader for
        (length,) = struct.unpack("<I", _read(stream, 4))
        if length > 10000:  # numpy.load's default max_header_size
            raise ValueError(f"the .npy header is {length} bytes long, too long to read")
        header = ast.literal_eval(_read(stream, length).decode("utf-8"))
        if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
            raise ValueError(f"not a .npy header: {header!r}")
        shape, fortran_order = header["shape"], header["fortran_order"]
        dtype = npy.descr_to_dtype(header["descr"])
    else:
        raise ValueError(f"unknown .npy format version {version[0]}.{version[1]}")
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"not an array shape: {shape!r}")
    if dtype.hasobject:
        raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
    count = math.prod(shape)
    return _NpyHeader(shape, bool(fortran_order), dtype, count, count * dtype.itemsize)


class _Summary:
    """Stands for an array in a report, as format_value would show it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _read_array(stream: _Stream, header: _NpyHeader, numpy: Any) -> Any:
    data = _read(stream, header.nbytes)
    if len(data) < header.nbytes:
        raise ValueError(f"EOF: the array data ends after {len(data)} of its {header.nbytes} bytes")
    order = "F" if header.fortran_order else "C"
    return numpy.frombuffer(data, header.dtype, header.count).reshape(header.shape, order=order)


def _compare_npy(
    streams: tuple[_Stream, _Stream],
    headers: tuple[_NpyHeader, _NpyHeader],
    path: str,
    numpy: Any,
) -> Mismatch | None:
    """find_mismatch's answer for two arrays whose data the streams hold next.

    The data are read a chunk at a time, unless one array is in Fortran order (then
    the file's order of elements is not the report's, and both are loaded).
    """
    a, b = headers
    if a.dtype != b.dtype:
        return Mismatch(path, a.dtype, b.dtype, "dtypes differ")
    if a.shape != b.shape:
        return Mismatch(path, a.shape, b.shape, "shapes differ")
    if a.nbytes == 0:
        return None
    if len(a.shape) > 1 and (a.fortran_order or b.fortran_order):
        arrays = [_read_array(s, h, numpy) for s, h in zip(streams, headers, strict=True)]
        return find_mismatch(arrays[0], arrays[1], root=path)
    itemsize = a.dtype.itemsize
    step = max(1, _CHUNK // itemsize) * itemsize  # whole elements
    for offset, x, y in _chunks(streams[0], streams[1], step, a.nbytes):
        found = _locate(x, y, len(x)) if x != y else None
        if found is not None:
            start = found - found % itemsize
            index = _unravel((offset + start) // itemsize, a.shape)
            first, second = (numpy.frombuffer(d, a.dtype, 1, start).item() for d in (x, y))
            return Mismatch(path + _index(index) if index else path, first, second, index=index)
    return None


def _compare_npy_files(first: str, second: str, numpy: Any) -> Mismatch | None:
    with open(first, "rb") as a, open(second, "rb") as b:
        headers = _npy_header(a), _npy_header(b)
        for stream, header in ((a, headers[0]), (b, headers[1])):
            held = os.fstat(stream.fileno()).st_size - stream.tell()
            if held < header.nbytes:  # numpy.load fails on it too
                raise ValueError(
                    f"the header declares {header.nbytes} bytes of array data, "
                    f"the file holds {held}"
                )
        return _compare_npy((a, b), headers, "", numpy)


class _Npz(_Archive):
    """A .npz archive, its arrays named and ordered as numpy.load names them."""

    def __init__(self, path: str, run: int, numpy: Any) -> None:
        super().__init__(path, run)
        self.numpy = numpy
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in self.zip.infolist():
            self.members[info.filename[: -len(".npy")]] = info  # the last of a name counts

    @contextlib.contextmanager
    def array(self, name: str) -> Iterator[tuple[_Stream, _NpyHeader]]:
        """A member's header, and its stream at the start of the array data."""
        info = self.members[name]
        with self.zip.open(info) as member:
            stream = cast(io.BufferedIOBase, member)  # a ZipExtFile
            header = _npy_header(stream)
            size = stream.tell() + header.nbytes
            self.check(info, size, "as its .npy header declares")
            if size > info.file_size:
                raise ValueError(
                    f"member {info.filename}: the header declares {header.nbytes} bytes "
                    f"of array data, the member holds {info.file_size - stream.tell()}"
                )
            yield stream, header

    def value(self, name: str) -> Any:
        """A member's array, or for one of more than 8 elements what format_value shows."""
        with self.array(name) as (stream, header):
            text = _shape_summary("ndarray", header.shape, header.dtype, header.count)
            if text is not None:
                return _Summary(text)
            return _read_array(stream, header, self.numpy)


def _compare_npz(first: str, second: str, runs: tuple[int, int], numpy: Any) -> Mismatch | None:
    with _Npz(first, runs[0], numpy) as a, _Npz(second, runs[1], numpy) as b:
        for name in a.members:
            path = _key(name)
            if name not in b.members:
                return Mismatch(path, a.value(name), MISSING, "key in one run only")
            with a.array(name) as (x, x_header), b.array(name) as (y, y_header):
                found = _compare_npy((x, y), (x_header, y_header), path, numpy)
            if found:
                return found
        for name in b.members:
            if name not in a.members:
                return Mismatch(_key(name), MISSING, b.value(name), "key in one run only")
    return None


def _load_torch(path: str, run: int) -> Any:
    import torch

    mmap = False
    if zipfile.is_zipfile(path):
        with _Archive(path, run) as archive:
            infos = archive.zip.infolist()
        # Mapped, not read: tensors are paged in from the file as they are compared.
        mmap = all(info.compress_type == zipfile.ZIP_STORED for info in infos)
    return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


def _compare_tensor_files(
    first: str, second: str, kind: str, runs: tuple[int, int]
) -> Mismatch | None:
    if kind == "torch":
        return find_mismatch(_load_torch(first, runs[0]), _load_torch(second, runs[1]), root="")
    import numpy

    if kind == "npz":
        return _compare_npz(first, second, runs, numpy)
    return _compare_npy_files(first, second, numpy)


_KIND_NAMES = {"npy": "numpy array", "npz": "numpy .npz archive", "torch": "torch.save"}
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # terminal colours, as in torch.load's


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(_ESCAPES.sub('', str(exc)).split())}"


def _compare_files(label: str, first: str, second: str, runs: tuple[int, int]) -> str | None:
    """None when the two copies agree, else a description of the first difference."""
    sizes = os.path.getsize(first), os.path.getsize(second)
    with open(first, "rb", buffering=0) as a, open(second, "rb", buffering=0) as b:
        offset = _first_difference(a, b, max(1, min(_CHUNK, max(sizes))))
    if offset is None:
        return None
    differ = _byte_difference(offset, sizes)
    kinds = _kind(first), _kind(second)
    if kinds[0] != kinds[1]:
        return f"run {runs[0]} wrote {kinds[0]} data, run {runs[1]} wrote {kinds[1]} data"
    kind = kinds[0]
    if kind in _KIND_NAMES:
        try:
            mismatch = _compare_tensor_files(first, second, kind, runs)
        except ImportError as exc:
            note = f"{exc.name or 'a library'} is not installed, so its tensors were not compared"
            return f"{differ} ({note})"
        except _Oversized as exc:
            raise _Failure(f"refusing to compare {label}: {exc}") from None
        except Exception as exc:
            return f"{differ} (cannot load it as a {_KIND_NAMES[kind]} file: {_one_line(exc)})"
        if mismatch is None:
            return None  # every tensor equal: only the layout of the file differs
        return _describe_mismatch(mismatch, runs, "tensor" if kind == "torch" else "array")
    if kind == "text":
        with open(first, "rb") as a, open(second, "rb") as b:
            text = _text_difference(a, b, runs)
        return differ if text is None else text
    return differ


def _describe_mismatch(mismatch: Mismatch, runs: tuple[int, int], noun: str) -> str:
    path = mismatch.path
    if mismatch.index:  # an element (not of a 0-d array, whose path has no index)
        where = path[: len(path) - len(_index(mismatch.index))]
        what = f"{noun} {where}" if where else f"the {noun}"
        place = f"{what}, index {_index(mismatch.index)}"
    else:
        place = path or f"the {noun}"
    return (
        f"{place}: {mismatch.reason}:\n"
        f"    run {runs[0]}: {format_value(mismatch.first)}\n"
        f"    run {runs[1]}: {format_value(mismatch.second)}"
    )


# -- the command -------------------------------------------------------------------------


def verify(
    command: Sequence[str],
    *,
    runs: int,
    seed: int,
    compare: Sequence[str],
    locate: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run ``command`` ``runs`` times and report whether stdout and files agree; the exit code.

    With ``locate``, each run records a trace of its torch ops, and the report names
    the first op where the traces part.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    shown = shlex.join(command)
    environ = dict(os.environ)
    environ[SEED_ENV_VAR] = str(seed)
    for path in compare:
        if os.path.isdir(path):
            err.write(f"seedscope verify: error: --compare {path}: is a directory, not a file\n")
            return USAGE
    err.write(
        f"seedscope verify: {runs} runs of `{shown}` with {SEED_ENV_VAR}={seed}"
        + (f", comparing stdout and {', '.join(compare)}" if compare else "")
        + (", tracing torch operations" if locate else "")
        + "\n"
    )
    progress = _Progress(err, runs)
    stdouts: list[bytes] = []
    previous_handler = _forward_sigterm()
    try:
        with tempfile.TemporaryDirectory(prefix="seedscope-verify-") as scratch:
            traces = _tracing(environ, scratch, runs, locate=locate)
            copies: list[list[str]] = [[] for _ in compare]
            for run in range(1, runs + 1):
                environ[_hook.FILE] = traces[run - 1]
                before = [_stat(path) for path in compare]
                stdout, stderr, code, _ = _execute(command, environ, progress, run)
                if code != 0:
                    err.write(
                        f"seedscope verify: run {run} of {runs} failed: `{shown}` "
                        f"{_describe_exit(code)}\n"
                    )
                    if stderr.strip():
                        err.write(f"its standard error ended with:\n{_tail(stderr)}")
                    return FAILED
                stdouts.append(stdout)
                if run == 1:
                    _echo(out, stdout)  # what the command printed, once
                for index, path in enumerate(compare):
                    copy_to = os.path.join(scratch, f"run{run}-{index}")
                    _collect(path, before[index], run, copy_to)
                    copies[index].append(copy_to)
            report = _report(stdouts, compare, copies)
            seeds = _seeds(traces)
            traced_ops: int | None = 0
            if locate:
                trace_text, traced_ops = _trace_report(traces)
                report.append((_TRACE, trace_text))
    except _Usage as exc:
        err.write(f"seedscope verify: error: {exc}\n")
        return USAGE
    except _Failure as exc:
        err.write(f"seedscope verify: {exc}\n")
        return FAILED
    except KeyboardInterrupt:
        err.write("seedscope verify: interrupted\n")
        return 128 + signal.SIGINT
    except _Terminate:
        err.write("seedscope verify: terminated\n")
        return 128 + signal.SIGTERM
    finally:
        _restore_sigterm(previous_handler)

    seeding = _seeding(seed, seeds)
    differences = [(label, text) for label, text in report if text is not None]
    if not differences:
        out.write(f"seedscope verify: reproducible: {runs} runs of `{shown}` agree ({seeding})\n")
        for label, _ in report:
            out.write(f"  {label}: {_identical(label, traced_ops)}\n")
        return AGREE
    out.write(f"seedscope verify: NOT reproducible: the runs of `{shown}` differ ({seeding})\n")
    for label, text in report:
        out.write(f"  {label}: {_identical(label, traced_ops) if text is None else text}\n")
    if seeds == ():
        out.write(
            "note: the command never entered a seedscope scope, so seedscope seeded nothing: "
            "run the program with `seedscope run`, which runs all of it inside "
            "deterministic(seed) with the hash seed fixed, as in "
            f"`seedscope verify{' --locate' if locate else ''} -- seedscope run "
            f"{_script_hint(command)}`\n"
        )
    elif (
        "PYTHONHASHSEED" not in os.environ
        and not _runs_seedscope_run(command)
        and any(label != _TRACE for label, _ in differences)
    ):
        out.write(
            "hint: PYTHONHASHSEED is not set, so each run had its own hash seed: if the "
            "output depends on the order of a set of strings, fix it by running the "
            "program with `seedscope run`, and compare with "
            f"`seedscope verify -- seedscope run {_script_hint(command)}`\n"
        )
    return DIFFER


# -- traces ------------------------------------------------------------------------------

_TRACE = "trace"


def _tracing(environ: dict[str, str], scratch: str, runs: int, *, locate: bool) -> list[str]:
    """Set up each run's interpreter to trace itself; the trace path of each run.

    A ``sitecustomize`` first on ``PYTHONPATH`` hooks the interpreter that this
    process starts (and what it execs into): see :mod:`seedscope._trace._hook`.
    Without ``locate`` it notes only the seeds of the scopes the program enters.
    """
    hook_dir = os.path.join(scratch, "hook")
    os.mkdir(hook_dir)
    with open(os.path.join(hook_dir, "sitecustomize.py"), "w", encoding="utf-8") as file:
        file.write(_hook.SITECUSTOMIZE)
    existing = environ.get("PYTHONPATH")
    environ["PYTHONPATH"] = hook_dir + (os.pathsep + existing if existing else "")
    environ[_hook.PARENT] = str(os.getpid())
    environ[_hook.HOOK] = os.path.abspath(_hook.__file__)
    environ[_hook.PATH] = os.path.dirname(os.path.dirname(os.path.dirname(_hook.__file__)))
    environ[_hook.OPS] = "1" if locate else "0"
    return [os.path.join(scratch, f"run{run}.trace") for run in range(1, runs + 1)]


def _seeds(traces: list[str]) -> tuple[int, ...] | None:
    """The seeds run 1 entered scopes with, () for none; None when that is not known."""
    path = traces[0]
    try:
        if os.path.getsize(path) == 0:
            return ()  # hooked, and nothing recorded
    except OSError:
        return None  # not hooked: not Python, or Python ignoring the environment
    try:
        return summary(path).seeds
    except TraceError:
        return None


def _seeding(seed: int, seeds: tuple[int, ...] | None) -> str:
    """The summary's note on seeds: those the program's scopes used, when known."""
    if not seeds:
        note = f"{SEED_ENV_VAR}={seed}"
        return note if seeds is None else note + ", no seedscope scope entered"
    used = sorted({s for s in seeds if s >= 0})
    if not used:
        return f"{SEED_ENV_VAR}={seed}, only isolated() scopes entered"
    if len(used) == 1:
        return f"seed {used[0]}"
    return "seeds " + ", ".join(map(str, used))


def _identical(label: str, traced_ops: int | None) -> str:
    if label != _TRACE:
        return "identical"
    if traced_ops is None:
        return "identical (no torch operations: torch was not imported)"
    return f"identical ({traced_ops} torch operations)"


def _trace_report(traces: list[str]) -> tuple[str | None, int | None]:
    """The report's trace line (None when every run's trace agrees with run 1's) and
    how many ops run 1 traced."""
    present = [os.path.exists(path) for path in traces]
    if not any(present):
        return (
            "not traced: the command did not start a Python interpreter that seedscope could "
            "hook (one that reads PYTHONPATH: not -E or -I)"
        ), 0
    if not all(present):
        missing = [str(run) for run, there in enumerate(present, start=1) if not there]
        return f"not traced in run {', '.join(missing)}", 0
    if all(os.path.getsize(path) == 0 for path in traces):
        return None, None  # no run imported torch
    try:
        for run in range(2, len(traces) + 1):
            found = compare_traces(traces[0], traces[run - 1], runs=(1, run))
            if found is not None:
                body = "\n".join("    " + line for line in found.lines())
                return f"first divergence between runs 1 and {run}:\n{body}", 0
        return None, summary(traces[0]).ops
    except TraceError as exc:
        return f"cannot compare: {exc}", 0


def _echo(out: TextIO, data: bytes) -> None:
    out.flush()
    buffer = getattr(out, "buffer", None)
    if buffer is not None:
        buffer.write(data)
        buffer.flush()
    else:
        out.write(data.decode("utf-8", "replace"))
    if data and not data.endswith(b"\n"):
        out.write("\n")


def _runs_seedscope_run(command: Sequence[str]) -> bool:
    """Whether ``command`` is ``seedscope run ...`` (or ``python -m seedscope run ...``)."""
    words = [os.path.basename(command[0]), *command[1:3]]
    return words[:2] == ["seedscope", "run"] or (
        words[0].startswith("python") and list(command[1:4]) == ["-m", "seedscope", "run"]
    )


def _script_hint(command: Sequence[str]) -> str:
    """The command's Python program and arguments, for the hint (``python x.py`` -> ``x.py``)."""
    program = os.path.basename(command[0])
    if program.startswith("python") and len(command) > 1:
        return shlex.join(command[1:])
    return "SCRIPT.py"


def _report(
    stdouts: list[bytes], compare: Sequence[str], copies: list[list[str]]
) -> list[tuple[str, str | None]]:
    report: list[tuple[str, str | None]] = []
    text = None
    for run, stdout in enumerate(stdouts[1:], start=2):
        if stdout != stdouts[0]:
            text = _output_difference(stdouts[0], stdout, (1, run))
            break
    report.append(("stdout", text))
    for path, saved in zip(compare, copies, strict=True):
        text = None
        for run, copy in enumerate(saved[1:], start=2):
            try:
                text = _compare_files(path, saved[0], copy, (1, run))
            except OSError as exc:
                raise _Failure(f"cannot read {path}: {exc.strerror or exc}") from None
            if text is not None:
                break
        report.append((path, text))
    return report


def _forward_sigterm() -> Any:
    """Turn SIGTERM into an exception, so the running command is stopped rather than orphaned."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return None

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminate

    return signal.signal(signal.SIGTERM, handler)


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
