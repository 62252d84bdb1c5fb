"""One rank of a 2-process ``gloo`` run, for ``test_distributed.py``.

Not collected by pytest. ``python _distributed_run.py OUT.json`` with ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set: agrees on a seed
with the other rank, draws from the global streams in a per-rank scope, then
trains a small ``DistributedDataParallel`` model for 2 epochs with a
``DistributedSampler``, dropout, and augmentation in 2 DataLoader workers,
and writes what it saw to OUT.json.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

import seedscope


class Augmented(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    def __init__(self) -> None:
        data = torch.Generator().manual_seed(99)
        self.x = torch.randn(64, 8, generator=data)
        self.y = torch.randint(0, 3, (64,), generator=data)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[index] + 0.1 * torch.randn(8)
        x = x * (1.0 + 0.05 * float(np.random.randn()))
        if random.random() < 0.5:
            x = x.flip(0)
        return x, self.y[index]


def main(out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    # The seed is chosen on rank 0 (here fixed, so that two runs can be compared).
    seed = seedscope.broadcast_seed(1234 if rank == 0 else None)
    fresh = seedscope.broadcast_seed()  # chosen at run time: only agreement can be checked

    with seedscope.deterministic(seed, per_rank=True) as active:
        streams = [random.random(), float(np.random.rand()), torch.rand(()).item()]
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
        ddp = DistributedDataParallel(model)  # every rank starts from rank 0's weights
        optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
        dataset = Augmented()
        sampler = DistributedSampler(dataset, shuffle=True, seed=seed)
        seeding = seedscope.dataloader_seeding()
        loader = DataLoader(dataset, batch_size=8, sampler=sampler, num_workers=2, **seeding)
        for epoch in range(2):
            sampler.set_epoch(epoch)
            seeding.set_epoch(epoch)
            for x, y in loader:
                optimizer.zero_grad()
                nn.functional.cross_entropy(ddp(x), y).backward()
                optimizer.step()

    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.numpy().tobytes())
    with open(out, "w") as file:
        json.dump(
            {
                "rank": rank,
                "seed": seed,
                "fresh": fresh,
                "entry_seed": active.seed,
                "loader_rank": seeding.rank,
                "streams": streams,
                "weights": digest.hexdigest(),
            },
            file,
        )
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
