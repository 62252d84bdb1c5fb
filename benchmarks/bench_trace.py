"""What does ``seedscope verify --locate`` cost? The README's training demo, traced and not.

Runs ``examples/reproducible_training.py`` (``--script``) as its own process,
untraced and traced exactly as ``seedscope verify --locate`` traces a run (the
same ``sitecustomize`` hook and environment), interleaved over ``--rounds``
rounds after one warm-up round of each, and prints a Markdown table: the
median wall time of each, their ratio (the target is at most 3), the number of
torch ops traced and the size of the trace. Wall times include starting Python
and importing torch, as a user of ``verify`` sees them. Needs numpy and torch;
about 1 minute with the default 5 rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine_line

from seedscope._trace import _hook
from seedscope._trace._format import summary
from seedscope._verify import _tracing

ROOT = Path(__file__).resolve().parents[1]
TARGET = 3.0


def run(script: str, environ: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, script],
        env=environ,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (default: 5)")
    parser.add_argument(
        "--script", default="examples/reproducible_training.py", help="the program to run"
    )
    args = parser.parse_args(argv)
    import torch  # noqa: F401  (for the machine line)

    print(f"Machine: {machine_line()}\n")
    plain = dict(os.environ)
    times: dict[str, list[float]] = {"untraced": [], "traced": []}
    with tempfile.TemporaryDirectory(prefix="seedscope-bench-trace-") as scratch:
        traced = dict(os.environ)
        (path,) = _tracing(traced, scratch, 1, locate=True)
        traced[_hook.FILE] = path
        for round_ in range(args.rounds + 1):
            order = ["untraced", "traced"] if round_ % 2 else ["traced", "untraced"]
            for name in order:
                seconds = run(args.script, plain if name == "untraced" else traced)
                if round_:  # round 0 warms the page cache
                    times[name].append(seconds)
        ops = summary(path).ops
        size = os.path.getsize(path)
    untraced = statistics.median(times["untraced"])
    traced_s = statistics.median(times["traced"])
    ratio = traced_s / untraced
    print(f"`python {args.script}`, median of {args.rounds} runs each, interleaved:\n")
    print("| run | median s | ratio to untraced | torch ops traced | trace size |")
    print("|---|---:|---:|---:|---:|")
    print(f"| untraced | {untraced:.2f} | 1.00 | | |")
    row = f"{traced_s:.2f} | {ratio:.2f} | {ops} | {size / 1e6:.1f} MB"
    print(f"| traced (`verify --locate`) | {row} |")
    met = "met" if ratio <= TARGET else "NOT met"
    print(f"\ntarget: traced at most {TARGET:g}x untraced: {met} ({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
