"""What README.md claims beyond its doctests, each checked for real.

The README's ``>>>`` examples run as doctests (``nox -s docs``). Every other
claim it makes has a test here whose docstring quotes it: the first screen's
commands run in real subprocesses, and the install and development lines are
checked against pyproject.toml, constraints.txt, noxfile.py and .ci/run.
"""

from __future__ import annotations

import ast
import os
import random
import re
import shlex
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import torch
from _cli import ROOT, SEEDSCOPE, environment, python, run, seedscope

from seedscope import deterministic

README = (ROOT / "README.md").read_text(encoding="utf-8")
FIRST_SCREEN = README.split("\n## ", 1)[0]


def console_lines(heading: str) -> list[str]:
    """The lines of the ```console blocks in the README section under ``heading``."""
    section = README.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```console\n(.*?)```", section, re.S)
    return [line for block in blocks for line in block.splitlines()]


def test_the_first_screen_shows_each_entry_point_by_its_call_or_command() -> None:
    """Claim: the feature list shows each entry point's exact command or call."""
    for shown in (
        "`with deterministic(42):`",
        "`with isolated():`",
        "`@deterministic(0)`",
        "`@pytest.mark.deterministic`",
        "`pytest --seedscope-seed=random`",
        "seedscope: reproduce with: pytest ",
        "`seedscope run train.py`",
        "`seedscope verify -- python train.py`",
        "`seedscope doctor`",
        "`seedscope verify --locate -- python train.py`",
        "`capture().state_dict()`",
        "`Snapshot.from_state_dict(state).restore()`",
        "**dataloader_seeding()",
        "`deterministic(seed, strict=True)`",
        "`with relaxed():`",
    ):
        assert shown in FIRST_SCREEN, shown


# -- tests -------------------------------------------------------------------------

DECORATED_TESTS = """
import asyncio
import random
import unittest

import pytest

from seedscope import deterministic

random.seed(0)
SEEDED = [random.random() for _ in range(3)]
random.seed(99)
BEFORE = [random.random() for _ in range(3)]
random.seed(99)


@pytest.fixture
def fixture_value():
    return "from a fixture"


@pytest.mark.parametrize("n", [1, 3])
@deterministic(0)
def test_pytest_test(fixture_value, n):
    assert [random.random() for _ in range(n)] == SEEDED[:n]


@pytest.mark.deterministic(seed=0)
def test_marked():
    assert random.random() == SEEDED[0]


@pytest.mark.asyncio
@deterministic(0)
async def test_async_def():
    await asyncio.sleep(0)
    assert random.random() == SEEDED[0]


@deterministic(0)
class TestCaseClass(unittest.TestCase):
    def test_one(self):
        self.assertEqual(random.random(), SEEDED[0])

    def test_two(self):
        self.assertEqual([random.random(), random.random()], SEEDED[:2])


def test_zz_nothing_left_behind():
    # Every test above drew only inside its scope: the stream seeded at import
    # goes on as if none of them had run.
    assert [random.random() for _ in range(3)] == BEFORE
"""


def test_decorated_tests_start_from_the_seed_and_leave_nothing_behind(
    pytester: pytest.Pytester,
) -> None:
    """Claim: `@deterministic(0)` on a test (a pytest test, an `async def` test, a whole
    `unittest.TestCase`) runs it from the seed and leaves nothing behind for the next
    test; `@pytest.mark.deterministic` does the same through the pytest plugin."""
    pytest.importorskip("pytest_asyncio")  # runs the async def test, as in the test suite
    pytester.makepyfile(test_decorated=DECORATED_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=7)


def test_generators_and_coroutines_run_each_step_in_the_scopes_own_state() -> None:
    """Claim: generators, coroutines and async generators are decorated step by step: each
    step runs in the scope's own state and the caller's state is back at every `yield` and
    `await`, so concurrent tasks neither see nor shift each other's streams."""
    import asyncio

    @deterministic(0)
    def numbers() -> Iterator[float]:
        while True:
            yield random.random()

    @deterministic(0)
    async def task(steps: int) -> list[float]:
        drawn = []
        for _ in range(steps):
            drawn.append(random.random())
            await asyncio.sleep(0)  # the other task runs here, from its own state
        return drawn

    @deterministic(0)
    async def async_numbers() -> AsyncIterator[float]:
        for _ in range(3):
            yield random.random()
            await asyncio.sleep(0)

    async def both() -> list[list[float]]:
        async def collect() -> list[float]:
            return [number async for number in async_numbers()]

        return list(await asyncio.gather(task(3), task(3), collect(), collect()))

    random.seed(0)
    seeded = [random.random() for _ in range(3)]
    random.seed(5)
    caller = [random.random() for _ in range(4)]
    random.seed(5)
    stream = numbers()
    drawn = []
    for _ in range(3):
        drawn.append(next(stream))
        drawn.append(random.random())  # the caller's own stream, between steps
    assert drawn[::2] == seeded
    assert drawn[1::2] == caller[:3]
    assert asyncio.run(both()) == [seeded] * 4
    assert random.random() == caller[3]


