"""``seedscope verify --locate``: planted causes in real programs, found in real subprocesses.

The programs are the examples of the "When runs still differ" page
(docs/examples/locate_*.py), copied into a scratch directory so that the
report names them by a short path.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from _cli import ROOT, assert_no_seedscope_traceback, environment, seedscope, write

torch = pytest.importorskip("torch")
pytest.importorskip("numpy")

PY = sys.executable
EXAMPLES = ROOT / "docs" / "examples"


def example(tmp_path: Path, name: str, as_name: str | None = None) -> str:
    target = tmp_path / (as_name or name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(EXAMPLES / name, target)
    return str(target.relative_to(tmp_path))


def line_of(tmp_path: Path, name: str, text: str) -> str:
    lines = (tmp_path / name).read_text().splitlines()
    return f"{name}:{next(n for n, line in enumerate(lines, 1) if text in line)}"


def divergence(stdout: str) -> dict[str, str]:
    """The trace's report, field by field."""
    _, found, rest = stdout.partition("  trace: first divergence between runs 1 and 2:\n")
    assert found, stdout
    fields = {}
    for line in rest.splitlines():
        if not line.startswith("    "):
            break
        key, _, value = line.strip().partition(": ")
        fields[key] = value
    return fields


@pytest.mark.parametrize("how", ["seedscope run", "python -m"])
def test_os_entropy_in_a_submodule_is_located_at_its_op_module_and_line(
    tmp_path: Path, how: str
) -> None:
    if how == "seedscope run":
        script = example(tmp_path, "locate_entropy.py")
        command = [PY, "-m", "seedscope", "run", script]
    else:
        script = example(tmp_path, "locate_entropy.py", "jitter/__main__.py")
        command = [PY, "-m", "jitter"]
    result = seedscope("verify", "--locate", "--", *command, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    found = divergence(result.stdout)
    assert re.fullmatch(r"op \d+", next(iter(found))), found
    assert next(iter(found.values())) == "aten::lift_fresh (forward), outputs differ"
    assert found["module"] == "1.jitter"
    assert found["line"] == line_of(tmp_path, script, "os.urandom")
    assert found["why"].startswith("it makes a tensor from Python or numpy data")
    if how == "seedscope run":
        assert found["generators"] == "all equal (random, numpy, torch)"
        assert "(seed 0)" in result.stdout
        assert "hint: PYTHONHASHSEED" not in result.stdout  # seedscope run fixed it
    else:
        # The program seeds torch, not random or numpy (nothing here draws from them).
        assert found["generators"].startswith("random and numpy differed from the start")
        assert found["generators"].endswith("; torch still equal")
        assert "never entered a seedscope scope" in result.stdout
    assert_no_seedscope_traceback(result)


def test_a_label_index_from_a_set_of_strings_is_located_under_plain_python(
    tmp_path: Path,
) -> None:
    script = example(tmp_path, "locate_labels.py")
    env = environment()
    assert "PYTHONHASHSEED" not in env  # verify must not pin it for plain python
    plain = seedscope("verify", "--locate", "--", PY, script, cwd=tmp_path, env=env)
    assert plain.returncode == 1, plain.stdout + plain.stderr
    found = divergence(plain.stdout)
    assert found["op 0"] == "aten::lift_fresh (forward), outputs differ"
    assert found["module"] == "(none: outside any nn.Module)"
    assert found["line"] == line_of(tmp_path, script, "torch.tensor(")
    assert found["generators"] == "all equal (random, numpy, torch)"
    assert "(seed 0)" in plain.stdout
    assert "hint: PYTHONHASHSEED is not set" in plain.stdout

    ours = seedscope("verify", "--locate", "--", PY, "-m", "seedscope", "run", script, cwd=tmp_path)
    assert ours.returncode == 0, ours.stdout + ours.stderr
    assert re.search(r"  trace: identical \(\d+ torch operations\)\n", ours.stdout)


def test_an_unseeded_default_rng_is_reproducible_under_seedscope_run(tmp_path: Path) -> None:
    script = example(tmp_path, "locate_unseeded_rng.py")
    plain = seedscope("verify", "--locate", "--", PY, script, cwd=tmp_path)
    assert plain.returncode == 1, plain.stdout + plain.stderr
    # What "When runs still differ" says of it: the first random op, no generator seeded.
    _, _, report = plain.stdout.partition("  trace: first divergence between runs 1 and ")
    assert "aten::uniform_" in report, plain.stdout
    assert "random, numpy and torch differed from the start" in report, plain.stdout
    ours = seedscope("verify", "--locate", "--", PY, "-m", "seedscope", "run", script, cwd=tmp_path)
    assert ours.returncode == 0, ours.stdout + ours.stderr
    assert "agree (seed 0)" in ours.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_a_nondeterministic_cuda_op_is_named_with_equal_inputs(tmp_path: Path) -> None:
    script = example(tmp_path, "locate_index_add.py")
    result = seedscope(
        "verify", "--locate", "--runs", "3", "--", PY, "-m", "seedscope", "run", script,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    _, _, report = result.stdout.partition("  trace: first divergence between runs 1 and ")
    assert "aten::index_add (forward), outputs differ" in report
    assert f"line: {line_of(tmp_path, script, 'index_add_')}" in report
    assert "its inputs were equal in both runs and its outputs were not" in report
    assert "deterministic(seed, strict=True)" in report


# A small training loop with a DataLoader whose worker is a forked child of the traced run.
REPRODUCIBLE = """
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from seedscope import dataloader_seeding, deterministic

    with deterministic(3):
        data = TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 2))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        loader = DataLoader(data, batch_size=8, shuffle=True, num_workers=1, **dataloader_seeding())
        for x, y in loader:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        print(f"loss {loss.item():.6f}")
"""


def test_a_reproducible_program_agrees_with_no_false_divergence(tmp_path: Path) -> None:
    write(tmp_path / "train.py", REPRODUCIBLE)
    result = seedscope("verify", "--locate", "--runs", "3", "--", PY, "train.py", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reproducible: 3 runs" in result.stdout
    assert "agree (seed 3)" in result.stdout
    ops = re.search(r"  trace: identical \((\d+) torch operations\)\n", result.stdout)
    assert ops is not None, result.stdout
    assert int(ops.group(1)) > 100
    assert_no_seedscope_traceback(result)


def test_a_command_without_torch_is_compared_on_its_output(tmp_path: Path) -> None:
    write(tmp_path / "plain.py", "import os\nprint(os.urandom(4).hex())\n")
    result = seedscope("verify", "--locate", "--", PY, "plain.py", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "  stdout: line 1 differs:" in result.stdout
    assert "  trace: identical (no torch operations: torch was not imported)" in result.stdout
    assert "sys.modules" not in result.stderr
    write(tmp_path / "quiet.py", "import sys\nprint('torch' in sys.modules)\n")
    quiet = seedscope("verify", "--locate", "--", PY, "quiet.py", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert quiet.stdout.startswith("False\n")  # the tracer imports nothing early
