"""Rank-aware seeding, ``broadcast_seed``, and 2-process ``gloo`` runs on localhost."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from seedscope import broadcast_seed, derive_seed, deterministic
from seedscope._distributed import get_rank

HERE = Path(__file__).parent


# -- in one process ------------------------------------------------------------------


def test_the_rank_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    assert get_rank() == 0
    monkeypatch.setenv("RANK", "5")
    assert get_rank() == 5


@pytest.mark.parametrize("value", ["-1", "one", "1.5"])
def test_a_malformed_rank_is_refused_before_anything_changes(
    value: str, monkeypatch: pytest.MonkeyPatch, snapshot: Any
) -> None:
    monkeypatch.setenv("RANK", value)
    before = snapshot()
    with pytest.raises(ValueError, match="environment variable RANK must be a process rank"):
        deterministic(1, per_rank=True).__enter__()
    assert snapshot() == before


RANK_TEXT = "a process rank (an int >= 0) written with ASCII digits 0-9"


@pytest.mark.parametrize("value", [" 5", "5 ", "+5", "-0", "5_000", "\u0663", "\uff15"], ids=repr)
def test_a_rank_not_written_in_ascii_digits_alone_is_refused_before_anything_changes(
    value: str, monkeypatch: pytest.MonkeyPatch, snapshot: Any
) -> None:
    monkeypatch.setenv("RANK", value)
    message = f"environment variable RANK must be {RANK_TEXT}, got {value!r}"
    before = snapshot()
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        deterministic(1, per_rank=True).__enter__()
    assert snapshot() == before


def test_an_empty_rank_is_an_error_not_rank_0(
    monkeypatch: pytest.MonkeyPatch, snapshot: Any
) -> None:
    monkeypatch.setenv("RANK", "")
    message = f"environment variable RANK must be {RANK_TEXT}, got ''"
    before = snapshot()
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        deterministic(1, per_rank=True).__enter__()
    assert snapshot() == before


@pytest.mark.parametrize(("value", "rank"), [("0", 0), ("007", 7), ("12", 12)])
def test_a_rank_of_ascii_digits_is_read_as_decimal_leading_zeros_included(
    value: str, rank: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", value)
    assert get_rank() == rank
    with deterministic(42, per_rank=True) as active:
        assert active.seed == derive_seed(42, "rank", rank)


def test_per_rank_scopes_seed_each_rank_with_a_derived_seed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    draws = {}
    for rank in (0, 1, 0):
        monkeypatch.setenv("RANK", str(rank))
        with deterministic(42, per_rank=True) as active:
            assert active.seed == derive_seed(42, "rank", rank)
            value = random.random()
        assert draws.setdefault(rank, value) == value  # the same rank: the same stream
    assert draws[0] != draws[1]
    monkeypatch.setenv("SEEDSCOPE_SEED", "42")
    with deterministic(per_rank=True) as active:
        assert active.seed == derive_seed(42, "rank", 0)


def test_per_rank_is_shown_and_checked() -> None:
    assert repr(deterministic(3, per_rank=True)) == "deterministic(3, per_rank=True)"
    assert deterministic(3, per_rank=True).per_rank
    with pytest.raises(TypeError, match="per_rank must be True or False"):
        deterministic(3, per_rank=1)  # type: ignore[arg-type]


def test_broadcast_seed_outside_a_process_group() -> None:
    assert broadcast_seed(7) == 7
    fresh = broadcast_seed()
    assert 0 <= fresh <= 2**32 - 1
    with pytest.raises(ValueError, match="seed must be"):
        broadcast_seed(-1)


# -- 2 processes, gloo, localhost ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch(directory: Path) -> list[subprocess.Popen[str]]:
    directory.mkdir()
    port = _free_port()
    processes = []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        if Path("/sys/class/net/lo").exists():
            env["GLOO_SOCKET_IFNAME"] = "lo"
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "_distributed_run.py"),
                    str(directory / f"{rank}.json"),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    return processes


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> list[list[dict[str, Any]]]:
    """Two runs of 2 ranks each (all 4 processes at once): per run, each rank's report."""
    base = tmp_path_factory.mktemp("gloo")
    runs = [_launch(base / "first"), _launch(base / "second")]
    for process in (p for run in runs for p in run):
        try:
            output, _ = process.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            for other in (p for run in runs for p in run):
                other.kill()
            raise
        assert process.returncode == 0, output
    return [
        [json.loads((base / name / f"{rank}.json").read_text()) for rank in range(2)]
        for name in ("first", "second")
    ]


def test_ranks_agree_on_the_seed_rank_0_chose(two_runs: list[list[dict[str, Any]]]) -> None:
    for run in two_runs:
        assert [report["seed"] for report in run] == [1234, 1234]
        assert run[0]["fresh"] == run[1]["fresh"]
        assert [report["rank"] for report in run] == [0, 1]
        assert [report["loader_rank"] for report in run] == [0, 1]


def test_ranks_draw_distinct_streams(two_runs: list[list[dict[str, Any]]]) -> None:
    for run in two_runs:
        assert [report["entry_seed"] for report in run] == [
            derive_seed(1234, "rank", 0),
            derive_seed(1234, "rank", 1),
        ]
        first, second = (report["streams"] for report in run)
        assert not set(first) & set(second)


def test_each_rank_draws_the_same_streams_in_both_runs(
    two_runs: list[list[dict[str, Any]]],
) -> None:
    first, second = two_runs
    for rank in range(2):
        assert first[rank]["streams"] == second[rank]["streams"]


def test_ddp_training_ends_with_bit_identical_weights(
    two_runs: list[list[dict[str, Any]]],
) -> None:
    first, second = two_runs
    assert first[0]["weights"] == first[1]["weights"]  # DDP keeps the ranks in step
    assert first[0]["weights"] == second[0]["weights"]  # and the runs are the same
    assert second[0]["weights"] == second[1]["weights"]