# The test that the README's reproduce line comes from, in the layout it names.
FAILING_TEST = """
import random

import pytest


@pytest.mark.parametrize("device", ["cpu"])
@pytest.mark.parametrize("steps", [2])
def test_step(device, steps):
    assert random.random() < 0.0, "the draw"
"""


def test_seedscope_seed_random_prints_n_and_a_reproduce_line_as_the_readme_shows(
    pytester: pytest.Pytester,
) -> None:
    """Claim: `pytest --seedscope-seed=random` runs every test in a scope of its own,
    seeded from the test's node id and one number that the header prints; a failing
    test's report ends with the line that reruns it with its seed (as shown)."""
    shown = re.search(r"^  (seedscope: reproduce with: .*)$", FIRST_SCREEN, re.M)
    assert shown is not None
    shown_n = re.search(r"--seedscope-seed=(\d+)$", shown.group(1))
    assert shown_n is not None
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_model.py").write_text(FAILING_TEST, encoding="utf-8")
    first = pytester.runpytest_subprocess(
        "--seedscope-seed=random", "-p", "no:randomly", "-p", "no:cacheprovider"
    )
    first.assert_outcomes(failed=1)
    output = first.stdout.str()
    header = re.search(r"^seedscope: --seedscope-seed=(\d+) \(picked at random\)", output, re.M)
    assert header is not None
    # The README's line, with this run's N in place of the one shown.
    expected_line = shown.group(1)[: shown_n.start(1)] + header.group(1)
    assert expected_line in output.splitlines()
    # The line reruns that test with the same seed: the same draw fails again.
    command = shlex.split(expected_line.split("reproduce with: ", 1)[1])
    assert command[0] == "pytest"
    again = pytester.runpytest_subprocess(*command[1:], "-p", "no:cacheprovider")
    again.assert_outcomes(failed=1)
    draw = re.compile(r"assert (\d\.\d+) < 0\.0")
    assert draw.findall(again.stdout.str()) == draw.findall(output) != []


# -- the command line -----------------------------------------------------------------

PROGRAM = """
import random
print(hash("seedscope"), random.random())
"""


def test_seedscope_run_fixes_the_hash_seed_and_runs_the_program_in_a_scope(
    tmp_path: Path,
) -> None:
    """Claim: `seedscope run train.py` starts a program with its hash seed fixed, all of it
    inside `deterministic(seed)`."""
    (tmp_path / "train.py").write_text(PROGRAM, encoding="utf-8")
    runs = [seedscope("run", "train.py", cwd=tmp_path) for _ in range(2)]
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    random.seed(0)  # the seed when SEEDSCOPE_SEED is unset
    assert runs[0].stdout.split()[1] == repr(random.random())
    # Plain python salts each interpreter's hashes afresh.
    plain = {python("train.py", cwd=tmp_path).stdout.split()[0] for _ in range(3)}
    assert len(plain) > 1


def test_seedscope_verify_runs_twice_and_names_the_first_difference(tmp_path: Path) -> None:
    """Claim: `seedscope verify -- python train.py` runs a command twice, compares its output
    (and the files named with `--compare`) and names the first line, tensor or byte that
    differs."""
    (tmp_path / "same.py").write_text("print('loss 0.25')\n", encoding="utf-8")
    agree = seedscope("verify", "--", sys.executable, "same.py", cwd=tmp_path)
    assert agree.returncode == 0, agree.stderr
    assert "reproducible: 2 runs of" in agree.stdout
    line = "import os\nprint('epoch 1')\nprint(os.urandom(8).hex())\n"
    (tmp_path / "line.py").write_text(line, encoding="utf-8")
    differ = seedscope("verify", "--", sys.executable, "line.py", cwd=tmp_path)
    assert differ.returncode == 1
    assert "stdout: line 2 differs:" in differ.stdout
    tensor = textwrap.dedent("""
        import os
        import numpy as np
        weights = np.zeros((3, 4), dtype=np.float32)
        weights[2, 1] = int.from_bytes(os.urandom(3), "little")  # exact in float32
        np.save("weights.npy", weights)
        """)
    (tmp_path / "tensor.py").write_text(tensor, encoding="utf-8")
    compare = ("--compare", "weights.npy", "--", sys.executable, "tensor.py")
    differ = seedscope("verify", *compare, cwd=tmp_path)
    assert differ.returncode == 1
    assert re.search(r"weights\.npy: .*index \[2, 1\]: values differ", differ.stdout)
    (tmp_path / "bytes.py").write_text(
        "import os\nopen('out.bin', 'wb').write(bytes(4) + os.urandom(16))\n", encoding="utf-8"
    )
    compare = ("--compare", "out.bin", "--", sys.executable, "bytes.py")
    differ = seedscope("verify", *compare, cwd=tmp_path)
    assert differ.returncode == 1
    assert re.search(r"out\.bin: bytes differ from offset \d+$", differ.stdout, re.M)


