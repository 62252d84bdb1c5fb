"""``seedscope verify --compare`` on tensor files: torch.save outputs, .npy and .npz.

The files are made here with torch and numpy; the command that verify runs
only copies run 1's versions, then run 2's, into place, so it starts fast.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _cli import assert_no_seedscope_traceback, seedscope, write

PY = sys.executable
FILES = ("weights.pt", "array.npy", "arrays.npz")

COPY_INTO_PLACE = """
    import pathlib, shutil
    counter = pathlib.Path("count.txt")
    run = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(run))
    for made in sorted(pathlib.Path(f"v{min(run, 2)}").iterdir()):
        shutil.copyfile(made, made.name)
"""


def weights() -> dict[str, object]:
    return {
        "layer.weight": torch.arange(20, dtype=torch.float32).reshape(4, 5) / 7,
        "layer.bias": torch.zeros(5),
        "step": 3,
    }


def array() -> np.ndarray:
    return np.linspace(0.0, 1.0, 6).reshape(2, 3)


def save_all(directory: Path, state: dict[str, object], values: np.ndarray) -> None:
    directory.mkdir()
    torch.save(state, directory / "weights.pt")
    np.save(directory / "array.npy", values)
    np.savez(directory / "arrays.npz", first=np.ones(3), second=values)


def verify(tmp_path: Path, change: Callable[[Path], None]) -> subprocess.CompletedProcess[str]:
    """verify over two runs: run 1 writes the files as made, run 2 after ``change``."""
    save_all(tmp_path / "v1", weights(), array())
    save_all(tmp_path / "v2", weights(), array())
    change(tmp_path / "v2")
    write(tmp_path / "place.py", COPY_INTO_PLACE)
    return seedscope("verify", "--compare", *FILES, "--", PY, "place.py", cwd=tmp_path)


def test_same_tensors_agree_even_in_another_file_layout(tmp_path: Path) -> None:
    def reorder(v2: Path) -> None:  # same tensors, other bytes
        torch.save(dict(reversed(list(weights().items()))), v2 / "weights.pt")

    result = verify(tmp_path, reorder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "v1" / "weights.pt").read_bytes() != (tmp_path / "weights.pt").read_bytes()
    for name in FILES:
        assert f"  {name}: identical" in result.stdout


def test_report_names_first_differing_tensor_index_and_values(tmp_path: Path) -> None:
    state = weights()
    weight = state["layer.weight"]
    assert isinstance(weight, torch.Tensor)
    first = weight[2, 3].clone()
    second = torch.nextafter(first, torch.tensor(100.0))  # one bit apart
    values = array()
    value = float(values[1, 0])

    def change(v2: Path) -> None:
        weight[2, 3] = second
        values[1, 0] = value * 2
        (v2 / "weights.pt").unlink()
        (v2 / "array.npy").unlink()
        (v2 / "arrays.npz").unlink()
        v2.rmdir()
        save_all(v2, state, values)

    result = verify(tmp_path, change)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert (
        '  weights.pt: tensor ["layer.weight"], index [2, 3]: values differ:\n'
        f"    run 1: {first.item()!r}\n"
        f"    run 2: {second.item()!r}\n"
    ) in out
    assert (
        "  array.npy: the array, index [1, 0]: values differ:\n"
        f"    run 1: {value!r}\n"
        f"    run 2: {value * 2!r}\n"
    ) in out
    assert '  arrays.npz: array ["second"], index [1, 0]: values differ:' in out
    assert_no_seedscope_traceback(result)


def test_structural_differences_are_named(tmp_path: Path) -> None:
    def change(v2: Path) -> None:
        state = weights()
        state["layer.bias"] = torch.zeros(6)
        torch.save(state, v2 / "weights.pt")
        np.save(v2 / "array.npy", array().astype(np.float32))

    result = verify(tmp_path, change)
    assert result.returncode == 1
    assert '  weights.pt: ["layer.bias"]: shapes differ:\n    run 1: (5,)\n    run 2: (6,)' in (
        result.stdout
    )
    assert "  array.npy: the array: dtypes differ:\n" in result.stdout


def test_an_unreadable_tensor_file_is_reported_not_raised(tmp_path: Path) -> None:
    def corrupt(v2: Path) -> None:
        (v2 / "weights.pt").write_bytes(b"PK\x03\x04 not really a zip")
        (v2 / "array.npy").write_bytes(b"\x93NUMPY garbage")

    result = verify(tmp_path, corrupt)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "  weights.pt: run 1 wrote torch data, run 2 wrote binary data" in result.stdout
    assert "  array.npy: bytes differ from offset 6 (cannot load it as a numpy array file: " in (
        result.stdout
    )
    assert_no_seedscope_traceback(result)
