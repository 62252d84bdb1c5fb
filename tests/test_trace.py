"""``seedscope.trace`` and ``compare_traces`` in one process, with real torch modules."""

from __future__ import annotations

import inspect
import os
import pickle
import re
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
nn = torch.nn

import seedscope  # noqa: E402
from seedscope import Divergence, compare_traces, trace  # noqa: E402
from seedscope._trace._format import (  # noqa: E402
    ARGUMENTS,
    VERSION,
    TraceReader,
    TraceWriter,
    pack_input,
    summary,
)
from seedscope._trace._record import device_digest, tensor_digest  # noqa: E402


def shown(path: str) -> str:
    """A file as traces name it: relative to the working directory when inside it."""
    cwd = os.getcwd()
    return os.path.relpath(path, cwd) if path.startswith(cwd + os.sep) else path


def line_of(function: Callable[..., Any], text: str) -> str:
    """``tests/test_trace.py:N``: the line of ``function``'s source that contains ``text``."""
    lines, start = inspect.getsourcelines(function)
    for offset, line in enumerate(lines):
        if text in line:
            return f"{shown(__file__)}:{start + offset}"
    raise AssertionError(f"{text!r} not in {function.__name__}")


def traced(tmp_path: Path, name: str, body: Callable[[], object]) -> Path:
    path = tmp_path / f"{name}.trace"
    with trace(path):
        body()
    return path


class Scale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((3,), 2.0))

    def forward(self, x: Any) -> Any:
        return x * self.weight


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(3, 3), Scale())

    def forward(self, x: Any) -> Any:
        return self.encoder(x).sum()


def test_a_backward_op_is_reported_at_the_forward_line_and_module_that_made_it(
    tmp_path: Path,
) -> None:
    paths = []
    for scale in (1.0, 1.5):
        torch.manual_seed(0)
        net, x = Net(), torch.ones(2, 3)
        gradient = torch.tensor(scale)  # made before the trace: differs in backward only
        paths.append(traced(tmp_path, f"s{scale}", lambda n=net, x=x, g=gradient: n(x).backward(g)))
    found = compare_traces(*paths)
    assert found is not None
    assert found.phase == "backward"
    assert found.module == "Net"  # the outermost module, by its class
    assert found.location == line_of(Net.forward, ".sum()")
    assert found.inputs_equal is False
    assert found.origin is not None
    assert "made outside torch operations" in found.origin
    assert found.generators == {"random": True, "numpy": True, "torch": True}
    text = str(found)
    assert "(backward)" in text
    assert f"line: {found.location} (the forward line that made this backward op)" in text


def test_backward_ops_of_a_submodule_carry_its_path(tmp_path: Path) -> None:
    def body() -> None:
        net = Net()
        net(torch.ones(2, 3)).backward()

    torch.manual_seed(0)
    path = traced(tmp_path, "run", body)
    backward = [op for op in TraceReader(path) if getattr(op, "backward", False)]
    assert {op.module for op in backward} >= {"encoder.1", "encoder.0"}
    mul = [op for op in backward if op.name == "aten::mul" and op.module == "encoder.1"]
    assert mul
    # Scale.forward is the user's code: the line of its own op, not the caller's.
    assert all(op.location == line_of(Scale.forward, "x * self.weight") for op in mul)
    linear = [op for op in backward if op.module == "encoder.0" and op.name == "aten::mm"]
    assert linear
    assert all(op.location == line_of(Net.forward, "self.encoder(x)") for op in linear)


class Entropy(nn.Module):
    def forward(self, x: Any) -> Any:
        noise = torch.frombuffer(bytearray(os.urandom(12)), dtype=torch.float32)
        return x + noise


def test_os_entropy_in_a_submodule_is_found_at_its_op_module_and_line(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(3, 3), Entropy())
    paths = [traced(tmp_path, f"run{n}", lambda: model(torch.ones(3))) for n in (1, 2)]
    found = compare_traces(*paths)
    assert found is not None
    assert (found.op, found.phase, found.module, found.reason) == (
        "aten::add",
        "forward",
        "1",
        "outputs differ",
    )
    assert found.location == line_of(Entropy.forward, "x + noise")
    assert found.inputs_equal is False
    assert found.origin is not None
    assert found.origin.startswith("input 1 differed, a tensor made outside torch operations")


