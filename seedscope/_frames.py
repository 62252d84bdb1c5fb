"""The user's line: the first frame outside seedscope, torch and the standard library.

What a report names (an op torch warned about, an op a trace recorded) is
the line of the user's code that led to it, not seedscope's or torch's
internals nor a standard-library helper in between.
"""

from __future__ import annotations

import functools
import os
import sys
from types import FrameType

__all__ = ["is_library_file", "user_frame"]

_SEEDSCOPE = os.path.dirname(os.path.abspath(__file__))


@functools.cache
def _library_dirs(torch_file: str | None) -> tuple[str, ...]:
    import sysconfig  # only once something is reported: not a cost of importing seedscope

    dirs = {_SEEDSCOPE}
    if torch_file:
        dirs.add(os.path.dirname(torch_file))
    paths = sysconfig.get_paths()
    dirs.update(paths[name] for name in ("stdlib", "platstdlib") if name in paths)
    # Resolved, as filenames are compared resolved: a venv may reach torch through a link.
    return tuple(os.path.join(os.path.realpath(d), "") for d in dirs if d)


def is_library_file(filename: str) -> bool:
    """Whether code from ``filename`` is seedscope's, torch's or the standard library's."""
    if filename.startswith("<frozen"):
        return True
    torch = sys.modules.get("torch")
    skip = _library_dirs(getattr(torch, "__file__", None))
    return os.path.realpath(filename).startswith(skip)


def user_frame(frame: FrameType | None) -> FrameType | None:
    """The first frame from ``frame`` outwards whose code is the user's, or None."""
    while frame is not None and is_library_file(frame.f_code.co_filename):
        frame = frame.f_back
    return frame
