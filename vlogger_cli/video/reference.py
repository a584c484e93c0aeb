"""The reference image (the portrait) -> cross-attention tokens: the identity path of stage 2.

Why tokens (and not channels concatenated to the UNet input): the base is a frozen, unmodified
diffusers UNet whose input channels are fixed, and the portrait is NOT aligned with the frame being
generated (the person has moved). Cross-attention is exactly the operation that looks appearance up
anywhere in an unaligned image (hair, clothes, skin colour at any place of the frame), for the frozen
base and for the control branch alike. What is aligned — the portrait's colours carried to the new
pose, C^w (and the flow-warped portrait) — goes through the control branch as pixels instead.

A small conv net: `len(channels)` stages (3x3 conv, stride 2 after the first), average-pooled to a
`grid` x `grid` map (one token per cell: where things are in the portrait) plus one global token,
projected to the UNet's `cross_attention_dim`, with a learned position embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn


class ReferenceEncoder(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, size: int = 64, channels: tuple[int, ...] = (16, 32, 64), grid: int = 4, dim: int = 64):
        super().__init__()
        layers, c_in = [], 3
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(c_in, c, 3, stride=1 if i == 0 else 2, padding=1), nn.GroupNorm(min(8, c), c), nn.SiLU()]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.proj = nn.Linear(c_in, dim)
        self.position = nn.Parameter(torch.randn(grid * grid + 1, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)

    @property
    def num_tokens(self) -> int:
        return self.config.grid ** 2 + 1

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, 3, H, W) in [-1, 1] -> tokens (B, grid² + 1, dim)."""
        s = self.config.size
        if image.shape[-2:] != (s, s):
            image = F.interpolate(image, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        h = self.body(image)  # (B, C, s', s')
        cells = F.adaptive_avg_pool2d(h, self.config.grid).flatten(2).transpose(1, 2)  # (B, grid², C)
        tokens = torch.cat([h.mean(dim=(2, 3))[:, None], cells], dim=1)  # (B, 1 + grid², C)
        return self.norm(self.proj(tokens) + self.position)
