"""What the seedscope pytest plugin costs per test.

Generates a suite of trivial tests (numpy and torch imported by its conftest)
and runs it with pytest in fresh processes under each configuration below,
several rounds, configurations interleaved. Each run times itself from the
start of collection to the end of the test loop (interpreter start-up and
imports excluded: they are the same in every row). The table shows each
configuration's median time and its cost per test over plain pytest: the
median, over rounds, of its difference to the plain run of the same round,
with half the interquartile range of those differences as the noise.

    python benchmarks/bench_pytest_plugin.py [--tests 1000] [--rounds 10] [--clock cpu|wall]

Targets: installed but unused adds under 20 us per test; every test in a scope
adds at most 150 us per test. ``bench_pytest_real_suite.py`` measures the same
on a real third-party suite.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line

TARGETS_US = {"installed, unused": 20.0, "every test in a scope": 150.0}

CONFTEST = textwrap.dedent(
    """
    import gc
    import json
    import os
    import time

    import numpy.random  # noqa: F401
    import pytest
    import torch  # noqa: F401

    # torch leaves millions of objects for the cyclic GC to walk: each full
    # collection takes tens of ms and lands at unpredictable points, which
    # swamps differences of microseconds per test. Freezing them (as a
    # long-running suite effectively does) keeps the collections small.
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
)

TEST_MODULE = textwrap.dedent(
    """
    def test_{i}():
        assert {i} + 1 > {i}
    """
)

# Plugins that are installed here but not under test stay off in every row.
COMMON = ["-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
COMMON += ["-p", "no:hypothesispytest", "-p", "no:asyncio", "-p", "no:anyio"]
HAS_RANDOMLY = importlib.util.find_spec("pytest_randomly") is not None
NO_RANDOMLY = ["-p", "no:randomly"] if HAS_RANDOMLY else []

CONFIGS: dict[str, list[str]] = {
    "plain pytest": ["-p", "no:seedscope", *NO_RANDOMLY],
    "installed, unused": [*NO_RANDOMLY],
    "installed, --seedscope-leaks=off": ["--seedscope-leaks=off", *NO_RANDOMLY],
    "leak checks with rng": ["--seedscope-leaks=rng", *NO_RANDOMLY],
    "every test in a scope": ["--seedscope-seed=1", *NO_RANDOMLY],
}
if HAS_RANDOMLY:
    CONFIGS["pytest-randomly (no seedscope)"] = ["-p", "no:seedscope", "-p", "randomly"]


def write_suite(root: Path, tests: int) -> None:
    (root / "conftest.py").write_text(CONFTEST)
    (root / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    per_module = 100
    for start in range(0, tests, per_module):
        body = "".join(
            TEST_MODULE.format(i=i) for i in range(start, min(start + per_module, tests))
        )
        (root / f"test_gen_{start // per_module:03d}.py").write_text(body)


def run_once(root: Path, args: list[str], clock: str, freeze: str) -> tuple[float, int]:
    result_file = root / "result.json"
    env = dict(os.environ, BENCH_RESULT=str(result_file), BENCH_CLOCK=clock, BENCH_GC_FREEZE=freeze)
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *COMMON, *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"pytest {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    result = json.loads(result_file.read_text())
    return float(result["seconds"]), int(result["tests"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
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
        help="leave torch's objects to the cyclic GC (noisier)",
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_suite(root, options.tests)
        times: dict[str, list[float]] = {name: [] for name in CONFIGS}
        for args in CONFIGS.values():  # warm the file system and the bytecode caches
            run_once(root, args, options.clock, options.gc_freeze)
        for _ in range(options.rounds):
            for name, args in CONFIGS.items():
                seconds, collected = run_once(root, args, options.clock, options.gc_freeze)
                if collected != options.tests:
                    raise SystemExit(f"{name}: collected {collected} tests, not {options.tests}")
                times[name].append(seconds)
    import numpy  # noqa: F401  (for the machine line: the versions the suite ran with)
    import torch  # noqa: F401

    print(machine_line())
    print(
        f"{options.tests} trivial tests, numpy and torch imported; {options.rounds} rounds, "
        f"interleaved, collection + test loop, {options.clock} clock, "
        f"gc.freeze() {'on' if options.gc_freeze == '1' else 'off'}"
    )
    print()
    header = f"| {'configuration':<34} | median (ms) | added per test (us) | target |"
    print(header)
    print(f"| {'-' * 34} | ----------: | ------------------: | ------ |")
    failed = []
    plain = times["plain pytest"]
    for name, samples in times.items():
        per_test = sorted(
            (t - p) / options.tests * 1e6 for t, p in zip(samples, plain, strict=True)
        )
        added = statistics.median(per_test)
        quartiles = statistics.quantiles(per_test, n=4)
        noise = (quartiles[2] - quartiles[0]) / 2
        target = TARGETS_US.get(name)
        verdict = ""
        if target is not None:
            strict = name == "installed, unused"  # under 20; at most 150
            met = added < target if strict else added <= target
            verdict = f"{'<' if strict else '<='} {target:g}" + (" ok" if met else " MISSED")
            if not met:
                failed.append(name)
        shown = "" if name == "plain pytest" else f"{added:.1f} ± {noise:.1f}"
        median = statistics.median(samples) * 1e3
        print(f"| {name:<34} | {median:>11.1f} | {shown:>19} | {verdict} |")
    if failed:
        raise SystemExit(f"missed targets: {', '.join(failed)}")


if __name__ == "__main__":
    main()
