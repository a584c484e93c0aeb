"""Exponential moving average of a model's weights (shared by every trainer).

The EMA copy is an ordinary module of the same class, so it is saved, exported and evaluated like
the model itself. The decay warms up as min(decay, (1 + n) / (10 + n)) so early averages do not
drag the random initialisation along for thousands of steps. warmup=False keeps the decay fixed from
the first step: the average then keeps decay**steps of the initialisation, a pull towards it that a
short run whose initialisation means something (train/mouth.py: the identity) may want.
"""

from __future__ import annotations

import copy

import torch


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float = 0.999, *, warmup: bool = True):
        self.decay, self.warmup = decay, warmup
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.num_updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates)) if self.warmup else self.decay
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1 - d)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)
