"""``seedscope verify --compare`` on tensor files: torch.save outputs, .npy and .npz.

The files are made here with torch and numpy; the command that verify runs
only copies run 1's versions, then run 2's, into place, so it starts fast.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from _cli import assert_no_seedscope_traceback, compare_in_fresh_process, seedscope, write
from _verify_runs import COPY_INTO_PLACE, verify_versions

from seedscope._compare import format_value

PY = sys.executable
FILES = ("weights.pt", "array.npy", "arrays.npz")


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


@pytest.mark.parametrize("shape", [(2, 4), (3, 3)])  # 8 elements: shown whole; 9: by shape
def test_an_npz_key_in_one_run_only_is_shown_as_format_value_shows_its_array(
    tmp_path: Path, shape: tuple[int, int]
) -> None:
    only = np.arange(shape[0] * shape[1], dtype=np.float64).reshape(shape)

    def make(path: Path, run: int) -> None:
        np.savez(path, kept=np.ones(2), **({"only": only} if run == 1 else {}))

    result = verify_versions(tmp_path, "arrays.npz", make)
    assert result.returncode == 1, result.stdout + result.stderr
    shown = format_value(only)
    assert shown.startswith("<ndarray of shape (3, 3)" if shape == (3, 3) else "array([[0.")
    assert (
        f'  arrays.npz: ["only"]: key in one run only:\n    run 1: {shown}\n    run 2: <missing>\n'
    ) in result.stdout


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


class NotAllowed:
    """A class torch.load(weights_only=True) refuses to unpickle."""


def test_a_torch_load_error_is_reported_on_one_line(tmp_path: Path) -> None:
    def unloadable(v2: Path) -> None:
        torch.save({"layer.weight": torch.zeros(2), "extra": NotAllowed()}, v2 / "weights.pt")

    result = verify(tmp_path, unloadable)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("  weights.pt: ")]
    assert len(lines) == 1, result.stdout
    line = lines[0]
    assert "(cannot load it as a torch.save file: UnpicklingError: Weights only load failed." in (
        line
    )
    assert "Unsupported global: GLOBAL test_cli_verify_tensors.NotAllowed" in line
    assert line.endswith(")")
    assert "\x1b" not in line  # torch's bold text, without its escapes
    assert "  array.npy: identical\n" in result.stdout  # the next line of the report


def npy_header(shape: tuple[int, ...]) -> bytes:
    """A version 1.0 .npy header for float64 data of ``shape``, whatever the data that follow."""
    text = f"{{'descr': '<f8', 'fortran_order': False, 'shape': {shape!r}, }}"
    text += " " * (-(10 + len(text) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def npy_bytes(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, values)
    return buffer.getvalue()


TIB = 1 << 40


def test_an_npz_member_whose_npy_header_declares_a_huge_array_is_refused_with_exit_code_3(
    tmp_path: Path,
) -> None:
    def make(path: Path, run: int) -> None:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            with archive.open("big.npy", "w") as member:
                member.write(npy_header((TIB,)))  # 8 TiB of float64
                for _ in range(16):
                    member.write(bytes(1 << 20))  # 16 MiB of zeros deflate to 16 KiB
            archive.writestr("small.npy", npy_bytes(np.full(3, float(run))))

    result = verify_versions(tmp_path, "arrays.npz", make)
    assert (tmp_path / "arrays.npz").stat().st_size < 100_000
    assert result.returncode == 3, result.stdout + result.stderr
    assert (
        "seedscope verify: refusing to compare arrays.npz: member big.npy of run 1's copy "
        f"would unpack to 8.0 TiB ({8 * TIB + 128} bytes), as its .npy header declares, "
        "past the limit of 4.0 GiB (4294967296 bytes) for a member (4 GiB, or 16 times "
        "the archive's size if more)\n"
    ) in result.stderr
    assert "NOT reproducible" not in result.stdout
    assert_no_seedscope_traceback(result)


@pytest.mark.parametrize("kind", ["npz", "torch"])
def test_an_archive_member_whose_zip_entry_declares_a_huge_size_is_refused_with_exit_code_3(
    tmp_path: Path, kind: str
) -> None:
    name = "arrays.npz" if kind == "npz" else "weights.pt"

    def make(path: Path, run: int) -> None:
        if kind == "npz":
            members = {"big.npy": npy_bytes(np.zeros(4)), "small.npy": npy_bytes(np.ones(run))}
        else:
            torch.save({"weight": torch.full((3,), float(run))}, path)
            with zipfile.ZipFile(path) as saved:
                members = {info.filename: saved.read(info) for info in saved.infolist()}
        with zipfile.ZipFile(path, "w") as archive:
            for member, data in members.items():
                archive.writestr(member, data)
            big = next(i for i in archive.filelist if i.filename.endswith(("big.npy", "data/0")))
            big.file_size = TIB  # what the central directory will declare

    result = verify_versions(tmp_path, name, make)
    assert result.returncode == 3, result.stdout + result.stderr
    member = "big.npy" if kind == "npz" else "weights/data/0"
    assert (
        f"seedscope verify: refusing to compare {name}: member {member} of run 1's copy "
        f"would unpack to 1.0 TiB ({TIB} bytes), as the zip archive declares, past the limit "
        "of 4.0 GiB (4294967296 bytes) for a member"
    ) in result.stderr
    assert_no_seedscope_traceback(result)


def test_an_npz_member_holding_less_than_its_header_declares_cannot_be_loaded(
    tmp_path: Path,
) -> None:
    def make(path: Path, run: int) -> None:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("short.npy", npy_header((1 << 27,)) + bytes(8 * run))  # 1 GiB declared

    result = verify_versions(tmp_path, "arrays.npz", make)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "(cannot load it as a numpy .npz archive file: ValueError: member short.npy: the "
        "header declares 1073741824 bytes of array data, the member holds 8)"
    ) in result.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_comparing_large_array_files_keeps_memory_flat(tmp_path: Path) -> None:
    count = 50 << 20  # float32: 200 MiB of array data
    header = npy_bytes(np.zeros(count, np.float32))[:128]
    first, second = tmp_path / "first.npy", tmp_path / "second.npy"
    for path, last in ((first, 0.0), (second, 1.5)):
        with path.open("wb") as file:
            file.write(header)
            file.truncate(len(header) + 4 * count)  # sparse zeros
            file.seek(len(header) + 4 * (count - 1))
            file.write(np.float32(last).tobytes())
    growth, report = compare_in_fresh_process(first, second, imports=("numpy",))
    assert report == (
        f"the array, index [{count - 1}]: values differ:\n    run 1: 0.0\n    run 2: 1.5"
    )
    assert growth < 64, f"peak memory grew by {growth:.0f} MiB comparing two arrays of 200 MiB"

    archives = tmp_path / "first.npz", tmp_path / "second.npz"
    for path, last in zip(archives, (0.0, 1.5), strict=True):
        with (
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
            archive.open("zeros.npy", "w") as member,  # as numpy.savez_compressed writes it
        ):
            member.write(header)
            for _ in range(49):
                member.write(bytes(4 << 20))
            member.write(bytes((4 << 20) - 4) + np.float32(last).tobytes())
    growth, report = compare_in_fresh_process(*archives, imports=("numpy",))
    assert report == (
        f'array ["zeros"], index [{count - 1}]: values differ:\n    run 1: 0.0\n    run 2: 1.5'
    )
    assert growth < 64, f"peak memory grew by {growth:.0f} MiB comparing two members of 200 MiB"
