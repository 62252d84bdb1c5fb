"""Snapshots restored where the accelerators differ: the devices both have, with one warning.

Devices are fake CUDA-like modules (``_fake_devices``) behind seedscope's
accelerator backend, started or not, with as many devices as each case needs;
the real CUDA cases are in ``test_snapshot_cuda.py`` (run by ``.ci/gpu-check``).
"""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _fake_devices import FakeCuda

from seedscope import DeviceMismatchWarning, Snapshot, capture
from seedscope.sources import accelerators

Draws = list[tuple[float, float, float]]


def draws() -> Draws:
    return [(random.random(), float(np.random.rand()), torch.rand(()).item()) for _ in range(3)]


def plain(state: dict[str, Any]) -> Any:
    return json.loads(json.dumps(state))


class Machine:
    """This process's accelerators replaced by ``devices`` fake CUDA devices."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self.module: FakeCuda | None = None

    def with_devices(self, devices: int, *, started: bool = True, name: str = "cuda") -> FakeCuda:
        module = FakeCuda(devices, started=started, name=name)
        for index, generator in enumerate(module.default_generators):
            generator.manual_seed(100 + index)
        backend = accelerators._LazyBackend(module)
        self._monkeypatch.setattr(accelerators, "_backends", lambda: (backend,))
        self.module = module
        return module

    def without_devices(self) -> None:
        self._monkeypatch.setattr(accelerators, "_backends", lambda: ())
        self.module = None

    def states(self) -> list[tuple[int, int]]:
        assert self.module is not None
        return [(g.seed_value, g.offset) for g in self.module.default_generators]


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Machine:
    return Machine(monkeypatch)


def saved_on(machine: Machine, devices: int) -> tuple[Any, list[tuple[int, int]]]:
    """A state dict taken with ``devices`` started fake CUDA devices, each drawn from."""
    module = machine.with_devices(devices)
    for generator in module.default_generators:
        generator.draw()
    return plain(capture().state_dict()), machine.states()


def load(state: Any, message: str | None, **kwargs: Any) -> Snapshot:
    """``from_state_dict``, which warns once matching ``message`` (or not at all for None)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        snapshot = Snapshot.from_state_dict(state, **kwargs)
    if message is None:
        assert caught == []
    else:
        assert [w.category for w in caught] == [DeviceMismatchWarning]
        assert str(caught[0].message) == message
    return snapshot


TAIL = (
    ": restoring it restores the devices both have, and the others keep their state "
    "(same_devices=True refuses such a snapshot)"
)


# -- another number of devices ---------------------------------------------------------------


def test_a_snapshot_from_more_devices_restores_those_here(machine: Machine) -> None:
    state, saved = saved_on(machine, 3)
    machine.with_devices(2)
    snapshot = load(
        state, "the snapshot was saved on other devices (3 cuda device(s) saved, 2 here)" + TAIL
    )
    snapshot.restore()
    assert machine.states() == saved[:2]


def test_a_snapshot_from_fewer_devices_restores_the_first_and_leaves_the_rest(
    machine: Machine,
) -> None:
    state, saved = saved_on(machine, 1)
    machine.with_devices(3)
    untouched = machine.states()[1:]
    snapshot = load(
        state, "the snapshot was saved on other devices (1 cuda device(s) saved, 3 here)" + TAIL
    )
    snapshot.restore()
    assert machine.states() == [*saved, *untouched]


@pytest.mark.parametrize("saved_devices", [1, 3])
def test_devices_not_started_get_the_overlap_when_they_start(
    machine: Machine, saved_devices: int
) -> None:
    state, saved = saved_on(machine, saved_devices)
    module = machine.with_devices(2, started=False)
    with pytest.warns(DeviceMismatchWarning, match=rf"\({saved_devices} cuda device\(s\) saved"):
        snapshot = Snapshot.from_state_dict(state)
    snapshot.restore()
    assert not module.is_initialized()
    module.start()
    restored = machine.states()
    assert restored[: min(saved_devices, 2)] == saved[:2]


