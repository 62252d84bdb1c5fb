"""Seeding ``torch.utils.data.DataLoader`` workers from the active scope, per rank and epoch.

A DataLoader worker is a process of its own: it starts with copies of the
main process's generators, which torch reseeds from a base seed it draws from
the loader's ``generator`` (or the global torch generator) each time an
iterator is made. :func:`dataloader_seeding` supplies both halves: a
generator seeded from the scope's seed, so that making an iterator never
draws from the global torch generator, and a ``worker_init_fn`` that seeds
each worker's ``random``, numpy and torch generators from seeds derived from
(seed, rank, worker id, epoch).

Nothing here imports torch until a helper is called.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ._derive import derive_seed
from ._distributed import get_rank
from ._scope import live_stack
from ._seed import validate_seed

__all__ = ["LoaderSeeding", "dataloader_seeding", "seed_worker", "worker_seeds"]

_MASK32 = 0xFFFFFFFF
_NO_EPOCH = -1
_WORKER = "dataloader worker"


def _fmix32(value: int) -> int:
    """MurmurHash3's 32-bit finalizer: a bijection of [0, 2**32) that mixes every bit."""
    value ^= value >> 16
    value = (value * 0x85EBCA6B) & _MASK32
    value ^= value >> 13
    value = (value * 0xC2B2AE35) & _MASK32
    value ^= value >> 16
    return value


def worker_seeds(
    seed: int, rank: int, worker_id: int, epoch: int | tuple[str, int], name: str = ""
) -> tuple[int, list[int], int]:
    """The seeds of one worker's streams: ``random`` (64 bits), numpy (128), torch (32).

    Each comes from :func:`~seedscope.derive_seed` of (seed, name, rank,
    worker id, epoch) and the library's name, so no two libraries share a
    stream. torch keeps only 32 bits of a seed, where 4096 hashed seeds would
    collide about once in 500 runs; so its seed is a keyed bijection of
    ``rank * 2**16 + worker_id``, different for every (rank, worker) pair below
    2**16 each, as random-looking as a hash.
    """
    keys = (_WORKER, name, rank, worker_id, *_epoch_keys(epoch))
    python_seed = derive_seed(seed, *keys, "python", 0) << 32 | derive_seed(
        seed, *keys, "python", 1
    )
    numpy_seed = [derive_seed(seed, *keys, "numpy", word) for word in range(4)]
    if rank < 2**16 and worker_id < 2**16:
        shared = (_WORKER, name, *_epoch_keys(epoch), "torch")
        key_1, key_2 = derive_seed(seed, *shared, 0), derive_seed(seed, *shared, 1)
        torch_seed = _fmix32(_fmix32((rank << 16 | worker_id) ^ key_1) ^ key_2)
    else:
        torch_seed = derive_seed(seed, *keys, "torch")
    return python_seed, numpy_seed, torch_seed


def _epoch_keys(epoch: int | tuple[str, int]) -> tuple[int | str, ...]:
    return (epoch,) if isinstance(epoch, int) else epoch


def _seed_streams(python_seed: int, numpy_seed: list[int], torch_seed: int) -> None:
    random.seed(python_seed)
    np_random = sys.modules.get("numpy.random")
    if np_random is None and "numpy" in sys.modules:
        import numpy.random as np_random
    if np_random is not None:
        np_random.seed(numpy_seed)
    sys.modules["torch"].manual_seed(torch_seed)


class _WorkerInit:
    """The ``worker_init_fn``: picklable, so it also serves workers started with spawn."""

    def __init__(
        self,
        seed: int,
        rank: int,
        name: str,
        epoch: Any,
        then: Callable[[int], object] | None,
    ) -> None:
        self.seed = seed
        self.rank = rank
        self.name = name
        self.epoch = epoch  # a shared int: set_epoch reaches running (persistent) workers
        self.then = then

    def __call__(self, worker_id: int) -> None:
        self._seed(worker_id)
        _reseed_when_resumed(lambda: self._seed(worker_id, resumed=True))
        if self.then is not None:
            self.then(worker_id)

    def _seed(self, worker_id: int, *, resumed: bool = False) -> None:
        epoch: int | tuple[str, int] = self.epoch.value
        if epoch == _NO_EPOCH:
            if resumed:
                return  # persistent workers without set_epoch: the streams go on
            # No set_epoch: each iterator's base seed (from the loader's generator)
            # tells this iteration apart.
            from torch.utils.data import get_worker_info

            info = get_worker_info()
            epoch = ("iteration", (info.seed - worker_id) if info is not None else 0)
        _seed_streams(*worker_seeds(self.seed, self.rank, worker_id, epoch, self.name))

    def __repr__(self) -> str:
        return f"<seedscope worker_init_fn seed={self.seed} rank={self.rank}>"


def _reseed_when_resumed(reseed: Callable[[], None]) -> None:
    """In a worker: reseed each time a persistent worker starts a new epoch.

    torch's worker loop makes a new fetcher when the main process resumes a
    persistent worker for the next iteration (and once right after start-up,
    which is skipped here). Wrapping that call in this worker process, and in
    no other, is the one hook torch offers between epochs.
    """
    try:
        from torch.utils.data import _DatasetKind
    except ImportError:  # pragma: no cover - every torch this supports has it
        return
    original = _DatasetKind.create_fetcher
    started = [False]

    def create_fetcher(*args: Any, **kwargs: Any) -> Any:
        if started[0]:
            reseed()
        started[0] = True
        return original(*args, **kwargs)

    _DatasetKind.create_fetcher = staticmethod(create_fetcher)