def test_a_random_op_after_another_seed_is_blamed_on_its_generator(tmp_path: Path) -> None:
    def draw(seed: int) -> Callable[[], object]:
        def body() -> None:
            x = torch.ones(3) * 2
            torch.manual_seed(seed)
            torch.randn(3) + x

        return body

    paths = []
    for seed in (0, 1):
        torch.manual_seed(5)  # the same state when each trace starts
        paths.append(traced(tmp_path, str(seed), draw(seed)))
    found = compare_traces(*paths)
    assert found is not None
    assert found.op == "aten::randn"
    assert found.inputs_equal is False
    assert found.origin is not None
    assert "random op" in found.origin
    assert found.generators["torch"] is False
    assert found.generators["random"] is True
    assert found.index == 2
    assert found.generator_origins["torch"].startswith("from before op 2 on (first seen at ")


def test_numpy_data_that_differs_is_traced_to_the_line_that_made_the_tensor(
    tmp_path: Path,
) -> None:
    def made(draws: int) -> Callable[[], object]:
        def body() -> None:
            torch.zeros(1)
            for _ in range(draws):
                np.random.rand()
            torch.tensor(np.random.rand(3)) * 2

        return body

    paths = []
    for draws in (0, 1):
        np.random.seed(0)
        paths.append(traced(tmp_path, str(draws), made(draws)))
    found = compare_traces(*paths)
    assert found is not None
    assert found.op == "aten::lift_fresh"
    assert found.location == line_of(made, "torch.tensor(")
    assert found.origin is not None
    assert found.origin.startswith("it makes a tensor from Python or numpy data")
    assert f"torch.as_tensor), at {found.location}, and that data differed" in found.origin
    assert found.generators["numpy"] is False
    assert found.generators["torch"] is True
    assert found.generator_origins["numpy"].startswith("from before op 1 on")
    assert "numpy differed from before op 1 on" in str(found)
    assert "drew from it a different number of times" in str(found)


def test_different_paths_through_the_program_are_operations_that_differ(tmp_path: Path) -> None:
    def body(square: bool) -> Callable[[], object]:
        return lambda: torch.ones(3) ** 2 if square else torch.ones(3) * 2

    found = compare_traces(traced(tmp_path, "a", body(True)), traced(tmp_path, "b", body(False)))
    assert found is not None
    assert found.reason == "operations differ"
    assert found.index == 1
    assert found.first.startswith(f"aten::pow (forward) at {shown(__file__)}:")
    assert found.second.startswith(f"aten::mul (forward) at {shown(__file__)}:")
    assert found.inputs_equal is None


def test_a_run_that_stops_early_is_reported(tmp_path: Path) -> None:
    short = traced(tmp_path, "short", lambda: torch.ones(3))
    long = traced(tmp_path, "long", lambda: torch.ones(3) * 2)
    found = compare_traces(short, long)
    assert found is not None
    assert (found.reason, found.index, found.op) == ("one run ended", 1, "aten::mul")
    assert found.first == "ended after 1 ops"


def test_identical_runs_compare_equal(tmp_path: Path) -> None:
    def body() -> None:
        torch.manual_seed(0)
        net = Net()
        net(torch.randn(4, 3)).backward()
        torch.optim.SGD(net.parameters(), lr=0.1).step()

    first, second = traced(tmp_path, "a", body), traced(tmp_path, "b", body)
    assert compare_traces(first, second) is None
    assert summary(first).ops > 20
    assert summary(first).metadata == {
        "seedscope": seedscope.__version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }


