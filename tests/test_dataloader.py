"""``dataloader_seeding`` and ``seed_worker``, with real DataLoader worker processes."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from seedscope import (
    LoaderSeeding,
    dataloader_seeding,
    derive_seed,
    deterministic,
    isolated,
    seed_worker,
)
from seedscope._data import _seed_streams, worker_seeds

# Frozen: the seeds workers get must not change between releases, or a rerun
# of an old experiment would augment its data differently.
GOLDEN = [
    (
        (0, 0, 0, 0, ""),
        (12132318897641124368, [340962246, 2408438184, 3199967532, 2287746212], 3670253569),
    ),
    (
        (42, 1, 3, 5, "train"),
        (12829116553424212420, [3509636479, 893668634, 1613512622, 3100216913], 1838846507),
    ),
    (
        (42, 70000, 1, ("iteration", 99), ""),  # ranks from 2**16 on: hashed torch seeds
        (8100559149277417869, [1131584188, 1457497515, 668617831, 388838824], 1907169237),
    ),
]

# The test machines have 2 CPUs; 4 workers are still what these tests need.
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")


@pytest.mark.parametrize(("arguments", "expected"), GOLDEN)
def test_worker_seeds_are_stable(arguments: tuple[Any, ...], expected: Any) -> None:
    assert worker_seeds(*arguments) == expected


def test_64_workers_times_64_ranks_draw_64x64x3_distinct_streams() -> None:
    seen: set[tuple[float, ...]] = set()
    torch_seeds = set()
    for rank in range(64):
        for worker in range(64):
            seeds = worker_seeds(1234, rank, worker, 0)
            torch_seeds.add(seeds[2])
            _seed_streams(*seeds)
            for stream in (
                (random.random(), random.random()),
                tuple(np.random.rand(2).tolist()),
                tuple(torch.rand(2).tolist()),
            ):
                seen.add(stream)
    assert len(torch_seeds) == 64 * 64  # torch's 32-bit seeds: distinct by construction
    assert len(seen) == 64 * 64 * 3


def test_worker_seeds_differ_by_epoch_and_name() -> None:
    seeds = {str(worker_seeds(0, 0, 0, epoch)) for epoch in range(100)}
    seeds |= {str(worker_seeds(0, 0, 0, 0, name)) for name in ("train", "val")}
    assert len(seeds) == 102


# -- real DataLoader workers ------------------------------------------------------------


class Probe(Dataset[torch.Tensor]):
    """Each item: its index, the worker that made it, and a draw from each global stream."""

    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> torch.Tensor:
        info = get_worker_info()
        return torch.tensor(
            [
                index,
                -1 if info is None else info.id,
                random.random(),
                float(np.random.rand()),
                torch.rand(()).item(),
            ],
            dtype=torch.float64,
        )


def epochs(
    *,
    persistent: bool = False,
    set_epoch: bool = True,
    shuffle: bool = False,
    workers: int = 4,
    count: int = 3,
    context: str | None = None,
    **options: Any,
) -> list[torch.Tensor]:
    """The items of ``count`` epochs of a loader seeded by ``dataloader_seeding(**options)``."""
    seeding = dataloader_seeding(**options)
    loader = DataLoader(
        Probe(),
        batch_size=2,
        shuffle=shuffle,
        num_workers=workers,
        persistent_workers=persistent,
        multiprocessing_context=context,
        **seeding,
    )
    out = []
    for epoch in range(count):
        if set_epoch:
            seeding.set_epoch(epoch)
        out.append(torch.cat(list(loader)))
    return out


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def draws(items: torch.Tensor) -> set[float]:
    return set(items[:, 2:].flatten().tolist())


def test_workers_draw_distinct_streams_the_same_in_every_run() -> None:
    with deterministic(0):
        first = epochs(count=1)
    with deterministic(0):
        second = epochs(count=1)
    assert same(first, second)
    items = first[0]
    assert sorted(set(items[:, 1].tolist())) == [0, 1, 2, 3]
    assert len(draws(items)) == 16 * 3  # no two workers or libraries share a stream
    expected = worker_seeds(0, 0, 2, 0)  # worker 2 makes items 4 and 5 (batches go round)
    assert items[4, 2].item() == random.Random(expected[0]).random()


def test_each_epoch_draws_other_numbers_reproducibly() -> None:
    with deterministic(0):
        run = epochs()
    with deterministic(0):
        assert same(run, epochs())
    assert len(draws(torch.cat(run))) == 3 * 16 * 3


def test_persistent_workers_reseed_for_each_epoch() -> None:
    with deterministic(0):
        plain = epochs(persistent=False)
    with deterministic(0):
        persistent = epochs(persistent=True)
    assert same(plain, persistent)  # same items: per-epoch seeds, whatever the workers' lifetime


def test_an_epoch_depends_only_on_its_number() -> None:
    # What a run resumed at epoch 2 does: set_epoch(2) in fresh workers.
    with deterministic(0):
        run = epochs(shuffle=True)
    with deterministic(0):
        seeding = dataloader_seeding(epoch=2)
        loader = DataLoader(Probe(), batch_size=2, shuffle=True, num_workers=4, **seeding)
        assert torch.equal(torch.cat(list(loader)), run[2])


def test_without_set_epoch_epochs_still_differ_reproducibly() -> None:
    for persistent in (False, True):
        with deterministic(0):
            run = epochs(set_epoch=False, persistent=persistent)
        with deterministic(0):
            assert same(run, epochs(set_epoch=False, persistent=persistent))
        assert len(draws(torch.cat(run))) == 3 * 16 * 3


def test_workers_started_with_spawn() -> None:
    with deterministic(0):
        fork = epochs(count=2, workers=1, persistent=True)
        spawn = epochs(count=2, workers=1, persistent=True, context="spawn")
    assert same(fork, spawn)


def test_ranks_seeds_and_names_give_other_streams() -> None:
    with deterministic(0):
        base = epochs(count=1)
        assert same(base, epochs(count=1, seed=0, rank=0))
        others = [
            epochs(count=1, rank=1),
            epochs(count=1, seed=1),
            epochs(count=1, name="val"),
        ]
    for other in others:
        assert not draws(other[0]) & draws(base[0])


def test_the_rank_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "3")
    with deterministic(0):
        assert dataloader_seeding().rank == 3


def test_in_process_loading_shuffles_reproducibly() -> None:
    with deterministic(0):
        first = epochs(workers=0, shuffle=True)
    with deterministic(0):
        assert same(first, epochs(workers=0, shuffle=True))
    assert first[0][:, 0].tolist() != first[1][:, 0].tolist()  # reshuffled each epoch


# -- the global torch generator ---------------------------------------------------------


def test_making_an_iterator_leaves_the_global_torch_generator_alone() -> None:
    with deterministic(0):
        seeding = dataloader_seeding()
        for workers in (0, 2):
            loader = DataLoader(Probe(), batch_size=4, shuffle=True, num_workers=workers, **seeding)
            state = torch.get_rng_state()
            iterator = iter(loader)
            assert torch.equal(torch.get_rng_state(), state)
            del iterator
            # without the helper's generator, torch draws from the global one
            loader = DataLoader(Probe(), batch_size=4, shuffle=True, num_workers=workers)
            iterator = iter(loader)
            assert not torch.equal(torch.get_rng_state(), state)
            del iterator


# -- the helper itself ------------------------------------------------------------------


def test_the_seed_comes_from_the_innermost_seeded_scope() -> None:
    with deterministic(5), isolated():
        seeding = dataloader_seeding()
    assert seeding.seed == 5
    with deterministic(5, per_rank=True) as active:
        assert dataloader_seeding().seed == active.seed


def test_without_a_scope_or_seed_it_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="inside `with deterministic"):
        dataloader_seeding()
    assert dataloader_seeding(8).seed == 8


def test_it_is_a_mapping_of_the_two_loader_arguments() -> None:
    seeding = dataloader_seeding(1)
    assert isinstance(seeding, LoaderSeeding)
    assert dict(seeding) == {
        "generator": seeding.generator,
        "worker_init_fn": seeding.worker_init_fn,
    }
    assert isinstance(seeding.generator, torch.Generator)
    assert seeding.epoch is None
    seeding.set_epoch(3)
    assert seeding.epoch == 3
    assert repr(seeding) == "<LoaderSeeding seed=1 rank=0 epoch=3>"


def test_set_epoch_reseeds_the_generator_from_the_epoch() -> None:
    seeding = dataloader_seeding(1, rank=2, name="train")
    seeding.set_epoch(4)
    expected = torch.Generator().manual_seed(derive_seed(1, "dataloader", "train", 2, 4))
    assert torch.equal(seeding.generator.get_state(), expected.get_state())


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"seed": -1}, ValueError),
        ({"seed": 1, "rank": -1}, ValueError),
        ({"seed": 1, "rank": "0"}, ValueError),
        ({"seed": 1, "epoch": -1}, ValueError),
        ({"seed": 1, "name": 3}, TypeError),
        ({"seed": 1, "worker_init_fn": 3}, TypeError),
    ],
)
def test_invalid_arguments(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        dataloader_seeding(**options)


def _record_worker(worker_id: int) -> None:
    # Runs after seedscope's seeding: its draw is on the seeded stream.
    random.seed(random.random() + worker_id)


def test_your_own_worker_init_fn_runs_after_seeding() -> None:
    with deterministic(0):
        first = epochs(count=1, workers=2, worker_init_fn=_record_worker)
    with deterministic(0):
        assert same(first, epochs(count=1, workers=2, worker_init_fn=_record_worker))
        assert not same(first, epochs(count=1, workers=2))


# -- seed_worker: the drop-in ------------------------------------------------------------


def loader_with_seed_worker(seed: int) -> torch.Tensor:
    generator = torch.Generator()
    generator.manual_seed(seed)
    loader = DataLoader(
        Probe(), batch_size=2, num_workers=2, worker_init_fn=seed_worker, generator=generator
    )
    return torch.cat(list(loader))


def test_seed_worker_is_a_drop_in_worker_init_fn() -> None:
    first = loader_with_seed_worker(0)
    assert torch.equal(first, loader_with_seed_worker(0))
    assert not torch.equal(first, loader_with_seed_worker(1))
    assert len(draws(first)) == 16 * 3
