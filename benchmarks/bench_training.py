"""What do snapshots, checkpoint state and DataLoader worker seeding cost? Prints Markdown tables.

Three tables, each timed the way ``bench_scope.py`` times scopes (variants
interleaved round-robin in one process, the thread's CPU time per batch,
medians over the rounds, the garbage collector off while a batch runs):

1. ``capture()`` + ``restore()`` next to the same raw public calls as the core
   benchmark (``random`` / ``np.random`` / ``torch.default_generator`` state
   and the cuDNN flags, read and written back);
2. a ``state_dict()`` round trip, alone and through JSON or ``torch.save``, and
   its size, next to pickling the raw states with ``torch.save``;
3. seeding one DataLoader worker: torch's own, the ``seed_worker`` of PyTorch's
   reproducibility notes, ``seedscope.seed_worker`` and ``dataloader_seeding()``.

Run ``python benchmarks/bench_training.py`` (about 5 s) or add ``--quick`` (about 2 s).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data._utils.worker import _generate_state

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scope import loop, machine_line, run_interleaved

import seedscope
from seedscope import Snapshot, capture, isolated, seed_worker

CORE = ["python", "numpy", "torch"]


# -- 1. capture + restore -----------------------------------------------------------


def raw_get_set() -> None:
    cudnn = torch.backends.cudnn
    gen = torch.default_generator
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = gen.get_state()
    flags = cudnn.deterministic, cudnn.benchmark
    random.setstate(py_state)
    np.random.set_state(np_state)
    gen.set_state(torch_state)
    cudnn.deterministic, cudnn.benchmark = flags


def capture_restore() -> None:
    capture().restore()


def capture_restore_core() -> None:
    capture(sources=CORE).restore()


def isolated_block() -> None:
    with isolated():
        pass


# -- 2. state_dict round trips --------------------------------------------------------------


def state_dict_round_trip() -> None:
    Snapshot.from_state_dict(capture().state_dict())


def json_round_trip() -> None:
    Snapshot.from_state_dict(json.loads(json.dumps(capture().state_dict())))


def _torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def torch_save_round_trip() -> None:
    data = _torch_bytes(capture().state_dict())
    Snapshot.from_state_dict(torch.load(io.BytesIO(data), weights_only=True))


def _raw_states() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def raw_torch_save_round_trip() -> None:
    # What checkpoints often hold: the states as they come, which need
    # weights_only=False (arbitrary pickle) to load, and are not checked.
    torch.load(io.BytesIO(_torch_bytes(_raw_states())), weights_only=False)


# -- 3. worker seeding ----------------------------------------------------------------------------


def torch_own_worker_seeding() -> None:
    # What torch's worker loop does for each worker before any worker_init_fn.
    base_seed, worker_id = 123456789, 3
    seed = base_seed + worker_id
    random.seed(seed)
    torch.manual_seed(seed)
    np.random.seed(_generate_state(base_seed, worker_id))


def docs_seed_worker() -> None:
    # From PyTorch's reproducibility notes.
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about 2 s)")
    args = parser.parse_args(argv)
    rounds, batch_s = (60, 0.0005) if args.quick else (300, 0.001)

    seeding = seedscope.dataloader_seeding(1234, rank=0)
    seeding.set_epoch(0)
    init = seeding.worker_init_fn

    def helper_worker_seeding() -> None:
        init._seed(3)  # the seeding part of worker_init_fn(3); epoch set

    gc.collect()
    gc.freeze()
    saved = capture()
    try:
        tables = [
            (
                "capture() + restore()",
                "median µs per capture + restore",
                {
                    "(1) public calls: `random` + `np.random` + `torch.default_generator` "
                    "get_state/set_state, cuDNN flags": loop(raw_get_set),
                    "(2) `capture().restore()` (every source)": loop(capture_restore),
                    "(3) `capture(sources=['python', 'numpy', 'torch']).restore()`": loop(
                        capture_restore_core
                    ),
                    "(4) `with isolated(): pass` (for comparison)": loop(isolated_block),
                },
            ),
            (
                "state_dict() round trip",
                "median µs per round trip",
                {
                    "(5) `Snapshot.from_state_dict(capture().state_dict())`": loop(
                        state_dict_round_trip
                    ),
                    "(6) the same through `json.dumps` / `json.loads`": loop(json_round_trip),
                    "(7) the same through `torch.save` / `torch.load(weights_only=True)`": loop(
                        torch_save_round_trip
                    ),
                    "(8) raw states through `torch.save` / `torch.load(weights_only=False)`": loop(
                        raw_torch_save_round_trip
                    ),
                },
            ),
            (
                "seeding one DataLoader worker",
                "median µs per worker",
                {
                    "(9) torch's own seeding of a worker (before any `worker_init_fn`)": loop(
                        torch_own_worker_seeding
                    ),
                    "(10) `seed_worker` from PyTorch's reproducibility notes": loop(
                        docs_seed_worker
                    ),
                    "(11) `seedscope.seed_worker`": loop(lambda: seed_worker(3)),
                    "(12) `dataloader_seeding()`'s `worker_init_fn` (its seeding)": loop(
                        helper_worker_seeding
                    ),
                },
            ),
        ]
        results = [
            (title, unit, run_interleaved(benches, rounds, batch_s))
            for title, unit, benches in tables
        ]
    finally:
        saved.restore()

    state = capture().state_dict()
    sizes = {
        "`state_dict()` as JSON": len(json.dumps(state).encode()),
        "`state_dict()` through `torch.save`": len(_torch_bytes(state)),
        "raw states through `torch.save` (pickle)": len(_torch_bytes(_raw_states())),
    }

    print(machine_line())
    print(f"\n{rounds} rounds, thread CPU time, medians.\n")
    for title, unit, medians in results:
        first = next(iter(medians.values()))
        print(f"### {title}\n")
        print(f"| variant | {unit} | ratio to first |")
        print("|---|---:|---:|")
        for label, value in medians.items():
            print(f"| {label} | {value:.2f} | {value / first:.2f} |")
        print()
    print("### size of the state\n")
    print("| form | bytes |")
    print("|---|---:|")
    for label, size in sizes.items():
        print(f"| {label} | {size:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
