"""Snapshots of CUDA generators: restored on started devices, queued on devices not started.

Then snapshots moved between machines: loaded where fewer, more or no GPUs are
visible (``CUDA_VISIBLE_DEVICES``, or device states added or removed from a
real saved state). Skipped without a CUDA device (``.ci/gpu-check`` runs
them). Each case runs in fresh interpreters, since whether CUDA has started
is process-wide.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from _subprocess import run_json

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

DRAWS = "[torch.rand(3, device=f'cuda:{i}').tolist() for i in range(torch.cuda.device_count())]"


def run(code: str) -> Any:
    prelude = "import json, torch\nfrom seedscope import Snapshot, capture\n"
    return run_json(prelude + textwrap.dedent(code))


def test_started_devices_are_restored() -> None:
    out = run(
        f"""
        torch.cuda.init()
        state = json.loads(json.dumps(capture().state_dict()))
        first = {DRAWS}
        Snapshot.from_state_dict(state).restore()
        print(json.dumps({{"same": first == {DRAWS},
                           "devices": state["sources"]["accelerators"]["cuda"]["devices"]}}))
        """
    )
    assert out == {"same": True, "devices": torch.cuda.device_count()}


def test_a_device_not_started_gets_the_states_when_it_starts(tmp_path: Path) -> None:
    saved = tmp_path / "state.json"
    expected = run(
        f"""
        torch.cuda.init()
        torch.cuda.manual_seed_all(5)
        open({str(saved)!r}, "w").write(json.dumps(capture().state_dict()))
        print(json.dumps({DRAWS}))
        """
    )
    out = run(
        f"""
        Snapshot.from_state_dict(json.load(open({str(saved)!r}))).restore()
        started = torch.cuda.is_initialized()
        print(json.dumps({{"started": started, "draws": {DRAWS}}}))
        """
    )
    assert out == {"started": False, "draws": expected}


def test_a_snapshot_taken_before_cuda_started_leaves_it_alone() -> None:
    out = run(
        f"""
        state = json.loads(json.dumps(capture().state_dict()))
        torch.cuda.manual_seed_all(9)
        Snapshot.from_state_dict(state).restore()
        draws = {DRAWS}
        torch.cuda.manual_seed_all(9)
        print(json.dumps({{"states": state["sources"]["accelerators"]["cuda"]["states"],
                           "kept": draws == {DRAWS}}}))
        """
    )
    assert out == {"states": None, "kept": True}


# -- other devices: a fresh process sees fewer, more or no GPUs ------------------------------

CPU_DRAWS = "[torch.rand(2).tolist(), __import__('random').random()]"


def run_with(code: str, visible: str | None = None) -> Any:
    """``run``, with ``CUDA_VISIBLE_DEVICES`` set to ``visible`` (None: as it is)."""
    env = dict(os.environ)
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    prelude = (
        "import json, warnings, torch\n"
        "from seedscope import DeviceMismatchWarning, Snapshot, capture\n"
        "def load(path, **kwargs):\n"
        "    with warnings.catch_warnings(record=True) as caught:\n"
        "        warnings.simplefilter('always')\n"
        "        snapshot = Snapshot.from_state_dict(json.load(open(path)), **kwargs)\n"
        "    return snapshot, [str(w.message) for w in caught\n"
        "                      if issubclass(w.category, DeviceMismatchWarning)]\n"
    )
    return run_json(prelude + textwrap.dedent(code), env=env)


def warned_once(warned: list[str], saved: int, here: int) -> bool:
    """Loading warned once, with these device counts."""
    return len(warned) == 1 and f"({saved} cuda device(s) saved, {here} here)" in warned[0]


def save_started(path: Path, visible: str | None = None) -> Any:
    """Save a snapshot with every visible device started and drawn from; return what follows."""
    return run_with(
        f"""
        torch.cuda.init()
        {DRAWS}
        open({str(path)!r}, "w").write(json.dumps(capture().state_dict()))
        print(json.dumps({{"cpu": {CPU_DRAWS}, "devices": {DRAWS}}}))
        """,
        visible,
    )


def test_a_snapshot_from_gpus_resumes_cpu_streams_where_no_gpu_is_visible(tmp_path: Path) -> None:
    saved = tmp_path / "state.json"
    expected = save_started(saved)
    out = run_with(
        f"""
        snapshot, warned = load({str(saved)!r})
        snapshot.restore()
        print(json.dumps({{"gpus": torch.cuda.device_count(), "warned": warned,
                           "cpu": {CPU_DRAWS}}}))
        """,
        visible="",
    )
    count = torch.cuda.device_count()
    assert out["gpus"] == 0
    assert out["cpu"] == expected["cpu"]
    assert warned_once(out["warned"], count, 0)


def test_a_snapshot_without_visible_gpus_leaves_the_gpus_alone(tmp_path: Path) -> None:
    saved = tmp_path / "state.json"
    expected = run_with(
        f"""
        open({str(saved)!r}, "w").write(json.dumps(capture().state_dict()))
        print(json.dumps({{"cpu": {CPU_DRAWS}}}))
        """,
        visible="",
    )
    out = run_with(
        f"""
        torch.cuda.manual_seed_all(9)
        snapshot, warned = load({str(saved)!r})
        snapshot.restore()
        cpu, devices = {CPU_DRAWS}, {DRAWS}
        torch.cuda.manual_seed_all(9)
        print(json.dumps({{"warned": warned, "cpu": cpu, "kept": devices == {DRAWS}}}))
        """
    )
    assert out["cpu"] == expected["cpu"]
    assert out["kept"] is True
    assert warned_once(out["warned"], 0, torch.cuda.device_count())


def test_more_saved_devices_than_here_restores_those_here(tmp_path: Path) -> None:
    saved = tmp_path / "state.json"
    expected = save_started(saved)
    state = json.loads(saved.read_text())
    cuda = state["sources"]["accelerators"]["cuda"]
    cuda["states"].append(cuda["states"][0])  # one device more than this machine has
    cuda["devices"] += 1
    saved.write_text(json.dumps(state))
    out = run_with(
        f"""
        torch.cuda.init()
        snapshot, warned = load({str(saved)!r})
        snapshot.restore()
        print(json.dumps({{"warned": warned, "cpu": {CPU_DRAWS}, "devices": {DRAWS}}}))
        """
    )
    count = torch.cuda.device_count()
    assert out["cpu"] == expected["cpu"]
    assert out["devices"] == expected["devices"]
    assert warned_once(out["warned"], count + 1, count)
    refused = run_with(
        f"""
        try:
            load({str(saved)!r}, same_devices=True)
        except ValueError as exc:
            print(json.dumps(str(exc)))
        """
    )
    assert f"taken with {count + 1} cuda device(s) and this process has {count}" in refused


def test_fewer_saved_devices_than_here_restores_the_first_and_leaves_the_last(
    tmp_path: Path,
) -> None:
    saved = tmp_path / "state.json"
    expected = save_started(saved)
    state = json.loads(saved.read_text())
    cuda = state["sources"]["accelerators"]["cuda"]
    cuda["states"].pop()  # saved where the last device was missing
    cuda["devices"] -= 1
    saved.write_text(json.dumps(state))
    out = run_with(
        f"""
        torch.cuda.init()
        torch.cuda.manual_seed_all(9)
        snapshot, warned = load({str(saved)!r})
        snapshot.restore()
        devices = {DRAWS}
        torch.cuda.manual_seed_all(9)
        print(json.dumps({{"warned": warned, "devices": devices, "reseeded": {DRAWS}}}))
        """
    )
    count = torch.cuda.device_count()
    assert out["devices"][:-1] == expected["devices"][:-1]
    assert out["devices"][-1] == out["reseeded"][-1]  # the last device kept its state
    assert warned_once(out["warned"], count - 1, count)
