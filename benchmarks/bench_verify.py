"""How fast, and in how much memory, does ``seedscope verify`` compare two big files?

Writes two files of random bytes (600 MB each, ``--size``) and times the comparison
that ``seedscope verify --compare`` makes of two runs' copies, with the files equal
and then differing in their last byte, side by side with two anchors on the same
files: ``cmp`` and ``filecmp.cmp(shallow=False)``. Each measurement runs in a fresh
process, the variants interleaved over ``--rounds`` rounds (starting from a
different variant each round), after one round that warms the page cache; the
table shows the median time and the largest peak memory.

For the Python variants, the time is that of the call alone and the memory is how
much the process's peak resident memory (``VmHWM``) grew during it, that is beyond
the interpreter; for ``cmp``, both are the whole process's (its start takes about
a millisecond, and its peak memory includes the program itself). Linux only.

Run ``python benchmarks/bench_verify.py`` (about 10 s); ``--dir`` puts the two
files (1.2 GB) somewhere other than the temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable

from _machine import machine_line

# A measurement is run(first, second) -> (seconds, peak MB added, what it found).
Measure = Callable[[str, str], tuple[float, float, str]]

_IN_FRESH_PROCESS = """
    import json, sys, time

    def peak():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024

    first, second = sys.argv[1:]
    {setup}
    before = peak()
    start = time.perf_counter()
    found = {call}
    seconds = time.perf_counter() - start
    print(json.dumps([seconds, peak() - before, str(found)]))
"""


def in_fresh_process(setup: str, call: str) -> Measure:
    code = textwrap.dedent(_IN_FRESH_PROCESS.format(setup=setup, call=call))

    def measure(first: str, second: str) -> tuple[float, float, str]:
        done = subprocess.run(
            [sys.executable, "-c", code, first, second],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds, added, found = json.loads(done.stdout)
        return seconds, added, found

    return measure


def measure_cmp(first: str, second: str) -> tuple[float, float, str]:
    start = time.perf_counter()
    process = subprocess.Popen(["cmp", "-s", first, second])
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return seconds, usage.ru_maxrss / 1024, f"exit code {process.returncode}"


VARIANTS: dict[str, Measure] = {
    "seedscope verify's comparison": in_fresh_process(
        "from seedscope._verify import _compare_files",
        '_compare_files("out", first, second, (1, 2))',
    ),
    "`filecmp.cmp(shallow=False)`": in_fresh_process(
        "import filecmp", "filecmp.cmp(first, second, shallow=False)"
    ),
}
if shutil.which("cmp"):
    VARIANTS["`cmp -s`"] = measure_cmp


def write_random(path: str, size: int) -> None:
    block = 1 << 20
    with open(path, "wb") as file:
        for offset in range(0, size, block):
            file.write(os.urandom(min(block, size - offset)))


def flip_last_byte(path: str) -> None:
    with open(path, "r+b") as file:
        file.seek(-1, os.SEEK_END)
        last = file.read(1)
        file.seek(-1, os.SEEK_END)
        file.write(bytes([last[0] ^ 0xFF]))


def run_case(first: str, second: str, rounds: int) -> dict[str, tuple[float, float, str]]:
    """Median seconds, largest peak MB added, and what each variant found."""
    labels = list(VARIANTS)
    for label in labels:  # warm-up: the files into the page cache, the code into memory
        VARIANTS[label](first, second)
    samples: dict[str, list[tuple[float, float, str]]] = {label: [] for label in labels}
    for round_ in range(rounds):
        shift = round_ % len(labels)
        for label in labels[shift:] + labels[:shift]:
            samples[label].append(VARIANTS[label](first, second))
    return {
        label: (
            statistics.median(s for s, _, _ in values),
            max(m for _, m, _ in values),
            values[-1][2],
        )
        for label, values in samples.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=600, help="MB per file (default 600)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per case (default 5)")
    parser.add_argument("--dir", default=None, help="where to write the two files")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        parser.error("reads /proc/self/status: Linux only")
    size = args.size * 1_000_000

    print(f"Machine: {machine_line()}\n")
    with tempfile.TemporaryDirectory(prefix="seedscope-bench-verify-", dir=args.dir) as scratch:
        first, second = os.path.join(scratch, "first"), os.path.join(scratch, "second")
        write_random(first, size)
        shutil.copyfile(first, second)
        results = {"equal": run_case(first, second, args.rounds)}
        flip_last_byte(second)
        results["last byte differs"] = run_case(first, second, args.rounds)

    anchor = "`cmp -s`" if "`cmp -s`" in VARIANTS else "`filecmp.cmp(shallow=False)`"
    print(f"Two files of {args.size} MB:\n")
    print(f"| files | variant | median s | ratio to {anchor} | peak MB added | found |")
    print("|---|---|---:|---:|---:|---|")
    for case, measured in results.items():
        base = measured[anchor][0]
        for label, (seconds, added, found) in measured.items():
            print(
                f"| {case} | {label} | {seconds:.3f} | {seconds / base:.2f} | {added:.0f} "
                f"| {found} |"
            )
    print(
        f"\nMedians of {args.rounds} interleaved rounds after a warm-up round (files in the "
        "page cache); peak MB added: the largest over the rounds."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
