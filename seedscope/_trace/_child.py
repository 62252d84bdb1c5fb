"""A run's trace under ``seedscope verify``: one per process, closed at exit.

:mod:`._hook` calls in here once torch is imported (:func:`record_ops`, with
``--locate``) and once seedscope's engine is (:func:`watch_scopes`). The file
is made on the first record, so a run that records nothing leaves none. It is
closed by ``atexit`` (a normal end, ``sys.exit``, an unhandled exception); a
forked child (a DataLoader worker) drops its copy without writing, and the
recording mode with it.
"""

from __future__ import annotations

import atexit
import os
import types
from typing import Any

from ._format import TraceWriter, metadata

__all__ = ["record_ops", "watch_scopes"]

_writer: TraceWriter | None = None
_recorder: Any = None
_seeds: set[int | None] = set()
_abandoned = False  # in a forked child: never write


def _open(path: str) -> TraceWriter:
    global _writer
    if _writer is None:
        _writer = TraceWriter(path, metadata(), eager=False)
        atexit.register(_close)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_forked)
    return _writer


def _close() -> None:
    try:
        if _recorder is not None:
            _recorder.stop()
    finally:
        if _writer is not None:
            _writer.close()


def _forked() -> None:
    global _writer, _recorder, _abandoned
    _abandoned = True
    if _recorder is not None:
        _recorder.abandon()
    elif _writer is not None:
        _writer.abandon()
    _writer = _recorder = None


def record_ops(path: str) -> None:
    """Record every torch op of this process from now on."""
    global _recorder
    from ._record import Recorder

    if _abandoned:
        return
    writer = _open(path)
    if _recorder is None:
        _recorder = Recorder(writer)
        _recorder.start()


def watch_scopes(engine: types.ModuleType, path: str) -> None:
    """Note the seed of each scope the program enters (once per seed)."""
    active = engine.ActiveScope
    original = active.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if self.seed not in _seeds:
            _note(self.seed, path)

    active.__init__ = __init__


def _note(seed: int | None, path: str) -> None:
    _seeds.add(seed)
    if not _abandoned:
        _open(path).seed(seed)
