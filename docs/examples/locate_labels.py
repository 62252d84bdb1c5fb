"""Class ids numbered in the order of a set of strings, which changes with the hash seed."""

import torch
from torch import nn

from seedscope import deterministic

LABELS = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen", "ibis", "jay", "kiwi", "lynx"]

with deterministic(0):
    classes = set(LABELS)
    index = {label: number for number, label in enumerate(classes)}
    targets = torch.tensor([index[label] for label in LABELS])
    model = nn.Linear(4, len(classes))
    loss = nn.functional.cross_entropy(model(torch.randn(len(LABELS), 4)), targets)
    print(f"loss {loss.item():.6f}")
