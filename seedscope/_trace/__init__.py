"""Tracing runs to find where two of them part: :func:`trace` and :func:`compare_traces`.

``_format`` is the file (a versioned stream of records), ``_record`` the
recording (a torch dispatch mode), ``_compare`` the comparison, and
``_hook``/``_child`` how ``seedscope verify`` traces the runs of any command
without a change to its code.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._compare import Divergence, compare_traces
    from ._format import TraceError, TraceWriter

__all__ = ["Divergence", "TraceError", "compare_traces", "trace"]


def __getattr__(name: str) -> Any:
    # The comparison and the file format import dataclasses, struct and json
    # (several ms, most of seedscope's import time): loaded when first used.
    if name in ("Divergence", "compare_traces"):
        from . import _compare

        return getattr(_compare, name)
    if name == "TraceError":
        from ._format import TraceError

        return TraceError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class trace:  # lowercase: used as a function, ``with seedscope.trace(path):``
    """Record a trace of the torch operations run inside the block into ``path``.

    Each aten op that runs in this thread (and in the autograd engine's
    threads during ``backward()``) is written as it runs: its name, the
    ``nn.Module`` running it, the source line that called it, and exact
    digests of its inputs and outputs (a one-ulp difference shows); random
    ops also record their generator's state. The file is written as a stream,
    so memory does not grow with the number of ops. Compare two traces with
    :func:`compare_traces`. ``ops`` is the number of ops recorded so far.

    >>> import torch, seedscope, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "run.trace")
    >>> with seedscope.trace(path) as recording:
    ...     y = torch.ones(3) * 2
    >>> recording.ops
    2
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
        self.path = os.fspath(path)
        self._writer: TraceWriter | None = None
        self._recorder: object = None

    @property
    def ops(self) -> int:
        return 0 if self._writer is None else self._writer.ops

    def __enter__(self) -> trace:
        if self._writer is not None:
            raise RuntimeError(f"this trace of {self.path} is already recording")
        if "torch" not in sys.modules:
            try:
                import torch  # noqa: F401  (recorded, and named in the header)
            except ImportError:
                raise ImportError(
                    "seedscope.trace records torch operations, and torch is not installed"
                ) from None
        from ._format import TraceWriter, metadata
        from ._record import Recorder

        try:
            writer = TraceWriter(self.path, metadata())
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot write the trace {self.path}: {exc.strerror or exc}"
            ) from None
        recorder = Recorder(writer)
        recorder.start()
        self._writer, self._recorder = writer, recorder
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        from ._record import Recorder

        writer, recorder = self._writer, self._recorder
        assert writer is not None
        assert isinstance(recorder, Recorder)
        try:
            recorder.stop()
        finally:
            writer.close()
