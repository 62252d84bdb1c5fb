"""What the seedscope pytest plugin costs per test on a real third-party suite.

The suite is opt_einsum 3.4.0's ``tests/test_contract.py`` as its wheel ships
it: 7,482 tests of einsum contraction paths, parametrized, drawing test data
from numpy. It runs with pytest in fresh processes under each configuration
below, several rounds, configurations interleaved; each run times itself from
the start of collection to the end of the test loop (interpreter start-up
excluded). The table shows each configuration's median time, its cost per
test over the run without the plugin (the median, over rounds, of the
difference to the same round's run, with half the interquartile range of
those differences as the noise) and the ratio of the medians.

    python benchmarks/bench_pytest_real_suite.py [--rounds 5] [--clock cpu|wall] [--torch]

opt_einsum 3.4.0 is used where it is installed (``requirements/bench.txt``
installs it); otherwise its wheel is fetched with ``pip download`` into
``--cache`` and the package is unpacked into a temporary directory.

Targets: installed with the defaults adds under 20 us per test; every test in
a scope (``--seedscope-seed=0``) adds at most 150 us per test.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from _machine import machine_line
from _pytest_timing import (
    add_clock_options,
    clean_environment,
    table_rows,
    time_rounds,
    timing_conftest,
)

PACKAGE = "opt_einsum"
VERSION = "3.4.0"
TEST_FILE = "tests/test_contract.py"
TARGETS_US = {"defaults": 20.0, "--seedscope-seed=0": 150.0}

CONFTEST = timing_conftest(
    """
    import numpy  # noqa: F401  (the suite imports it too; imported here, before the clock)

    if os.environ["BENCH_TORCH"] == "1":
        import torch  # noqa: F401
    """
)

# pytest-randomly would reorder and reseed the suite: off in every run.
NO_RANDOMLY = ["-p", "no:randomly"]

CONFIGS: dict[str, list[str]] = {
    "no plugin": [*NO_RANDOMLY, "-p", "no:seedscope"],
    "defaults": NO_RANDOMLY,
    "--seedscope-seed=0": [*NO_RANDOMLY, "--seedscope-seed=0"],
}


def installed_package() -> Path | None:
    """The directory of an installed opt_einsum of the version benchmarked, if any."""
    try:
        if importlib.metadata.version(PACKAGE) != VERSION:
            return None
    except importlib.metadata.PackageNotFoundError:
        return None
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def unpacked_package(cache: Path, into: Path) -> Path:
    """opt_einsum from its wheel, fetched into ``cache`` with pip, unpacked under ``into``."""
    wheels = sorted(cache.glob(f"{PACKAGE}-{VERSION}-*.whl"))
    if not wheels:
        cache.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        subprocess.run([*pip, "-d", str(cache), f"{PACKAGE}=={VERSION}"], check=True)
        wheels = sorted(cache.glob(f"{PACKAGE}-{VERSION}-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        members = [name for name in wheel.namelist() if name.startswith(f"{PACKAGE}/")]
        wheel.extractall(into, members)
    return into / PACKAGE


def write_suite(root: Path, package: Path) -> None:
    shutil.copyfile(package / TEST_FILE, root / "test_contract.py")
    (root / "conftest.py").write_text(CONFTEST)
    (root / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    add_clock_options(parser)
    parser.add_argument(
        "--torch",
        dest="torch",
        action="store_const",
        const="1",
        default="0",
        help="import torch in the suite's conftest (the suite itself does not), so that "
        "the leak check reads torch's settings and scopes seed torch too",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "seedscope-bench",
        help="where pip download puts the wheel when opt_einsum is not installed",
    )
    options = parser.parse_args()
    env = dict(clean_environment(options.clock, options.gc_freeze), BENCH_TORCH=options.torch)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "suite"
        root.mkdir()
        package = installed_package()
        source = f"{PACKAGE} {VERSION}, installed"
        if package is None:
            package = unpacked_package(options.cache, Path(tmp) / "site")
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(package.parent), env.get("PYTHONPATH")])
            )
            source = f"{PACKAGE} {VERSION}, from its wheel"
        write_suite(root, package)
        times, tests = time_rounds(root, CONFIGS, env, options.rounds)
    import numpy  # noqa: F401  (for the machine line: the versions the suite ran with)

    if options.torch == "1":
        import torch  # noqa: F401

    print(machine_line())
    print(
        f"{source}: {TEST_FILE}, {tests} tests; {options.rounds} rounds, interleaved, "
        f"collection + test loop, {options.clock} clock, "
        f"gc.freeze() {'on' if options.gc_freeze == '1' else 'off'}, "
        f"torch {'imported by the conftest' if options.torch == '1' else 'not imported'}"
    )
    print()
    print(
        f"| {'configuration':<20} | median (s) | added per test (us) | ratio | target |\n"
        f"| {'-' * 20} | ---------: | ------------------: | ----: | ------ |"
    )
    rows, missed = table_rows(times, "no plugin", tests, TARGETS_US, under="defaults")
    base = statistics.median(times["no plugin"])
    for row in rows:
        print(
            f"| {row.name:<20} | {row.median:>10.2f} | {row.added:>19} | "
            f"{row.median / base:5.3f} | {row.verdict} |"
        )
    if missed:
        raise SystemExit(f"missed targets: {', '.join(missed)}")


if __name__ == "__main__":
    main()