class LoaderSeeding(Mapping[str, Any]):
    """The ``generator`` and ``worker_init_fn`` of a ``DataLoader``, as attributes and a mapping.

    Made by :func:`dataloader_seeding`; ``DataLoader(dataset, **seeding)`` passes both.
    """

    def __init__(
        self,
        seed: int,
        rank: int,
        name: str,
        epoch: int | None,
        then: Callable[[int], object] | None,
    ) -> None:
        import multiprocessing

        import torch

        self._seed = seed
        self._rank = rank
        self._name = name
        # Shared with the workers; not locked: only the main process writes it.
        self._epoch = multiprocessing.RawValue("q", _NO_EPOCH)
        self.generator = torch.Generator()
        self.generator.manual_seed(self._generator_seed(0))
        self.worker_init_fn = _WorkerInit(seed, rank, name, self._epoch, then)
        if epoch is not None:
            self.set_epoch(epoch)

    def _generator_seed(self, epoch: int) -> int:
        return derive_seed(self._seed, "dataloader", self._name, self._rank, epoch)

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def epoch(self) -> int | None:
        """The epoch of the last :meth:`set_epoch`, or ``None``."""
        value: int = self._epoch.value
        return None if value == _NO_EPOCH else value

    def set_epoch(self, epoch: int) -> None:
        """Seed the next iteration for ``epoch``: call it before iterating, each epoch.

        Reseeds :attr:`generator` with a seed derived from (seed, rank,
        epoch), so the shuffling order of an epoch does not depend on the
        epochs before it, and makes the workers seed their streams for this
        epoch (persistent workers reseed when the next iteration starts).
        A run resumed at epoch ``e`` then reads the same batches as one that
        never stopped.
        """
        if type(epoch) is not int or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        self._epoch.value = epoch
        self.generator.manual_seed(self._generator_seed(epoch))

    def __getitem__(self, key: str) -> Any:
        if key == "generator":
            return self.generator
        if key == "worker_init_fn":
            return self.worker_init_fn
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(("generator", "worker_init_fn"))

    def __len__(self) -> int:
        return 2

    def __repr__(self) -> str:
        return f"<LoaderSeeding seed={self._seed} rank={self._rank} epoch={self.epoch}" + (
            f" name={self._name!r}>" if self._name else ">"
        )


def _scope_seed() -> int:
    for active in reversed(live_stack()):
        if active.seed is not None:
            return active.seed
    raise RuntimeError(
        "dataloader_seeding() takes its seed from the active deterministic scope, and none "
        "is active here: call it inside `with deterministic(seed):` or pass seed="
    )


def dataloader_seeding(
    seed: int | None = None,
    *,
    rank: int | None = None,
    epoch: int | None = None,
    name: str = "",
    worker_init_fn: Callable[[int], object] | None = None,
) -> LoaderSeeding:
    """The ``generator`` and ``worker_init_fn`` that make a ``DataLoader`` reproducible.

    ``seed`` defaults to the seed of the innermost active :func:`deterministic`
    scope. ``rank`` defaults to this process's rank (``torch.distributed``,
    else ``$RANK``, else 0). ``name`` tells several loaders of one run apart.
    ``worker_init_fn`` is your own, called in each worker after seeding.

    Pass both to the loader with ``DataLoader(dataset, ..., **seeding)`` and
    call ``seeding.set_epoch(epoch)`` before each epoch. Each worker then seeds
    ``random``, numpy's global generator and torch from seeds derived from
    (seed, rank, worker id, epoch): other streams for every worker, rank and
    epoch, the same in every run. The generator shuffles (and draws torch's
    per-iteration base seed), so making an iterator leaves the global torch
    generator alone.

    >>> import torch
    >>> from torch.utils.data import DataLoader
    >>> from seedscope import deterministic
    >>> with deterministic(0):
    ...     seeding = dataloader_seeding()
    ...     loader = DataLoader(list(range(6)), batch_size=3, shuffle=True, **seeding)
    ...     seeding.set_epoch(0)
    ...     batches = [b.tolist() for b in loader]
    >>> sorted(sum(batches, []))
    [0, 1, 2, 3, 4, 5]
    """
    seed = _scope_seed() if seed is None else validate_seed(seed)
    if rank is None:
        rank = get_rank()
    elif type(rank) is not int or rank < 0:
        raise ValueError(f"rank must be an int >= 0, got {rank!r}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if worker_init_fn is not None and not callable(worker_init_fn):
        raise TypeError(f"worker_init_fn must be callable, not {worker_init_fn!r}")
    return LoaderSeeding(seed, rank, name, epoch, worker_init_fn)


def seed_worker(worker_id: int) -> None:
    """A ``worker_init_fn``: a drop-in for ``seed_worker`` in PyTorch's reproducibility notes.

    torch starts each worker with its own seed (``torch.initial_seed()``),
    drawn from the loader's generator. This seeds the worker's ``random``,
    numpy's global generator and torch from seeds derived from that seed and
    this process's rank, with no two libraries, workers or ranks on the same
    stream. Reproducible when the loader's generator is: give the loader
    ``generator=``, or make it inside a :func:`deterministic` scope.
    """
    torch = sys.modules["torch"]
    initial = torch.initial_seed()
    _seed_streams(*worker_seeds(0, get_rank(), worker_id, ("seed_worker", initial), "seed_worker"))
