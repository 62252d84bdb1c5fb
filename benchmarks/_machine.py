"""The machine line every benchmark prints first: timings mean little without it."""

from __future__ import annotations

import os
import platform
import sys

import seedscope


def machine_line() -> str:
    """Python, the libraries that are imported, the processor and the system, on one line."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    libraries = "".join(
        f"{name} {sys.modules[name].__version__}, "
        for name in ("numpy", "torch")
        if name in sys.modules
    )
    return (
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{libraries}seedscope {seedscope.__version__}; "
        f"{cpu}, {usable} CPUs usable of {os.cpu_count()}; {platform.system()} {platform.release()}"
    )
