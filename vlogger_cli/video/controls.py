"""Control maps (controls/render.py `ControlFrames`, numpy) -> the control branch's input tensor.

Channels, in order (VideoModelConfig.control_channels):
  C^d position (3, float, ~[-1, 1]) · body mask (1) · C^m one-hot (num_parts) · C^w warped reference
  (3, [-1, 1], 0 where not seen) · C^w validity mask (1) · [flow-warped portrait (3, [-1, 1])]
C^m is one-hot rather than an embedding table: the conditioning embedding's first convolution applied
to a one-hot map IS a learned embedding (plus its spatial context), with no extra module to save.

Maps are given at any size that is an integer multiple of the model's resolution (the renderer can
draw once at the final SR resolution): they are box-filtered down ("area"), which turns the one-hot
labels into per-pixel part fractions instead of aliasing them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vlogger_cli.controls.render import ControlFrames


def to_unit(image: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [-1, 1]."""
    array = np.ascontiguousarray(image)
    t = torch.from_numpy(array if array.flags.writeable else array.copy()).float().div_(127.5).sub_(1.0)
    return t.movedim(-1, -3)


def from_unit(frames: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) float in [-1, 1] -> (..., H, W, 3) uint8."""
    x = ((frames.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).cpu().numpy()


def resize_frames(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, size, size): box filter when shrinking by an integer factor, else bilinear."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if h % size == 0 and w % size == 0 and h >= size:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=h > size)


def control_tensor(frames: ControlFrames, resolution: int, *, num_parts: int, flow_reference: bool = False,
                   portrait: np.ndarray | None = None) -> torch.Tensor:
    """T frames of controls -> (T, C, resolution, resolution) float32 (channel layout above).

    portrait: (H, W, 3) uint8 at the maps' size, needed when `flow_reference`.
    """
    position = torch.from_numpy(np.ascontiguousarray(frames.position)).float().movedim(-1, 1)  # (T, 3, H, W)
    mask = torch.from_numpy(np.ascontiguousarray(frames.mask)).float()[:, None]
    parts = F.one_hot(torch.from_numpy(frames.parts.astype(np.int64)), num_parts).float().movedim(-1, 1)
    warped_mask = torch.from_numpy(np.ascontiguousarray(frames.warped_mask)).float()[:, None]
    warped = to_unit(frames.warped) * warped_mask
    channels = [position, mask, parts, warped, warped_mask]
    if flow_reference:
        if portrait is None:
            raise ValueError("flow_reference needs the portrait at the control maps' size")
        from vlogger_cli.controls.warp import warp_portrait

        channels.append(to_unit(warp_portrait(portrait, frames.flow, frames.cavity)))
    return resize_frames(torch.cat(channels, dim=1), resolution)


def null_controls(num_frames: int, channels: int, resolution: int) -> torch.Tensor:
    """The 'no controls' input (classifier-free guidance, condition dropout): zeros."""
    return torch.zeros(num_frames, channels, resolution, resolution)
