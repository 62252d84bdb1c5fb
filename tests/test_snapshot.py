"""``capture()``, ``Snapshot.restore()``, and snapshots as plain data in checkpoints."""

from __future__ import annotations

import base64
import copy
import io
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from seedscope import RestoreError, Snapshot, Source, capture, deterministic
from seedscope.sources import BUILTIN_NAMES, accelerators

HERE = Path(__file__).parent


def draw() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), torch.rand(()).item()


def json_round_trip(state: dict[str, Any]) -> Any:
    return json.loads(json.dumps(state))


def torch_round_trip(state: dict[str, Any]) -> Any:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# -- capture and restore ---------------------------------------------------------


def test_capture_changes_nothing(snapshot: Callable[[], Any]) -> None:
    before = snapshot()
    capture()
    assert snapshot() == before


def test_restore_puts_back_every_stream_and_setting(snapshot: Callable[[], Any]) -> None:
    random.gauss(0, 1)  # a cached gaussian in random's state
    np.random.randn()
    saved = capture()
    before = snapshot()
    first = draw()
    torch.backends.cudnn.benchmark = not torch.backends.cudnn.benchmark
    os.environ["PYTHONHASHSEED"] = "123"
    saved.restore()
    assert snapshot() == before
    assert draw() == first


def test_a_snapshot_restores_any_number_of_times() -> None:
    saved = capture()
    first = draw()
    for _ in range(3):
        saved.restore()
        assert draw() == first


def test_a_snapshot_taken_in_a_scope_holds_the_scope_streams() -> None:
    with deterministic(5):
        draw()
        saved = capture()
        expected = draw()
    saved.restore()  # outside the scope: the streams continue where the scope was
    assert draw() == expected


def test_sources_narrow_a_snapshot(snapshot: Callable[[], Any]) -> None:
    saved = capture(sources=["python"])
    assert saved.sources == ("python",)
    first_python = random.random()
    numpy_next = np.random.rand()
    np.random.seed(0)
    saved.restore()
    assert random.random() == first_python
    assert np.random.rand() != numpy_next  # numpy was not in the snapshot
    assert set(saved.state_dict()["sources"]) == {"python"}


def test_repr_names_the_parts() -> None:
    assert repr(capture(sources=["python", "torch"])) == "<Snapshot of python, torch>"
    saved = capture(sources=[], generators=[random.Random(1)])
    assert repr(saved) == "<Snapshot of nothing and 1 generator(s)>"


# -- plain data --------------------------------------------------------------------


def test_state_dict_is_versioned_plain_data() -> None:
    state = capture().state_dict()
    assert state["format"] == "seedscope.snapshot"
    assert state["version"] == 1
    assert list(state["sources"]) == list(BUILTIN_NAMES)
    assert state["generators"] == []
    assert json_round_trip(state) == state


@pytest.mark.parametrize("round_trip", [json_round_trip, torch_round_trip], ids=["json", "torch"])
def test_a_state_dict_round_trip_restores_the_same_streams(
    round_trip: Callable[[dict[str, Any]], Any], snapshot: Callable[[], Any]
) -> None:
    random.gauss(0, 1)
    np.random.randn()
    state = capture().state_dict()
    before = snapshot()
    expected = [draw() for _ in range(3)]
    loaded = Snapshot.from_state_dict(round_trip(state))
    assert loaded.state_dict() == state
    loaded.restore()
    assert snapshot() == before
    assert [draw() for _ in range(3)] == expected


def test_state_dict_is_usable_inside_a_training_checkpoint(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 2)
    checkpoint = {"model": model.state_dict(), "seedscope": capture().state_dict()}
    torch.save(checkpoint, tmp_path / "checkpoint.pt")
    expected = draw()
    loaded = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    Snapshot.from_state_dict(loaded["seedscope"]).restore()
    assert draw() == expected