def test_seedscope_doctor_lists_what_would_break_reproducibility_with_fixes(
    tmp_path: Path,
) -> None:
    """Claim: `seedscope doctor` lists what would break reproducibility on this machine, each
    with its fix."""
    result = seedscope("doctor", cwd=tmp_path)  # PYTHONHASHSEED unset: one problem at least
    assert result.returncode == 0
    problems = re.search(r"^What would break reproducibility \((\d+)\)$", result.stdout, re.M)
    assert problems is not None
    assert result.stdout.count("\n     fix: ") == int(problems.group(1)) >= 1


LOCATE = """
import os

import torch
from torch import nn

from seedscope import deterministic


class Noisy(nn.Module):
    def forward(self, x):
        return x * float(int.from_bytes(os.urandom(3), "little"))  # differs run to run


with deterministic(0):
    print(Noisy()(torch.ones(3)).sum().item())
"""


def test_seedscope_verify_locate_names_the_op_module_and_line_where_runs_part(
    tmp_path: Path,
) -> None:
    """Claim: `seedscope verify --locate -- python train.py`: names the op, module and line
    where two runs first part."""
    (tmp_path / "train.py").write_text(LOCATE, encoding="utf-8")
    line = next(n for n, text in enumerate(LOCATE.splitlines(), 1) if "urandom" in text)
    command = ("verify", "--locate", "--", sys.executable, "train.py")
    result = run(*SEEDSCOPE, *command, cwd=tmp_path, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    report = result.stdout.split("stdout: line 1 differs", 1)[1]
    for named in ("aten::mul", "Noisy", f"train.py:{line}"):
        assert named in report, named


# -- strict mode -------------------------------------------------------------------------


def test_relaxed_lets_a_region_of_a_strict_scope_run_a_nondeterministic_op() -> None:
    """Claim: `deterministic(seed, strict=True)` also turns on PyTorch's deterministic
    algorithms and turns TF32 off; `with relaxed():` inside it lets one region run an
    operation that has no deterministic implementation."""
    from seedscope import relaxed

    def overwrite() -> torch.Tensor:  # put_ without accumulate has no deterministic kernel
        return torch.zeros(3).put_(torch.tensor([0, 0]), torch.tensor([1.0, 2.0]))

    with deterministic(0, strict=True):
        with pytest.raises(RuntimeError, match="does not have a deterministic implementation"):
            overwrite()
        with relaxed():
            overwrite()
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.backends.cudnn.allow_tf32


def test_strict_sets_cublas_workspace_config_only_for_cuda_builds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Claim: strict mode sets `CUBLAS_WORKSPACE_CONFIG=:4096:8` when torch is a CUDA build
    and the variable does not already hold a deterministic value; a CPU build of torch has
    no cuBLAS, and there the variable is left alone. All of it is restored on exit."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    with deterministic(0, strict=True):
        inside = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    assert inside == (":4096:8" if torch.version.cuda else None)
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    for deterministic_value in (":4096:8", ":16:8"):
        monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", deterministic_value)
        with deterministic(0, strict=True):
            assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == deterministic_value
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":0:0")
    with deterministic(0, strict=True):
        inside = os.environ["CUBLAS_WORKSPACE_CONFIG"]
    assert inside == (":4096:8" if torch.version.cuda else ":0:0")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":0:0"


