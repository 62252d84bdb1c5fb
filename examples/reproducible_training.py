"""Reproducible training with seedscope: same seed, same weights; the caller's streams untouched.

A small MLP with dropout is trained on a synthetic dataset through a shuffling
DataLoader with two worker processes, and the Dataset's ``__getitem__`` draws
its augmentation from ``random``, numpy and torch. Each training run happens
inside ``with deterministic(seed):``, and ``dataloader_seeding()`` gives the
loader its generator and ``worker_init_fn``, so the shuffling and each
worker's streams follow the scope's seed, epoch by epoch. Two runs with the
same seed must end with bit-identical weights and a run with another seed with
different ones, and the global random streams outside the scope must be
exactly as if no training had run. The script exits with status 1 if any of
that does not hold.

Run it with ``python examples/reproducible_training.py``, or check that two
runs of it print the same with ``seedscope verify -- python
examples/reproducible_training.py`` (what ``nox -s demo`` does).
"""

from __future__ import annotations

import hashlib
import random
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from seedscope import dataloader_seeding, deterministic

N_SAMPLES = 512
N_FEATURES = 16
BATCH_SIZE = 32
EPOCHS = 3
WORKERS = 2


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    """The dataset, generated once from a private generator (no global stream is used)."""
    gen = torch.Generator().manual_seed(2024)
    x = torch.randn(N_SAMPLES, N_FEATURES, generator=gen)
    w = torch.randn(N_FEATURES, generator=gen)
    y = (x @ w > 0).long()
    return x, y


class AugmentedDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):  # type: ignore[misc]
    """Each item gets a fresh augmentation, drawn from all three global generators."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[index].clone()
        x[random.randrange(N_FEATURES)] = 0.0  # python: drop one feature
        x *= float(np.random.uniform(0.9, 1.1))  # numpy: scale jitter
        x += 0.05 * torch.randn(N_FEATURES)  # torch: gaussian noise
        return x, self.y[index]


def weights_digest(model: nn.Module) -> str:
    """A short SHA-256 of the concatenated bytes of the model's state_dict tensors."""
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def train(seed: int, dataset: AugmentedDataset) -> tuple[str, float]:
    """One training run inside ``deterministic(seed)``: the weights' digest and the last loss."""
    with deterministic(seed):
        model = nn.Sequential(
            nn.Linear(N_FEATURES, 64),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(64, 64),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(64, 2),
        )
        # The loader's generator and worker_init_fn, from the scope's seed.
        seeding = dataloader_seeding()
        loader = DataLoader(
            dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=WORKERS, **seeding
        )
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()
        model.train()
        loss = torch.tensor(0.0)
        for epoch in range(EPOCHS):
            seeding.set_epoch(epoch)
            for x, y in loader:
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
        return weights_digest(model), loss.item()


def global_draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def seed_globals(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def main() -> int:
    start = time.perf_counter()
    dataset = AugmentedDataset(*make_data())

    # What the caller's global streams would yield next had no training run.
    seed_globals(123)
    expected = global_draws()
    seed_globals(123)

    runs = [(1, 0), (2, 0), (3, 1)]
    digests = {}
    for run, seed in runs:
        digest, loss = train(seed, dataset)
        digests[run] = digest
        print(f"run {run}: deterministic({seed})  last loss {loss:.4f}  weights sha256 {digest}")

    actual = global_draws()

    same = digests[1] == digests[2]
    differs = digests[3] != digests[1]
    untouched = actual == expected
    verdict = {True: "OK", False: "FAILED"}
    print()
    print(f"runs 1 and 2 (same seed 0), identical weights: {verdict[same]}")
    print(f"run 3 (seed 1), different weights: {verdict[differs]}")
    print(
        "global random/numpy/torch streams outside the scopes, unchanged by the training "
        f"(next draws equal an untouched reference): {verdict[untouched]}"
    )
    shown = same and differs and untouched
    print()
    print(
        f"{'Shown' if shown else 'NOT shown'}: training with dropout and a {WORKERS}-worker "
        "DataLoader seeded by dataloader_seeding() gives bit-identical weights for the same "
        "seed and other weights for another, and leaves the global streams as they were."
    )
    # On stderr: `seedscope verify` compares stdout between runs, and timings vary.
    print(f"({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return 0 if shown else 1


if __name__ == "__main__":
    sys.exit(main())