def test_flags_and_environment_round_trip(snapshot: Callable[[], Any]) -> None:
    torch.backends.cudnn.benchmark = True
    os.environ["PYTHONHASHSEED"] = "77"
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    os.environ["SEEDSCOPE_SEED"] = "5"
    state = json_round_trip(capture().state_dict())
    assert state["sources"]["environ"] == {
        "PYTHONHASHSEED": "77",
        "CUBLAS_WORKSPACE_CONFIG": None,
        "SEEDSCOPE_SEED": "5",
    }
    before = snapshot()
    with deterministic(0, strict=True):
        pass
    torch.backends.cudnn.benchmark = False
    os.environ["PYTHONHASHSEED"] = "1"
    del os.environ["SEEDSCOPE_SEED"]
    Snapshot.from_state_dict(state).restore()
    assert snapshot() == before


# -- validation: everything is checked before anything changes -----------------------


def _valid() -> dict[str, Any]:
    return json_round_trip(capture().state_dict())  # type: ignore[no-any-return]


def _set(state: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    target = state
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return state


_DELETE = object()

CORRUPTIONS = [
    # (what is changed, new value, pattern of the message)
    (("format",), "something.else", r"not a seedscope snapshot"),
    (("version",), 2, r"version 2 is not supported.*newer seedscope"),
    (("version",), "1", r"version '1' is not supported"),
    (("version",), _DELETE, r"version None is not supported"),
    (("generators",), _DELETE, r"missing 'generators'"),
    (("extra",), 1, r"unexpected 'extra'"),
    (("sources",), [], r"part 'sources' must be a dict"),
    (("sources", "torch"), _DELETE, r"part 'torch' is missing"),
    (("sources", "mystery"), {}, r"unexpected part 'mystery'"),
    (("sources", "python", "key"), "not base64!", r"part 'python'.*'key' is not valid base64"),
    (("sources", "python", "key"), "AAAA", r"part 'python'.*'key' must be 2496 bytes, got 3"),
    (("sources", "python", "pos"), 625, r"part 'python'.*'pos' must be in \[0, 624\]"),
    (("sources", "python", "version"), 2, r"part 'python'.*'version' must be in \[3, 3\]"),
    (("sources", "python", "gauss_next"), "x", r"part 'python'.*'gauss_next' must be a finite"),
    (("sources", "python", "extra"), 1, r"part 'python'.*unexpected 'extra'"),
    (("sources", "numpy", "pos"), -1, r"part 'numpy'.*'pos' must be in"),
    (("sources", "numpy", "has_gauss"), True, r"part 'numpy'.*'has_gauss' must be an int"),
    (("sources", "numpy", "bit_generator"), "PCG64", r"part 'numpy'.*must be 'MT19937'"),
    (("sources", "numpy", "gauss"), _DELETE, r"part 'numpy'.*missing 'gauss'"),
    (("sources", "torch", "state"), "AAAA", r"part 'torch'.*not a valid torch CPU generator"),
    (("sources", "torch"), "AAAA", r"part 'torch'.*must be a dict"),
    (("sources", "flags", "cudnn_benchmark"), 1, r"part 'flags'.*'cudnn_benchmark' must be"),
    (("sources", "flags", "precision"), [], r"part 'flags'.*'precision' must be a list of"),
    (("sources", "environ", "PYTHONHASHSEED"), 1, r"part 'environ'.*must be a string"),
    (("sources", "accelerators"), [], r"part 'accelerators'.*must be a dict"),
    (("generators",), {}, r"part 'generators' must be a list"),
    (("generators",), [{}], r"part 'generators' holds 1 generator state\(s\) but 0"),
]


@pytest.mark.parametrize(("path", "value", "message"), CORRUPTIONS)
def test_a_corrupt_state_dict_is_refused_before_anything_changes(
    path: tuple[Any, ...], value: Any, message: str, snapshot: Callable[[], Any]
) -> None:
    state = _set(_valid(), path, value)
    draw()  # the streams move on from the snapshot, so a restore would show
    before = snapshot()
    with pytest.raises(ValueError, match=message):
        Snapshot.from_state_dict(state).restore()
    assert snapshot() == before


def test_a_corrupt_torch_state_of_the_right_size_is_refused() -> None:
    state = _valid()
    state["sources"]["torch"]["state"] = base64.b64encode(bytes(5056)).decode()  # no mt19937
    with pytest.raises(ValueError, match=r"part 'torch'.*Invalid mt19937 state"):
        Snapshot.from_state_dict(state)


def test_a_wrong_precision_setting_is_refused() -> None:
    state = _valid()
    state["sources"]["flags"]["precision"][-1] = "fastest"
    with pytest.raises(ValueError, match=r"part 'flags'.*'precision'\[\d+\] is not a valid"):
        Snapshot.from_state_dict(state)


def test_not_a_dict_is_refused() -> None:
    with pytest.raises(ValueError, match="must be a dict"):
        Snapshot.from_state_dict([])  # type: ignore[arg-type]


def test_sources_reads_only_the_parts_named() -> None:
    state = _valid()
    del state["sources"]["flags"]
    state["sources"]["accelerators"] = "not even a dict"  # not read
    expected = random.random()
    loaded = Snapshot.from_state_dict(state, sources=["python", "numpy"])
    assert loaded.sources == ("python", "numpy")
    random.random()
    loaded.restore()
    assert random.random() == expected
    with pytest.raises(ValueError, match="part 'environ' is missing"):
        Snapshot.from_state_dict({**state, "sources": {"python": None}}, sources=["environ"])


# -- sources whose library was not imported, and sources of your own ------------------


class Box:
    value = 0


class BoxSource(Source):
    name = "box"

    def capture(self) -> Any:
        return {"value": Box.value}

    def seed(self, seed: int) -> None:
        Box.value = seed

    def restore(self, state: Any) -> None:
        Box.value = state["value"]


class NotImported(BoxSource):
    name = "not-imported"
    module = "seedscope_test_module_never_imported"


def test_a_source_with_plain_state_needs_no_conversion() -> None:
    Box.value = 4
    state = json_round_trip(capture(sources=["python", BoxSource()]).state_dict())
    assert state["sources"]["box"] == {"value": 4}
    Box.value = 9
    Snapshot.from_state_dict(state, sources=["python", BoxSource()]).restore()
    assert Box.value == 4


def test_a_source_whose_state_is_not_plain_data_cannot_be_saved() -> None:
    class TupleSource(BoxSource):
        name = "tuples"

        def capture(self) -> Any:
            return (Box.value,)

    with pytest.raises(TypeError, match=r"part 'tuples'.*implement dump_state and load_state"):
        capture(sources=[TupleSource()]).state_dict()


def test_a_library_that_was_not_imported_is_left_alone() -> None:
    source = NotImported()
    saved = capture(sources=["python", source])
    state = saved.state_dict()
    assert state["sources"]["not-imported"] is None
    Box.value = 3
    Snapshot.from_state_dict(state, sources=["python", source]).restore()
    saved.restore()
    assert Box.value == 3


def test_restore_puts_back_the_other_sources_when_one_fails() -> None:
    class Failing(BoxSource):
        name = "failing"

        def restore(self, state: Any) -> None:
            raise OSError("gone")

    saved = capture(sources=["python", Failing()])
    expected = random.random()
    with pytest.raises(RestoreError) as info:
        saved.restore()
    assert [(name, type(exc)) for name, exc in info.value.errors] == [("failing", OSError)]
    assert random.random() == expected


# -- user-owned generators ---------------------------------------------------------


def _generators() -> list[Any]:
    return [
        torch.Generator().manual_seed(1),
        np.random.default_rng(2),
        np.random.Generator(np.random.Philox(3)),
        np.random.Generator(np.random.MT19937(4)),
        np.random.RandomState(5),
        random.Random(6),
    ]


def _draw_from(generators: list[Any]) -> list[float]:
    torch_gen, pcg, philox, mt, legacy, py = generators
    return [
        torch.rand((), generator=torch_gen).item(),
        float(pcg.random()),
        float(philox.random()),
        float(mt.random()),
        float(legacy.rand()),
        py.random(),
    ]


@pytest.mark.parametrize("round_trip", [json_round_trip, torch_round_trip], ids=["json", "torch"])
def test_generators_are_saved_and_loaded(round_trip: Callable[[dict[str, Any]], Any]) -> None:
    generators = _generators()
    _draw_from(generators)
    state = round_trip(capture(sources=[], generators=generators).state_dict())
    expected = _draw_from(generators)
    loaded = Snapshot.from_state_dict(state, sources=[], generators=generators)
    assert loaded.generators == tuple(generators)
    loaded.restore()
    assert _draw_from(generators) == expected
    # into fresh objects of the same kinds, as a resumed run would make them
    fresh = _generators()
    Snapshot.from_state_dict(state, sources=[], generators=fresh).restore()
    assert _draw_from(fresh) == expected


def test_generators_must_match_in_number_and_kind() -> None:
    state = capture(sources=[], generators=[random.Random(1)]).state_dict()
    with pytest.raises(ValueError, match=r"holds 1 generator state\(s\) but 0 generator"):
        Snapshot.from_state_dict(state, sources=[])
    with pytest.raises(ValueError, match=r"part 'generators\[0\]'.*a random but the generator"):
        Snapshot.from_state_dict(state, sources=[], generators=[np.random.default_rng()])
    state = capture(sources=[], generators=[np.random.default_rng(1)]).state_dict()
    with pytest.raises(ValueError, match=r"'generators\[0\]'.*not the state of a Philox"):
        Snapshot.from_state_dict(
            state, sources=[], generators=[np.random.Generator(np.random.Philox())]
        )
    bad = copy.deepcopy(state)
    bad["generators"][0]["state"]["state"]["state"] = "not an int"
    with pytest.raises(ValueError, match=r"'generators\[0\]'"):
        Snapshot.from_state_dict(bad, sources=[], generators=[np.random.default_rng()])


# -- accelerators (other numbers of devices: test_snapshot_devices.py) ------------------------


def test_same_devices_refuses_a_snapshot_from_another_number_of_devices() -> None:
    state = _valid()
    state["sources"]["accelerators"] = {"cuda": {"devices": 2, "states": None}}
    cuda_here = sum(1 for backend in accelerators._backends() if backend.name == "cuda")
    count = torch.cuda.device_count() if cuda_here else 0
    with pytest.raises(
        ValueError,
        match=rf"part 'accelerators'.*taken with 2 cuda device\(s\) and this process has {count}"
        r": with same_devices=True",
    ):
        Snapshot.from_state_dict(state, same_devices=True)
    others = [name for name in BUILTIN_NAMES if name != "accelerators"]
    Snapshot.from_state_dict(state, sources=others, same_devices=True)


class FakeLazyModule:
    """A CUDA-like module: per-device generators that exist only once it starts."""

    def __init__(self, devices: int) -> None:
        self._devices = devices
        self._started = False
        self.default_generators: tuple[torch.Generator, ...] = ()
        self._lazy_seed_tracker = torch.cuda._LazySeedTracker()  # type: ignore[attr-defined]
        self.__name__ = "torch.fakecuda"

    def is_initialized(self) -> bool:
        return self._started

    def device_count(self) -> int:
        return self._devices

    def start(self) -> None:
        self._started = True
        self.default_generators = tuple(torch.Generator() for _ in range(self._devices))
        for generator in self.default_generators:
            generator.seed()
        for call in self._lazy_seed_tracker.get_calls():
            if call is not None:
                call[0]()


def test_lazy_backend_states_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    module = FakeLazyModule(2)
    module.start()
    backend = accelerators._LazyBackend(module)
    monkeypatch.setattr(accelerators, "_backends", lambda: (backend,))
    state = _valid()
    assert state["sources"]["accelerators"]["fakecuda"]["devices"] == 2
    expected = [torch.rand((), generator=g).item() for g in module.default_generators]
    Snapshot.from_state_dict(state).restore()
    assert [torch.rand((), generator=g).item() for g in module.default_generators] == expected


def test_lazy_backend_states_are_set_when_the_device_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = FakeLazyModule(2)
    started.start()
    monkeypatch.setattr(accelerators, "_backends", lambda: (accelerators._LazyBackend(started),))
    state = _valid()
    expected = [torch.rand((), generator=g).item() for g in started.default_generators]
    # a fresh process whose device has not started: the states wait for it
    waiting = FakeLazyModule(2)
    monkeypatch.setattr(
        accelerators, "_PHILOX_STATE_SIZE", len(started.default_generators[0].get_state())
    )
    monkeypatch.setattr(accelerators, "_backends", lambda: (accelerators._LazyBackend(waiting),))
    Snapshot.from_state_dict(state).restore()
    assert not waiting.is_initialized()
    waiting.start()
    assert [torch.rand((), generator=g).item() for g in waiting.default_generators] == expected


def test_a_backend_that_had_not_started_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    module = FakeLazyModule(1)
    monkeypatch.setattr(accelerators, "_backends", lambda: (accelerators._LazyBackend(module),))
    state = _valid()
    assert state["sources"]["accelerators"] == {"fakecuda": {"devices": 1, "states": None}}
    Snapshot.from_state_dict(state).restore()
    assert module._lazy_seed_tracker.get_calls() == []


def test_eager_backend_states_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    devices = [torch.Generator().manual_seed(i) for i in range(3)]
    backend = accelerators._EagerBackend(
        "fakeaccel",
        lambda: [g.get_state() for g in devices],
        lambda states: [g.set_state(s) for g, s in zip(devices, states, strict=True)],
        lambda seed: [g.manual_seed(seed) for g in devices],
        per_device=True,
    )
    monkeypatch.setattr(accelerators, "_backends", lambda: (backend,))
    state = _valid()
    expected = [torch.rand((), generator=g).item() for g in devices]
    Snapshot.from_state_dict(state).restore()
    assert [torch.rand((), generator=g).item() for g in devices] == expected
    state["sources"]["accelerators"]["fakeaccel"]["states"][1] = "AAAA"
    with pytest.raises(ValueError, match=r"part 'accelerators'.*'fakeaccel' 'states'\[1\]"):
        Snapshot.from_state_dict(state)


# -- loading into a fresh process: numpy or torch not imported yet -------------------------


def test_loading_imports_the_libraries_whose_state_it_restores(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(json.dumps(capture().state_dict()))
    expected = draw()
    code = f"""
import json, sys
import seedscope
state = json.load(open({str(tmp_path / "state.json")!r}))
seedscope.Snapshot.from_state_dict(state).restore()
import random, numpy as np, torch
print(json.dumps([random.random(), float(np.random.rand()), torch.rand(()).item()]))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert tuple(json.loads(out)) == expected


# -- acceptance: resuming a training run in a fresh process ----------------------------


def _start(mode: str, directory: Path, *workers: int) -> subprocess.Popen[str]:
    script = str(HERE / "_checkpoint_training.py")
    return subprocess.Popen(
        [sys.executable, script, mode, str(directory), *map(str, workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait(*processes: subprocess.Popen[str]) -> None:
    for process in processes:
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)  # type: ignore[no-any-return]


def _identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a
    )


def test_a_run_resumed_in_a_fresh_process_ends_with_bit_identical_weights(
    tmp_path: Path,
) -> None:
    # One run trains epoch 0, checkpoints, and trains epoch 1, once with the
    # augmentation in this process and once in 2 DataLoader workers. Then fresh
    # processes (in parallel) load each checkpoint and train epoch 1 again, and
    # one does so without restoring seedscope's state: the control.
    _wait(_start("full", tmp_path, 0, 2))
    _wait(
        _start("resume", tmp_path, 0),
        _start("resume", tmp_path, 2),
        _start("control", tmp_path, 0),
    )
    for workers in (0, 2):
        full = _weights(tmp_path / f"full-{workers}.pt")
        checkpoint = torch.load(tmp_path / f"checkpoint-{workers}.pt", weights_only=True)
        assert not _identical(full, checkpoint["model"])  # epoch 1 did train
        assert _identical(full, _weights(tmp_path / f"resume-{workers}.pt")), workers
    assert not _identical(_weights(tmp_path / "full-0.pt"), _weights(tmp_path / "control-0.pt"))


def test_capture_imports_numpy_random_when_numpy_is_imported_without_it() -> None:
    # numpy 2 imports numpy.random on first use: a snapshot taken right after
    # `import numpy` must still hold the generator that first use draws from.
    code = """
import sys
import numpy as np
import seedscope
assert "numpy.random" not in sys.modules, "numpy imported numpy.random eagerly"
snapshot = seedscope.capture()
first = np.random.rand()
snapshot.restore()
print(first == np.random.rand(), snapshot.state_dict()["sources"]["numpy"] is not None)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if "imported numpy.random eagerly" in out.stderr:
        pytest.skip("this numpy imports numpy.random with numpy")
    assert out.stdout.split() == ["True", "True"], out.stderr