def test_a_snapshot_without_devices_leaves_the_devices_here(machine: Machine) -> None:
    machine.without_devices()
    state = plain(capture().state_dict())
    assert state["sources"]["accelerators"] == {}
    machine.with_devices(2)
    before = machine.states()
    snapshot = load(
        state, "the snapshot was saved on other devices (0 cuda device(s) saved, 2 here)" + TAIL
    )
    snapshot.restore()
    assert machine.states() == before


def test_states_not_saved_because_the_devices_had_not_started_need_no_warning(
    machine: Machine,
) -> None:
    machine.with_devices(4, started=False)
    state = plain(capture().state_dict())
    assert state["sources"]["accelerators"] == {"cuda": {"devices": 4, "states": None}}
    machine.with_devices(2)
    load(state, None).restore()


def test_same_devices_refuses_another_number_of_devices(machine: Machine) -> None:
    state, _ = saved_on(machine, 3)
    machine.with_devices(2)
    with pytest.raises(
        ValueError,
        match=r"part 'accelerators': the snapshot was taken with 3 cuda device\(s\) and this "
        r"process has 2: with same_devices=True, .* \(without it, the devices both have are "
        r"restored\)",
    ):
        Snapshot.from_state_dict(state, same_devices=True)
    load(state, None, same_devices=True, sources=["python", "numpy", "torch"])  # the rest loads


def test_same_devices_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match=r"same_devices must be True or False, not 'yes'"):
        Snapshot.from_state_dict(capture().state_dict(), same_devices="yes")  # type: ignore[arg-type]


# -- no accelerators part -----------------------------------------------------------------------


def test_a_snapshot_without_an_accelerators_part_restores_the_rest(machine: Machine) -> None:
    module = machine.with_devices(2)
    state = plain(capture().state_dict())
    expected = draws()
    del state["sources"]["accelerators"]
    for generator in module.default_generators:
        generator.draw()
    before = machine.states()
    snapshot = load(
        state, "the snapshot has no accelerators part (0 cuda device(s) saved, 2 here)" + TAIL
    )
    snapshot.restore()
    assert draws() == expected
    assert machine.states() == before
    with pytest.raises(ValueError, match=r"snapshot part 'accelerators' is missing"):
        Snapshot.from_state_dict(state, same_devices=True)


def test_without_an_accelerators_part_nothing_is_lost_where_there_are_no_devices(
    machine: Machine,
) -> None:
    machine.without_devices()
    state = plain(capture().state_dict())
    del state["sources"]["accelerators"]
    load(state, None).restore()


# -- saved on a CUDA machine, loaded where there is none ------------------------------------------


def test_a_snapshot_from_a_cuda_machine_resumes_cpu_streams_bit_identically(
    machine: Machine, tmp_path: Path
) -> None:
    # The file a machine with 2 CUDA devices writes: a real state dict of this
    # process, with the device part of one taken with 2 started CUDA devices.
    with_cuda, _ = saved_on(machine, 2)
    machine.without_devices()
    state = plain(capture().state_dict())
    state["sources"]["accelerators"] = with_cuda["sources"]["accelerators"]
    assert list(state["sources"]["accelerators"]) == ["cuda"]
    expected = draws()
    path = tmp_path / "checkpoint.pt"
    torch.save({"seedscope": state}, path)

    loaded = torch.load(path, weights_only=True)["seedscope"]
    snapshot = load(
        loaded, "the snapshot was saved on other devices (2 cuda device(s) saved, 0 here)" + TAIL
    )
    snapshot.restore()
    assert draws() == expected


def test_device_states_for_devices_not_here_are_still_checked(machine: Machine) -> None:
    state, _ = saved_on(machine, 2)
    machine.without_devices()
    state["sources"]["accelerators"]["cuda"]["states"][1] = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
    with pytest.raises(ValueError, match=r"part 'accelerators'.*'cuda' 'states'\[1\]"):
        Snapshot.from_state_dict(state)