def test_strict_sets_cublas_workspace_config_before_torch_is_imported(tmp_path: Path) -> None:
    """Claim: strict mode sets `CUBLAS_WORKSPACE_CONFIG=:4096:8` when torch is not imported
    yet (whichever build it turns out to be)."""
    script = textwrap.dedent("""
        import os, sys
        from seedscope import deterministic
        with deterministic(0, strict=True):
            print(os.environ.get("CUBLAS_WORKSPACE_CONFIG"), "torch" in sys.modules)
        print(os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
        """)
    result = python("-c", script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [":4096:8", "False", "None"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_every_cuda_device_is_seeded_and_restored() -> None:
    """Claim: `with deterministic(42):` seeds ... every CUDA device for the block, and on exit
    restores the state of ... every CUDA device."""
    devices = range(torch.cuda.device_count())
    before = [torch.cuda.get_rng_state(i) for i in devices]
    with deterministic(42):
        inside = [torch.rand(4, device=f"cuda:{i}") for i in devices]
    assert all(torch.equal(torch.cuda.get_rng_state(i), before[i]) for i in devices)
    with deterministic(0):
        torch.manual_seed(42)  # what the scope seeds each device with
        expected = [torch.rand(4, device=f"cuda:{i}") for i in devices]
    assert all(torch.equal(a, b) for a, b in zip(inside, expected, strict=True))


# -- data loading --------------------------------------------------------------------------


def test_dataloader_seeding_depends_on_the_rank_too() -> None:
    """Claim: `dataloader_seeding()` seeds the shuffling and each worker's `random`, numpy
    and torch from the scope's seed, the rank and the epoch (the README's doctest shows the
    seed and the epoch; this, the rank)."""
    from seedscope import dataloader_seeding
    from seedscope._data import worker_seeds

    rank_0, rank_1 = dataloader_seeding(0, rank=0), dataloader_seeding(0, rank=1)
    assert rank_0.generator.initial_seed() != rank_1.generator.initial_seed()
    assert worker_seeds(0, 0, 0, 0) != worker_seeds(0, 1, 0, 0)
    assert worker_seeds(0, 0, 0, 0) == worker_seeds(0, 0, 0, 0)


# -- install and development -------------------------------------------------------------


def test_install_lines_name_the_projects_extras_and_its_torch_pin() -> None:
    """Claims: `pip install -e ".[numpy,torch]" -c constraints.txt`; the only dependency is
    `wrapt`; the `numpy` and `torch` extras install those libraries; `constraints.txt` pins
    torch to the release the test suite runs with (the CPU line installs that release)."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert [re.split(r"[<>=!~]", dep)[0] for dep in project["dependencies"]] == ["wrapt"]
    extras = project["optional-dependencies"]
    assert {
        name: [re.split(r"[<>=!~]", dep)[0] for dep in deps] for name, deps in extras.items()
    } == {
        "numpy": ["numpy"],
        "torch": ["torch"],
    }
    lines = console_lines("Install")
    install = 'pip install -e ".[numpy,torch]" -c constraints.txt'
    assert lines.count(install) == 2
    pins = re.findall(r"^torch==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M)
    cpu = [line for line in lines if "download.pytorch.org/whl/cpu" in line]
    assert cpu == [f"pip install torch=={pins[0]} --index-url https://download.pytorch.org/whl/cpu"]


def test_development_commands_are_the_demo_and_what_ci_runs() -> None:
    """Claims: one command runs the demo under `seedscope verify`, the other runs everything
    CI checks (it is what `.ci/run` runs)."""
    demo, suite = console_lines("Development: the demo and the test suite")
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci_run[-1] == suite
    nox_default = "python3 -m pip install nox && python3 -m nox -s"
    noxfile = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    constants = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in noxfile.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id in ("CI_SESSIONS", "DEMO")
    }
    assert suite == f"{nox_default} {' '.join(constants['CI_SESSIONS'])}"
    assert demo == f"{nox_default} demo -- {shlex.join(constants['DEMO'])}"


def test_without_numpy_and_torch_a_scope_manages_random_alone(tmp_path: Path) -> None:
    """Claim: seedscope manages whichever of numpy and torch are installed."""
    script = textwrap.dedent("""
        import random, sys

        class NotInstalled:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in ("numpy", "torch"):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        sys.meta_path.insert(0, NotInstalled())
        from seedscope import deterministic
        random.seed(5)
        with deterministic(0) as scope:
            inside = random.random()
        after = random.random()
        random.seed(0)
        seeded = random.random()
        random.seed(5)
        print(inside == seeded, after == random.random(), scope.seed)
        """)
    result = python("-c", script, cwd=tmp_path, env=environment())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "0"]
