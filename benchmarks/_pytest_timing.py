"""What the pytest plugin's two benchmarks share: a suite that times itself, and the sums.

Each run is a fresh pytest process whose conftest times collection plus the
test loop (interpreter start-up and imports excluded: they are the same in
every configuration) and writes the time to ``$BENCH_RESULT``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

# Plugins that are installed here but not under test stay off in every run.
COMMON = ["-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
COMMON += ["-p", "no:hypothesispytest", "-p", "no:asyncio", "-p", "no:anyio"]

_TIMING = """
    # Long-lived objects (numpy's, torch's: millions of them) left to the cyclic
    # GC make each full collection take tens of ms at unpredictable points,
    # which swamps differences of microseconds per test. Freezing them (as a
    # long-running suite effectively does) keeps runs comparable.
    if os.environ["BENCH_GC_FREEZE"] == "1":
        gc.freeze()

    clock = time.process_time if os.environ["BENCH_CLOCK"] == "cpu" else time.perf_counter
    _start = []


    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection(session):
        _start.append(clock())
        return (yield)


    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtestloop(session):
        try:
            return (yield)
        finally:
            elapsed = clock() - _start[0]
            with open(os.environ["BENCH_RESULT"], "w") as f:
                json.dump({"seconds": elapsed, "tests": session.testscollected}, f)
"""


def timing_conftest(imports: str) -> str:
    """A conftest that imports ``imports`` (before the clock starts), then times the run."""
    head = "import gc\nimport json\nimport os\nimport time\n\nimport pytest\n"
    return head + textwrap.dedent(imports) + textwrap.dedent(_TIMING)


def add_clock_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="cpu",
        help="cpu (default): the pytest process's CPU time, steady on a shared machine; "
        "wall: perf_counter",
    )
    parser.add_argument(
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_const",
        const="0",
        default="1",
        help="leave long-lived objects to the cyclic GC (noisier)",
    )


def run_timed(root: Path, args: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Run pytest in ``root``; its conftest's time and the number of tests it collected."""
    result_file = root / "result.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *COMMON, *args],
        cwd=root,
        env=dict(env, BENCH_RESULT=str(result_file)),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"pytest {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr}")
    result = json.loads(result_file.read_text())
    return float(result["seconds"]), int(result["tests"])


def time_rounds(
    root: Path, configs: dict[str, list[str]], env: dict[str, str], rounds: int
) -> tuple[dict[str, list[float]], int]:
    """Each configuration's times over ``rounds`` interleaved rounds, and the tests collected.

    One run of each configuration first warms the file system and the bytecode
    caches; every timed run must collect as many tests as the last of those.
    """
    tests = 0
    for args in configs.values():
        _, tests = run_timed(root, args, env)
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(rounds):
        for name, args in configs.items():
            seconds, collected = run_timed(root, args, env)
            if collected != tests:
                raise SystemExit(f"{name}: collected {collected} tests, not {tests}")
            times[name].append(seconds)
    return times, tests


def clean_environment(clock: str, gc_freeze: str) -> dict[str, str]:
    """This process's environment for the runs, without what would change them."""
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_ADDOPTS"}
    env.pop("SEEDSCOPE_SEED", None)
    return dict(env, BENCH_CLOCK=clock, BENCH_GC_FREEZE=gc_freeze)


def added_per_test(samples: list[float], base: list[float], tests: int) -> tuple[float, float]:
    """The median over rounds of the cost per test over the same round's base run (µs), ± noise.

    The noise is half the interquartile range of those per-round differences.
    """
    per_test = sorted((t - b) / tests * 1e6 for t, b in zip(samples, base, strict=True))
    quartiles = statistics.quantiles(per_test, n=4) if len(per_test) > 1 else [0.0] * 3
    return statistics.median(per_test), (quartiles[2] - quartiles[0]) / 2


def verdict(added: float, target: float, *, under: bool) -> tuple[str, bool]:
    """``"< 20 ok"`` and whether met: strictly under ``target`` if ``under``, else at most."""
    met = added < target if under else added <= target
    return f"{'<' if under else '<='} {target:g}" + (" ok" if met else " MISSED"), met


class Row(NamedTuple):
    name: str
    median: float  # seconds
    added: str  # "added ± noise" per test over the base (µs); blank for the base itself
    verdict: str  # against the configuration's target; blank without one


def table_rows(
    times: dict[str, list[float]],
    base: str,
    tests: int,
    targets: dict[str, float],
    *,
    under: str,
) -> tuple[list[Row], list[str]]:
    """Each configuration's row, and the configurations that missed their targets.

    ``under``'s target is to be stayed strictly under; the others' at most reached.
    """
    rows: list[Row] = []
    missed: list[str] = []
    for name, samples in times.items():
        added, noise = added_per_test(samples, times[base], tests)
        shown_verdict = ""
        target = targets.get(name)
        if target is not None:
            shown_verdict, met = verdict(added, target, under=name == under)
            if not met:
                missed.append(name)
        shown = "" if name == base else f"{added:.1f} ± {noise:.1f}"
        rows.append(Row(name, statistics.median(samples), shown, shown_verdict))
    return rows, missed
