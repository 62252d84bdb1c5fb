"""Snapshots of CUDA generators: restored on started devices, queued on devices not started.

Skipped without a CUDA device (``.ci/gpu-check`` runs them). Each case runs in
fresh interpreters, since whether CUDA has started is process-wide.
"""

from __future__ import annotations

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
