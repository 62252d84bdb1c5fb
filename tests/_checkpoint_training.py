"""A small training run that checkpoints seedscope state, for ``test_snapshot.py``.

Not collected by pytest; run as a script, each time in a fresh interpreter:

``python _checkpoint_training.py full DIR WORKERS [WORKERS...]``
    for each WORKERS: trains epoch 0, saves model, optimizer and seedscope state
    to DIR/checkpoint-WORKERS.pt, trains epoch 1 and saves the weights to
    DIR/full-WORKERS.pt.
``python _checkpoint_training.py resume DIR WORKERS``
    loads DIR/checkpoint-WORKERS.pt, trains epoch 1 and saves the weights to
    DIR/resume-WORKERS.pt.
``python _checkpoint_training.py control DIR WORKERS``
    the same without restoring seedscope's state, to DIR/control-WORKERS.pt.

Shuffling, dropout and augmentation from ``random``, numpy and torch all draw
random numbers. With WORKERS > 0 the augmentation runs in DataLoader workers
seeded by ``seedscope.dataloader_seeding``.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import seedscope


class Augmented(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    def __init__(self) -> None:
        data = torch.Generator().manual_seed(1234)  # the data itself is fixed
        self.x = torch.randn(96, 8, generator=data)
        self.y = torch.randint(0, 3, (96,), generator=data)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[index] + 0.1 * torch.randn(8)  # torch
        x = x * (1.0 + 0.05 * float(np.random.randn()))  # numpy
        if random.random() < 0.5:  # random
            x = x.flip(0)
        return x, self.y[index]


def make_model() -> tuple[nn.Module, torch.optim.Optimizer]:
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3))
    return model, torch.optim.Adam(model.parameters(), lr=0.01)


def make_loader(workers: int) -> tuple[DataLoader[Any], seedscope.LoaderSeeding | None]:
    if workers == 0:
        # Shuffled by the global torch generator, augmented in this process.
        return DataLoader(Augmented(), batch_size=8, shuffle=True), None
    seeding = seedscope.dataloader_seeding()
    loader = DataLoader(Augmented(), batch_size=8, shuffle=True, num_workers=workers, **seeding)
    return loader, seeding


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader[Any],
    seeding: seedscope.LoaderSeeding | None,
    epoch: int,
) -> None:
    if seeding is not None:
        seeding.set_epoch(epoch)
    model.train()
    for x, y in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def run(mode: str, directory: Path, workers: int) -> None:
    with seedscope.deterministic(0):
        model, optimizer = make_model()
        loader, seeding = make_loader(workers)
        if mode == "full":
            train_epoch(model, optimizer, loader, seeding, 0)
            checkpoint = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "seedscope": seedscope.capture().state_dict(),
            }
            torch.save(checkpoint, directory / f"checkpoint-{workers}.pt")
            train_epoch(model, optimizer, loader, seeding, 1)
        else:
            checkpoint = torch.load(directory / f"checkpoint-{workers}.pt", weights_only=True)
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            if mode == "resume":
                seedscope.Snapshot.from_state_dict(checkpoint["seedscope"]).restore()
            train_epoch(model, optimizer, loader, seeding, 1)
        torch.save(model.state_dict(), directory / f"{mode}-{workers}.pt")


if __name__ == "__main__":
    torch.set_num_threads(1)
    for workers in sys.argv[3:]:
        run(sys.argv[1], Path(sys.argv[2]), int(workers))
