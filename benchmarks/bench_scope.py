"""How much does a seedscope scope cost? Prints Markdown tables.

Times one enter+exit of an empty block, with ``random``, numpy and torch
imported, for seedscope and for the other ways of doing the same job. All
variants run in one process, interleaved: each round times a batch of every
variant in turn (starting from a different variant each round), and the table
shows the median over the rounds of the time per enter+exit. Batches are
timed with the thread's CPU time (``--wall`` for the wall clock) and the
garbage collector is off while a batch runs, as in ``timeit``.

It also measures, in a fresh interpreter, how much the process grows over
100,000 scopes with distinct seeds (``--no-memory`` skips it).

Run ``python benchmarks/bench_scope.py`` (about 45 s) or add ``--quick`` (about 20 s).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import logging
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from _machine import machine_line

import seedscope
from seedscope import Source, deterministic, isolated
from seedscope.sources import builtin_sources

SEED = 1234

# Each benchmark reads this clock before and after its batch. The default is
# the thread's CPU time, so the time other processes hold the CPU (a busy
# 2-core machine preempts a batch now and then) is not counted; --wall uses
# time.perf_counter_ns instead. Every timed call runs in the calling thread.
_clock: Callable[[], int] = time.thread_time_ns

# A benchmark is run(n) -> nanoseconds taken by n repetitions.
Bench = Callable[[int], int]


# -- (1) the cheapest public calls that do the same job ---------------------------


def bench_manual(n: int) -> int:
    cudnn = torch.backends.cudnn
    gen = torch.default_generator
    start = _clock()
    for _ in range(n):
        py_state = random.getstate()
        np_state = np.random.get_state()
        torch_state = gen.get_state()
        cudnn_deterministic, cudnn_benchmark = cudnn.deterministic, cudnn.benchmark
        random.seed(SEED)
        np.random.seed(SEED)
        gen.manual_seed(SEED)
        cudnn.deterministic, cudnn.benchmark = True, False
        # (the block)
        random.setstate(py_state)
        np.random.set_state(np_state)
        gen.set_state(torch_state)
        cudnn.deterministic, cudnn.benchmark = cudnn_deterministic, cudnn_benchmark
    return _clock() - start


# -- (2) torch.random.fork_rng ------------------------------------------------------


def bench_fork_rng(n: int) -> int:
    start = _clock()
    for _ in range(n):
        with torch.random.fork_rng():
            torch.manual_seed(SEED)
    return _clock() - start


# -- (3) Lightning: isolate_rng + seed_everything ----------------------------------------


def _lightning() -> tuple[Callable[[], AbstractContextManager[None]], Callable[..., int], str]:
    """Lightning's ``isolate_rng`` and ``seed_everything``, and a note on where they came from.

    ``isolate_rng`` ships with pytorch-lightning; with only lightning-fabric
    installed, the same context manager is built from fabric's private
    ``_collect_rng_states`` / ``_set_rng_states``, exactly as pytorch-lightning does.
    """
    for package in ("lightning.pytorch", "pytorch_lightning"):
        try:
            seed_module: Any = __import__(f"{package}.utilities.seed", fromlist=["isolate_rng"])
        except ImportError:
            continue
        # Newer releases keep seed_everything in fabric only.
        seed_everything = getattr(seed_module, "seed_everything", None)
        if seed_everything is None:
            from lightning_fabric.utilities.seed import seed_everything
        return (
            seed_module.isolate_rng,
            seed_everything,
            f"`{package}.utilities.seed.isolate_rng` + `seed_everything(k, verbose=False)`",
        )
    from lightning_fabric.utilities import seed as fabric_seed

    @contextmanager
    def isolate_rng(include_cuda: bool = True) -> Iterator[None]:
        states = fabric_seed._collect_rng_states(include_cuda)
        yield
        fabric_seed._set_rng_states(states)

    return (
        isolate_rng,
        fabric_seed.seed_everything,
        "pytorch-lightning is not installed: `isolate_rng` rebuilt as in pytorch-lightning "
        "from lightning-fabric's `_collect_rng_states` / `_set_rng_states`, "
        "with `lightning_fabric.utilities.seed.seed_everything(k, verbose=False)`",
    )


def make_bench_lightning() -> tuple[Bench | None, str]:
    try:
        isolate_rng, seed_everything, note = _lightning()
    except ImportError:
        return None, "lightning-fabric is not installed: `pip install lightning-fabric`"
    for name in ("lightning_fabric", "lightning.fabric", "lightning.pytorch", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)  # no "Seed set to ..." lines

    def bench_lightning(n: int) -> int:
        start = _clock()
        for _ in range(n):
            with isolate_rng():
                seed_everything(SEED, verbose=False)
        return _clock() - start

    return bench_lightning, note


# -- (4), (5), (6): seedscope --------------------------------------------------------


def bench_deterministic(n: int) -> int:
    start = _clock()
    for _ in range(n):
        with deterministic(SEED):
            pass
    return _clock() - start


def bench_isolated(n: int) -> int:
    start = _clock()
    for _ in range(n):
        with isolated():
            pass
    return _clock() - start


@deterministic(SEED)
def _stepped() -> Generator[None, None, None]:
    while True:
        yield


@functools.cache
def _generator() -> Generator[None, None, None]:
    gen = _stepped()
    next(gen)  # the first step enters the scope; later steps resume and suspend it
    return gen


def bench_generator_step(n: int) -> int:
    gen = _generator()
    start = _clock()
    for _ in range(n):
        next(gen)
    return _clock() - start


def bench_scope_reused(n: int) -> int:
    scope = deterministic(SEED)
    start = _clock()
    for _ in range(n):
        with scope:
            pass
    return _clock() - start


def bench_engine_only(n: int) -> int:
    start = _clock()
    for _ in range(n):
        with deterministic(SEED, sources=()):
            pass
    return _clock() - start


def bench_construct(n: int) -> int:
    start = _clock()
    for _ in range(n):
        deterministic(SEED)
    return _clock() - start


# -- per-source breakdown ---------------------------------------------------------------


def source_benches() -> list[tuple[str, Bench, Bench, Bench]]:
    """For each built-in source: capture, seed, and seed followed by restore.

    Restore is timed after a seed (and reported as the difference) because
    some sources (flags, environ) only write what the seed changed.
    """
    return [(source.name, *_source_bench(source)) for source in builtin_sources()]


def _source_bench(source: Source) -> tuple[Bench, Bench, Bench]:
    def capture(n: int) -> int:
        start = _clock()
        for _ in range(n):
            source.capture()
        return _clock() - start

    def seed(n: int) -> int:
        state = source.capture()
        start = _clock()
        for _ in range(n):
            source.seed(SEED)
        elapsed = _clock() - start
        source.restore(state)
        return elapsed

    def seed_restore(n: int) -> int:
        state = source.capture()
        start = _clock()
        for _ in range(n):
            source.seed(SEED)
            source.restore(state)
        return _clock() - start

    return capture, seed, seed_restore


def loop(body: Callable[[], object]) -> Bench:
    def bench(n: int) -> int:
        start = _clock()
        for _ in range(n):
            body()
        return _clock() - start

    return bench


def alternative_benches() -> dict[str, Bench]:
    """Single calls the sources could make instead of the ones they make."""
    legacy = np.random.get_state()
    modern = np.random.get_state(legacy=False)
    gen = torch.default_generator
    return {
        "`np.random.get_state(legacy=False)` (dict, what seedscope calls)": loop(
            lambda: np.random.get_state(legacy=False)
        ),
        "`np.random.get_state()` (legacy tuple)": loop(np.random.get_state),
        "`np.random.set_state(dict)`": loop(lambda: np.random.set_state(modern)),
        "`np.random.set_state(tuple)`": loop(lambda: np.random.set_state(legacy)),
        "`np.random.seed(k)`": loop(lambda: np.random.seed(SEED)),
        "`random.getstate()`": loop(random.getstate),
        "`random.seed(k)`": loop(lambda: random.seed(SEED)),
        "`torch.manual_seed(k)`": loop(lambda: torch.manual_seed(SEED)),
        "`torch.default_generator.manual_seed(k)`": loop(lambda: gen.manual_seed(SEED)),
        "`deterministic(k)` construction only": bench_construct,
        "`with deterministic(k, sources=()):` (the engine alone, no sources)": bench_engine_only,
        "`with scope:` (one `deterministic(k)` object, entered again and again)": (
            bench_scope_reused
        ),
    }


# -- the harness ------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    median_us: float


def calibrate(bench: Bench, batch_s: float) -> int:
    """How many repetitions make a batch of about ``batch_s`` seconds."""
    bench(3)  # warm up
    n = 1
    while True:
        elapsed = bench(n) / 1e9
        if elapsed >= batch_s / 4 or n >= 1 << 20:
            return max(1, round(n * batch_s / max(elapsed, 1e-9)))
        n *= 4


def run_interleaved(benches: dict[str, Bench], rounds: int, batch_s: float) -> dict[str, float]:
    """Median microseconds per repetition, over ``rounds`` round-robin rounds."""
    sizes = {label: calibrate(bench, batch_s) for label, bench in benches.items()}
    samples: dict[str, list[float]] = {label: [] for label in benches}
    labels = list(benches)
    for round_ in range(rounds):
        shift = round_ % len(labels)
        gc.collect()  # cheap: main() froze everything allocated before timing started
        for label in labels[shift:] + labels[:shift]:
            gc.disable()
            try:
                elapsed = benches[label](sizes[label])
            finally:
                gc.enable()
            samples[label].append(elapsed / sizes[label] / 1e3)
    return {label: statistics.median(values) for label, values in samples.items()}


@dataclass
class ImportCost:
    seedscope_ms: float  # python -c "import seedscope" minus python -c "pass"
    decorate_ms: float  # the first decoration's imports (wrapt, inspect, unittest) on top
    importtime_ms: float  # -X importtime's cumulative figure for the seedscope package


def import_cost(runs: int) -> ImportCost:
    """The cost of ``import seedscope`` in fresh interpreters, with a warm bytecode cache.

    Each fresh interpreter's wall time is measured (runs interleaved) and the
    medians subtracted. Bytecode goes to a temporary ``PYTHONPYCACHEPREFIX``
    (nothing is written into the source tree) and ``PYTHONDONTWRITEBYTECODE``
    is dropped: without a cache every run would recompile seedscope, which an
    installed package never does.
    """
    codes = {
        "pass": "pass",
        "import": "import seedscope",
        "decorate": "import seedscope, seedscope._decorate",
    }
    times: dict[str, list[float]] = {name: [] for name in codes}
    importtime: list[float] = []
    with tempfile.TemporaryDirectory(prefix="seedscope-bench-pyc-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for code in codes.values():  # fill the bytecode cache
            subprocess.run([sys.executable, "-c", code], check=True, env=env)
        for _ in range(runs):
            for name, code in codes.items():
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], check=True, env=env)
                times[name].append((time.perf_counter() - start) * 1e3)
            done = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", "import seedscope"],
                check=True,
                env=env,
                capture_output=True,
                text=True,
            )
            match = re.search(r"\|\s*(\d+)\s*\|\s*seedscope\s*$", done.stderr, re.MULTILINE)
            if match:
                importtime.append(int(match.group(1)) / 1e3)
    median = {name: statistics.median(values) for name, values in times.items()}
    return ImportCost(
        seedscope_ms=median["import"] - median["pass"],
        decorate_ms=median["decorate"] - median["import"],
        importtime_ms=statistics.median(importtime) if importtime else float("nan"),
    )


MEMORY_SEEDS = 100_000
MEMORY_TARGET_MIB = 16

# What the fresh interpreter runs: a warm-up (imports, caches), then VmRSS
# before and after the loop. Linux only: the others have no /proc/self/status.
_MEMORY_CODE = """
import json, random
import numpy, torch
from seedscope import deterministic

def rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024

for seed in range(1000):
    with deterministic(seed):
        pass
before = rss()
for seed in range(1000, 1000 + {seeds}):
    with deterministic(seed):
        pass
print(json.dumps(rss() - before))
"""


def memory_growth(seeds: int) -> int | None:
    """Bytes the resident set grows over ``seeds`` scopes with distinct seeds; None: not Linux.

    Runs in a fresh interpreter (random, numpy and torch imported), so that
    nothing the timings allocated is counted, with this process's seedscope.
    """
    if not os.path.exists("/proc/self/status"):
        return None
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(seedscope.__file__)))
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": package_root + (os.pathsep + path if path else "")}
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_CODE.format(seeds=seeds)],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    growth: int = json.loads(done.stdout.strip().splitlines()[-1])
    return growth


def check(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about 10 s)")
    parser.add_argument(
        "--no-breakdown", action="store_true", help="skip the per-source breakdown tables"
    )
    parser.add_argument(
        "--no-memory",
        action="store_true",
        help="skip the memory measurement (100,000 distinct seeds in a fresh interpreter)",
    )
    parser.add_argument(
        "--wall",
        action="store_true",
        help="time with the wall clock instead of the thread's CPU time",
    )
    args = parser.parse_args(argv)
    rounds, batch_s, import_runs = (100, 0.0005, 8) if args.quick else (600, 0.001, 30)
    global _clock
    _clock = time.perf_counter_ns if args.wall else time.thread_time_ns
    clock_name = "wall clock" if args.wall else "thread CPU time"

    bench_lightning, lightning_note = make_bench_lightning()
    # Keep the collector's full passes (over torch's many objects) out of the timings.
    gc.collect()
    gc.freeze()
    main_benches: dict[str, Bench] = {
        "(1) public calls: `random` + `np.random` + `torch.default_generator` "
        "get/seed/set, cuDNN flags": bench_manual,
        "(2) `with torch.random.fork_rng(): torch.manual_seed(k)`": bench_fork_rng,
    }
    if bench_lightning is not None:
        main_benches["(3) Lightning `with isolate_rng(): seed_everything(k)`"] = bench_lightning
    main_benches["(4) `with deterministic(k):`"] = bench_deterministic
    main_benches["(5) `with isolated():`"] = bench_isolated
    main_benches["(6) `next(gen)`, a generator decorated with `@deterministic(k)`"] = (
        bench_generator_step
    )

    print(f"Machine: {machine_line()}\n")
    results = run_interleaved(main_benches, rounds, batch_s)
    base = results[next(iter(main_benches))]
    print("| variant | median µs | ratio to (1) |")
    print("|---|---:|---:|")
    for label, value in results.items():
        print(f"| {label} | {value:.2f} | {value / base:.2f} |")
    print(
        f"\nMedians of {rounds} interleaved rounds ({clock_name}); one enter+exit of an "
        "empty block, with "
        "random, numpy and torch imported. (2) saves and seeds torch only; (3) does not touch "
        "cuDNN flags and leaves PL_GLOBAL_SEED / PL_SEED_WORKERS set; (4) also saves and "
        "restores the other determinism settings and PYTHONHASHSEED / CUBLAS_WORKSPACE_CONFIG."
    )
    print(f"(3): {lightning_note}.")
    if hasattr(os, "getloadavg"):
        print(
            f"Load average (1 min) after the timings: {os.getloadavg()[0]:.2f} on "
            f"{os.cpu_count()} CPUs; other busy processes inflate and skew the figures."
        )

    imports = import_cost(import_runs)
    print(
        f"\n`import seedscope` adds {imports.seedscope_ms:.1f} ms to a fresh interpreter "
        f'(median of {import_runs} `python -c "import seedscope"` minus median of '
        f'`python -c "pass"`, bytecode cached; `-X importtime` cumulative: '
        f"{imports.importtime_ms:.1f} ms). The first use as a decorator imports "
        f"`seedscope._decorate` (wrapt, inspect, unittest): {imports.decorate_ms:.1f} ms more."
    )

    growth = None if args.no_memory else memory_growth(MEMORY_SEEDS)
    if growth is not None:
        print(
            f"\nMemory: a fresh interpreter with random, numpy and torch imported runs "
            f"`with deterministic(i): pass` for {MEMORY_SEEDS:,} distinct seeds `i`, after "
            "1,000 to warm up; growth of its resident set size (VmRSS):\n"
        )
        print("| loop | RSS growth MiB | bytes per seed |")
        print("|---|---:|---:|")
        print(
            f"| {MEMORY_SEEDS:,} distinct seeds | {growth / 2**20:.1f} | "
            f"{growth / MEMORY_SEEDS:.0f} |"
        )

    det = results["(4) `with deterministic(k):`"]
    print("\nTargets:")
    print(f"- (4) ≤ 1.25 x (1): {det / base:.3f} x (1): {check(det <= 1.25 * base)}")
    if bench_lightning is not None:
        lightning = results["(3) Lightning `with isolate_rng(): seed_everything(k)`"]
        print(f"- (4) ≤ 0.5 x (3): {det / lightning:.3f} x (3): {check(det <= 0.5 * lightning)}")
    else:
        print("- (4) ≤ 0.5 x (3): not measured (lightning-fabric is not installed)")
    print(
        f"- import adds < 20 ms: {imports.seedscope_ms:.1f} ms: {check(imports.seedscope_ms < 20)}"
    )
    target = f"- RSS growth for {MEMORY_SEEDS:,} distinct seeds < {MEMORY_TARGET_MIB} MiB"
    if growth is None:
        reason = "skipped (--no-memory)" if args.no_memory else "needs Linux's /proc"
        print(f"{target}: not measured ({reason})")
    else:
        ok = growth < MEMORY_TARGET_MIB * 2**20
        print(f"{target}: {growth / 2**20:.1f} MiB: {check(ok)}")

    if args.no_breakdown:
        _generator().close()
        return 0

    # Breakdown: each source's share of (4), and alternative single calls.
    sources = source_benches()
    parts: dict[str, Bench] = {}
    for name, capture, seed, seed_restore in sources:
        parts[f"{name}.capture"] = capture
        parts[f"{name}.seed"] = seed
        parts[f"{name}.seed+restore"] = seed_restore
    alternatives = alternative_benches()
    parts.update(alternatives)
    parts["(4) `with deterministic(k):`"] = bench_deterministic
    part_results = run_interleaved(parts, max(10, rounds // 2), batch_s / 2)

    print("\nWhere (4)'s time goes, per source (median µs):\n")
    print("| source | capture | seed | restore | total |")
    print("|---|---:|---:|---:|---:|")
    total_sources = 0.0
    for name, *_ in sources:
        capture_us = part_results[f"{name}.capture"]
        seed_us = part_results[f"{name}.seed"]
        restore_us = part_results[f"{name}.seed+restore"] - seed_us
        total = capture_us + seed_us + restore_us
        total_sources += total
        print(f"| {name} | {capture_us:.2f} | {seed_us:.2f} | {restore_us:.2f} | {total:.2f} |")
    scope_us = part_results["(4) `with deterministic(k):`"]
    print(f"| **all sources** | | | | **{total_sources:.2f}** |")
    print(
        f"| engine (construction, stack, import hook, locks): (4) {scope_us:.2f} - sources "
        f"| | | | {scope_us - total_sources:.2f} |"
    )
    print("\nSingle calls (median µs):\n")
    print("| call | median µs |")
    print("|---|---:|")
    for label in alternatives:
        print(f"| {label} | {part_results[label]:.2f} |")
    _generator().close()  # now, not at interpreter shutdown
    return 0


if __name__ == "__main__":
    sys.exit(main())