def test_equal_inputs_with_different_outputs_make_a_nondeterministic_op(tmp_path: Path) -> None:
    # What a nondeterministic kernel leaves in two traces (tests/test_locate.py has it for
    # real on a GPU): the same inputs, other outputs.
    paths = []
    for output in (b"a" * 16, b"b" * 16):
        path = tmp_path / f"{output[:1].decode()}.trace"
        writer = TraceWriter(str(path), {})
        name, where = writer.string("aten::index_add"), writer.string("train.py:7")
        inputs = [pack_input(b"x" * 16, ARGUMENTS, -1, where)]
        writer.op(0, name, writer.string("0.scatter"), where, None, inputs, [output])
        writer.close()
        paths.append(path)
    found = compare_traces(*paths)
    assert found is not None
    assert (found.op, found.module, found.location, found.inputs_equal) == (
        "aten::index_add",
        "0.scatter",
        "train.py:7",
        True,
    )
    assert found.origin is not None
    assert "the op itself is nondeterministic" in found.origin
    assert "deterministic(seed, strict=True)" in found.origin


def test_the_divergence_is_a_frozen_dataclass() -> None:
    found = Divergence(0, "aten::add", "forward", None, None, "outputs differ", True, None, {})
    with pytest.raises(AttributeError):
        found.op = "aten::mul"  # type: ignore[misc]
    assert found.runs == (1, 2)


# -- digests ---------------------------------------------------------------------------


def one_ulp_up(tensor: Any) -> Any:
    changed = tensor.clone()
    flat = changed.view(-1)
    flat[0] = torch.nextafter(flat[0], torch.tensor(float("inf"), dtype=tensor.dtype))
    return changed


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_a_one_ulp_difference_changes_the_digest(dtype: str) -> None:
    tensor = torch.linspace(0.5, 1.5, 7, dtype=getattr(torch, dtype))
    changed = one_ulp_up(tensor)
    assert not torch.equal(tensor, changed)
    assert tensor_digest(tensor, torch) != tensor_digest(changed, torch)
    assert tensor_digest(tensor, torch) == tensor_digest(tensor.clone(), torch)
    assert device_digest(tensor, torch) != device_digest(changed, torch)
    assert device_digest(tensor, torch) == device_digest(tensor.clone(), torch)


def test_digests_cover_every_kind_of_tensor() -> None:
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    cases = {
        "0-dim": (torch.tensor(1.0), torch.tensor(2.0)),
        "bool": (torch.tensor([True, False]), torch.tensor([True, True])),
        "complex": (torch.tensor([1 + 2j]), torch.tensor([1 + 3j])),
        "int8": (torch.tensor([1], dtype=torch.int8), torch.tensor([2], dtype=torch.int8)),
        "-0.0": (torch.tensor([0.0]), torch.tensor([-0.0])),
        "dtype": (torch.zeros(2, dtype=torch.float32), torch.zeros(1, dtype=torch.float64)),
        "shape": (torch.zeros(2, 3), torch.zeros(3, 2)),
        "sparse": (base.to_sparse(), (base + 1).to_sparse()),
        "conj": (torch.tensor([1 + 2j]).conj(), torch.tensor([1 + 2j])),
    }
    for name, (a, b) in cases.items():
        assert tensor_digest(a, torch) != tensor_digest(b, torch), name
        assert tensor_digest(a, torch) == tensor_digest(a.clone(), torch), name
    # A non-contiguous view has the digest of its value, whatever the memory layout.
    assert tensor_digest(base.t(), torch) == tensor_digest(base.t().contiguous(), torch)
    assert tensor_digest(base[:, 1], torch) == tensor_digest(torch.tensor([1.0, 5, 9]), torch)
    assert tensor_digest(torch.tensor([1 + 2j]).conj(), torch) == tensor_digest(
        torch.tensor([1 - 2j]), torch
    )
    meta = torch.empty(3, device="meta")
    assert tensor_digest(meta, torch) == tensor_digest(torch.empty(3, device="meta"), torch)
    bits = torch.arange(7, dtype=torch.uint8)  # 7 bytes: not whole 64-bit words
    assert device_digest(bits, torch) != device_digest(bits.flip(0), torch)


def test_an_in_place_change_is_seen_as_a_new_version(tmp_path: Path) -> None:
    def body() -> None:
        x = torch.ones(3)
        y = x[1:]
        x.mul_(2)  # changes y's memory through x
        y + 1

    path = traced(tmp_path, "run", body)
    ops = [op for op in TraceReader(path) if hasattr(op, "inputs")]
    add = ops[-1]
    assert add.name == "aten::add"
    view = torch.full((2,), 2.0)
    assert add.inputs[0].digest == tensor_digest(view, torch)


