"""A jitter layer that takes its noise from the operating system: no seed reaches it."""

import os

import torch
from torch import nn


class Jitter(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noise = torch.tensor(list(os.urandom(x.shape[-1]))) / 255
        return x + 0.01 * noise


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.jitter = Jitter()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.jitter(self.proj(x))


torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 8), Encoder())
loss = model(torch.randn(4, 8)).square().mean()
loss.backward()
print(f"loss {loss.item():.6f}")
