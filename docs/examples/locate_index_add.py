"""Scattered sums on a GPU: index_add_ adds floats with atomics, in a different order each run."""

import torch

values = torch.randn(1_000_000, device="cuda")
buckets = torch.randint(0, 10, (1_000_000,), device="cuda")
totals = torch.zeros(10, device="cuda").index_add_(0, buckets, values)
print([f"{total:.9g}" for total in totals.tolist()])
