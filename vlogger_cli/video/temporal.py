"""1D temporal convolutions inside a 2D UNet (paper §3.2: "a 1D temporal convolution layer is inserted
after the first layer of each downsampling block").

The base UNet stays an unmodified `UNet2DConditionModel` that sees a batch of B*T frames. A forward
hook on `down_blocks[i].resnets[0]` mixes its output along time:

    h (B*T, C, H, W) -> (B, C, T, H, W) -> h + conv_t(silu(norm(h))) -> (B*T, C, H, W)

`conv_t` is a (k, 1, 1) Conv3d whose weights and bias start at zero, so an untrained temporal layer
is exactly the identity and the frozen base's output is unchanged (tests/video/test_model.py). Hooks,
not edited modules, keep the base's state dict (and so any diffusers checkpoint) untouched; the
layers only act while `frames` is set, so the same UNet still runs frame by frame (phase 1).
"""

from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn


def to_video(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(B*T, C, H, W) -> (B, C, T, H, W) (a view when possible)."""
    bt, c, h, w = x.shape
    return x.view(bt // frames, frames, c, h, w).transpose(1, 2)


def to_frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B*T, C, H, W)."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


class TemporalConv(nn.Module):
    """Residual 1D convolution over time at every pixel; the identity at initialisation."""

    def __init__(self, channels: int, kernel: int = 3, groups: int = 8):
        super().__init__()
        self.norm = nn.GroupNorm(min(groups, channels), channels)
        # replicate padding: the first / last frame of a window sees itself, not black frames
        self.conv = nn.Conv3d(channels, channels, (kernel, 1, 1), padding=(kernel // 2, 0, 0),
                              padding_mode="replicate")
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.frames: int | None = None  # frames per clip while the video model runs; None: off

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        # contiguous (B, C, T, H, W): Conv3d's CPU backward segfaults (torch 2.13) on the strided views a
        # channels-last input would give here
        v = to_video(x.contiguous(), frames).contiguous()  # (B, C, T, H, W)
        return x + to_frames(self.conv(nn.functional.silu(self.norm(v))))


def _temporal_hook(module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
    """Forward hook of a base resnet: apply its temporal layer while one is attached and switched on.

    A module-level function that finds its layer on the resnet (a plain attribute, outside the state
    dict), so a deep copy of the model (EMA) hooks the copy's own layers."""
    layer = module.__dict__.get("_vlogger_temporal")
    if layer is None or layer.frames is None:
        return output
    return layer(output, layer.frames)


class TemporalLayers(ModelMixin, ConfigMixin):
    """One TemporalConv per UNet down block; `attach(unet)` installs them with forward hooks."""

    @register_to_config
    def __init__(self, channels: tuple[int, ...] = (32, 64, 128), kernel: int = 3, norm_groups: int = 8):
        super().__init__()
        self.layers = nn.ModuleList(TemporalConv(c, kernel, norm_groups) for c in channels)

    @classmethod
    def for_unet(cls, unet, kernel: int = 3) -> "TemporalLayers":
        """Layers sized for `unet`: the output channels of each down block's first resnet."""
        channels = tuple(block.resnets[0].out_channels for block in unet.down_blocks)
        return cls(channels=channels, kernel=kernel, norm_groups=unet.config.norm_num_groups)

    def set_frames(self, frames: int | None) -> None:
        """Frames per clip of the batch about to run (None: temporal layers off, frames independent)."""
        for layer in self.layers:
            layer.frames = frames

    def attach(self, unet) -> None:
        """Hook the layers after the first resnet of each of `unet`'s down blocks (replacing earlier ones)."""
        if len(unet.down_blocks) != len(self.layers):
            raise ValueError(f"{len(self.layers)} temporal layers for a UNet with {len(unet.down_blocks)} down blocks")
        for block, layer in zip(unet.down_blocks, self.layers):
            resnet = block.resnets[0]
            object.__setattr__(resnet, "_vlogger_temporal", layer)  # not a submodule: base state dict unchanged
            if _temporal_hook not in resnet._forward_hooks.values():
                resnet.register_forward_hook(_temporal_hook)

    @staticmethod
    def detach(unet) -> None:
        for block in unet.down_blocks:
            resnet = block.resnets[0]
            resnet.__dict__.pop("_vlogger_temporal", None)
            for key in [k for k, f in resnet._forward_hooks.items() if f is _temporal_hook]:
                del resnet._forward_hooks[key]