# -- the file ----------------------------------------------------------------------------


def test_records_are_streamed_to_disk_in_bounded_memory(tmp_path: Path) -> None:
    x = torch.zeros(4)

    def loop(count: int) -> Callable[[], object]:
        def body() -> None:
            y = x
            for _ in range(count):
                y = y + 1  # a new tensor each time

        return body

    peaks = []
    for count in (2_000, 20_000):
        tracemalloc.start()
        try:
            path = traced(tmp_path, f"loop{count}", loop(count))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert summary(path).ops == count
    # Ten times the ops, not ten times the memory: the buffer (1 MiB) bounds it.
    assert peaks[1] < peaks[0] + (2 << 20), peaks
    assert (tmp_path / "loop20000.trace").stat().st_size > 1 << 20  # past one buffer

    tracemalloc.start()
    try:
        found = compare_traces(tmp_path / "loop20000.trace", tmp_path / "loop20000.trace")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found is None
    assert peak < 1 << 20, peak


def test_reading_a_trace_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = traced(tmp_path, "run", lambda: torch.ones(3) * 2)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle used")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    assert compare_traces(path, path) is None
    assert summary(path).ops == 2

    foreign = tmp_path / "payload.trace"
    foreign.write_bytes(pickle.dumps({"ops": []}))
    with pytest.raises(ValueError, match=f"{re.escape(str(foreign))} is not a seedscope trace"):
        compare_traces(foreign, path)


def test_a_truncated_trace_is_refused_with_its_name(tmp_path: Path) -> None:
    whole = traced(tmp_path, "whole", lambda: (torch.ones(3) * 2).sum()).read_bytes()
    cut = tmp_path / "cut.trace"
    for size in range(1, len(whole)):
        cut.write_bytes(whole[:size])
        with pytest.raises(ValueError, match=f"{re.escape(str(cut))} is truncated") as caught:
            compare_traces(cut, tmp_path / "whole.trace")
        assert "pickle" not in str(caught.value)
        with pytest.raises(ValueError, match=f"{re.escape(str(cut))} is truncated"):
            summary(cut)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is not a seedscope trace (it is empty"),
        (b"step,loss\n1,0.5\n", "is not a seedscope trace (it starts with b'step,loss"),
        (b"PK\x03\x04 a torch.save file", "is not a seedscope trace"),
    ],
)
def test_a_foreign_file_is_refused_with_a_clear_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    good = traced(tmp_path, "good", lambda: torch.ones(1))
    foreign = tmp_path / "foreign.bin"
    foreign.write_bytes(content)
    with pytest.raises(ValueError, match=f"^{re.escape(f'{foreign} {message}')}"):
        compare_traces(good, foreign)


def test_a_trace_of_another_format_version_is_refused(tmp_path: Path) -> None:
    path = traced(tmp_path, "run", lambda: torch.ones(1))
    data = bytearray(path.read_bytes())
    data[16:18] = (VERSION + 1).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"format version {VERSION + 1}; this seedscope reads"):
        compare_traces(path, path)


def test_an_unwritable_path_fails_before_anything_is_traced(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "run.trace"
    with pytest.raises(OSError, match=f"cannot write the trace {re.escape(str(missing))}"):
        trace(missing).__enter__()
    assert torch._C._len_torch_dispatch_stack() == 0
    with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike, not int"):
        trace(3)  # type: ignore[arg-type]


def test_tracing_leaves_no_mode_or_hook_behind(tmp_path: Path) -> None:
    from torch.nn.modules import module

    hooks = len(module._global_forward_pre_hooks), len(module._global_forward_hooks)

    def fail() -> None:
        with trace(tmp_path / "run.trace"):
            Net()(torch.ones(3))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert torch._C._len_torch_dispatch_stack() == 0
    assert (len(module._global_forward_pre_hooks), len(module._global_forward_hooks)) == hooks
    assert summary(tmp_path / "run.trace").ops > 0
    assert sys.modules["torch"] is torch
