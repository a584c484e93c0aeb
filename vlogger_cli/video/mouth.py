"""The mouth stage: a small network that redraws the mouth at its own scale, after the cascade.

Why a stage of its own. At the base model's 128² a talking mouth is about 12 pixels wide, and one 4x4 patch of
its grid covers a third of it: what the base can add to the warp there is a lighter or darker blur (teeth and
tongue need pixels it does not have). The mouth is also where the real footage differs most from the warp: the
body mesh has no teeth or tongue, and the warp shows the portrait's own mouth (mouth.py's plates) or a dark
cavity. So the last stage crops each frame's mouth (the rendered C^m lips and mouth interior: the controls say
where it is, before any pixel is drawn) to a fixed CROP² grid, scale-normalised (the crop's side is CROP_SCALE
mouth widths, whatever the frame's resolution and the face's size), and predicts a correction of the cascade's
frame there, pasted back through a feathered mask around the mouth: nothing outside it changes.

What it sees, per frame (`refiner_inputs`): the cascade's frame, the flow-warped portrait (the `warp` renderer's
frame: the portrait's own lips and teeth at full resolution, which the 128² base only sees blurred), and the
mouth's controls (C^m lips, mouth interior, face skin, and the cavity: the opening the portrait does not show).
What it predicts: the conditional mean of the real frame's mouth given those (trained with a squared error on
real talking video, train/mouth.py), one deterministic pass — as the base is sampled (weights/video/README.md:
its one-step x0 prediction beat its iterated samples on real footage at this capacity). Frames are refined
independently; the inputs move smoothly with the mesh, and the crop is placed with sub-pixel precision.

Folder (weights/mouth/): `mouth.json` (format, crop settings) and `unet/` (a diffusers UNet2DModel, float16
safetensors loaded as float32, run at timestep 0: a convolutional U-Net from a maintained library, not a
diffusion sampler).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vlogger_cli.body.model import PART_INDEX

FORMAT = "vlogger-mouth-model"
CONFIG_NAME = "mouth.json"
INPUT_PARTS = ("lips", "mouth_interior", "face_skin")
"""C^m parts given to the refiner as soft masks (the cavity is a fourth mask channel)."""
IN_CHANNELS = 3 + 3 + len(INPUT_PARTS) + 1


@dataclass
class MouthConfig:
    crop: int = 48
    """Side of the refiner's grid (pixels). A 256² frame's mouth is ~24 px wide: 48 / crop_scale = 27 px per
    mouth width keeps every pixel of it (a 512² frame's is sampled down to that). 64 cost twice the time a
    training step on the 2-core machine."""
    crop_scale: float = 1.8
    """Crop side / mouth width: room for the lips, the chin's and the nose's edges around them."""
    paste_grow: float = 0.2
    """The pasted region: the mouth (lips + interior) grown by this x the mouth width, then feathered. The
    tracked mouth is seldom exactly where the real one is: the refiner may move lips within it."""
    feather: float = 0.06
    """Width of the paste mask's soft edge, x the crop side."""
    min_width: float = 4.0
    """Mouths narrower than this (pixels in the frame) are left as the cascade drew them."""
    format: str = FORMAT
    version: int = 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> "MouthConfig":
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} config (format {data.get('format')!r})")
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def mouth_boxes(parts: np.ndarray, config: MouthConfig) -> np.ndarray:
    """(T, H, W) C^m labels -> (T, 3) float32 crop boxes (centre x, centre y, side) in pixels; NaN rows where
    the frame shows no mouth (or one narrower than min_width). The centre is the mouth pixels' centroid (it
    moves by fractions of a pixel as the mesh does, where a bounding box jumps by whole ones)."""
    mouth = (parts == PART_INDEX["lips"]) | (parts == PART_INDEX["mouth_interior"])
    boxes = np.full((len(parts), 3), np.nan, np.float32)
    for t, m in enumerate(mouth):
        ys, xs = np.nonzero(m)
        if len(xs) and xs.max() - xs.min() + 1 >= config.min_width:
            boxes[t] = (xs.mean() + 0.5, ys.mean() + 0.5, config.crop_scale * (xs.max() - xs.min() + 1))
    return boxes


def _grid(boxes: torch.Tensor, size: int, height: int, width: int) -> torch.Tensor:
    """(N, size, size, 2) grid_sample coordinates (align_corners=False) of each box's size² crop grid."""
    steps = (torch.arange(size, dtype=torch.float32) + 0.5) / size - 0.5      # -0.5..0.5 across the crop
    cx, cy, side = boxes[:, 0, None], boxes[:, 1, None], boxes[:, 2, None]
    xs = (cx + steps[None] * side) / width * 2 - 1                             # (N, size)
    ys = (cy + steps[None] * side) / height * 2 - 1
    return torch.stack(torch.broadcast_tensors(xs[:, None, :], ys[:, :, None]), dim=-1)


def crop(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) float -> (N, C, size, size): each box resampled (bilinear; zeros beyond the frame)."""
    grid = _grid(boxes, size, images.shape[-2], images.shape[-1])
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def paste(frames: torch.Tensor, change: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """frames (N, 3, H, W) plus each crop-space change (N, 3, s, s) resampled into its box. The change (the
    refiner's correction times the paste mask), not the refined crop, is what travels back: where the
    refiner changes nothing the frame keeps its own pixels, not a twice-resampled copy of them."""
    n, _, h, w = frames.shape
    out = frames.clone()
    for i in range(n):
        cx, cy, side = (float(v) for v in boxes[i])
        x0, x1 = max(int(np.floor(cx - side / 2)), 0), min(int(np.ceil(cx + side / 2)), w)
        y0, y1 = max(int(np.floor(cy - side / 2)), 0), min(int(np.ceil(cy + side / 2)), h)
        if x1 <= x0 or y1 <= y0:
            continue
        # frame pixel centres -> the crop's normalised coordinates (-1..1 across its side)
        gx = (torch.arange(x0, x1, dtype=torch.float32) + 0.5 - cx) / side * 2
        gy = (torch.arange(y0, y1, dtype=torch.float32) + 0.5 - cy) / side * 2
        grid = torch.stack(torch.broadcast_tensors(gx[None, :], gy[:, None]), dim=-1)[None]
        out[i, :, y0:y1, x0:x1] += F.grid_sample(change[i:i + 1], grid, mode="bilinear", padding_mode="zeros",
                                                 align_corners=False)[0]
    return out


def paste_alpha(masks: torch.Tensor, config: MouthConfig) -> torch.Tensor:
    """(N, 1, s, s) the paste mask from the crop's soft mouth mask (lips + interior): grown by paste_grow mouth
    widths, feathered, and zero at the crop's border (the paste leaves no seam where the crop ends)."""
    s = masks.shape[-1]
    grow = max(1, round(config.paste_grow * s / config.crop_scale))
    alpha = F.max_pool2d((masks > 0.5).float(), 2 * grow + 1, stride=1, padding=grow)
    k = max(1, round(config.feather * s)) | 1
    for _ in range(2):
        alpha = F.avg_pool2d(alpha, k, stride=1, padding=k // 2, count_include_pad=False)
    border = torch.ones(s)
    border[:k], border[-k:] = 0, 0
    return alpha * (border[None, :] * border[:, None])


def refiner_inputs(frames: torch.Tensor, warped: torch.Tensor, parts: np.ndarray, cavity: np.ndarray,
                   boxes: torch.Tensor, config: MouthConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(refiner input (N, IN_CHANNELS, s, s), paste mask (N, 1, s, s)) of N frames with boxes.

    frames, warped: (N, 3, H, W) in -1..1 (the cascade's frame, the flow-warped portrait); parts (N, H, W) C^m
    labels and cavity (N, H, W) bool at the same H x W."""
    masks = np.stack([parts == PART_INDEX[p] for p in INPUT_PARTS] + [cavity], axis=1).astype(np.float32)
    maps = torch.cat([frames, warped, torch.from_numpy(masks)], dim=1)
    cropped = crop(maps, boxes, config.crop)
    mouth = cropped[:, 6:8].sum(1, keepdim=True)   # lips + interior
    return cropped, paste_alpha(mouth, config)


class MouthRefiner(torch.nn.Module):
    """The mouth stage's network: a UNet2DModel on the crop, its output a correction of the cascade's crop."""

    def __init__(self, config: MouthConfig | None = None, unet=None, *, channels=(32, 64, 96)):
        super().__init__()
        from diffusers import UNet2DModel

        self.config = config or MouthConfig()
        self.unet = unet or UNet2DModel(
            sample_size=self.config.crop, in_channels=IN_CHANNELS, out_channels=3, block_out_channels=channels,
            down_block_types=("DownBlock2D",) * len(channels), up_block_types=("UpBlock2D",) * len(channels),
            layers_per_block=1, norm_num_groups=8)
        # starts as the identity: the first step of training sees the cascade's crop unchanged
        torch.nn.init.zeros_(self.unet.conv_out.weight)
        torch.nn.init.zeros_(self.unet.conv_out.bias)

    def forward(self, inputs: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """(N, IN_CHANNELS, s, s) inputs, (N, 1, s, s) paste mask -> (N, 3, s, s) the change to the cascade's
        crop: the correction through the mask, limited so that the refined crop stays within -1..1."""
        zero = torch.zeros(len(inputs), dtype=torch.long, device=inputs.device)
        frame = inputs[:, :3]
        refined = (frame + self.unet(inputs, zero).sample).clamp(-1, 1)
        return (refined - frame) * alpha

    def save_pretrained(self, folder: str | os.PathLike, dtype: torch.dtype = torch.float16) -> None:
        """Write the folder; the weights as float16 by default (half the size; loaded as float32)."""
        import copy

        from diffusers.utils import logging as diffusers_logging

        from vlogger_cli.io import atomic_path

        folder = Path(folder)
        level = diffusers_logging.get_verbosity()
        diffusers_logging.set_verbosity_error()  # its note on casting with .to(): nothing here must stay float32
        try:
            copy.deepcopy(self.unet).to(dtype).save_pretrained(folder / "unet", safe_serialization=True)
        finally:
            diffusers_logging.set_verbosity(level)
        with atomic_path(folder / CONFIG_NAME) as tmp:
            Path(tmp).write_text(self.config.to_json())

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> "MouthRefiner":
        from diffusers import UNet2DModel

        folder = Path(folder)
        config = MouthConfig.from_dict(json.loads((folder / CONFIG_NAME).read_text()))
        # low_cpu_mem_usage=False: diffusers otherwise asks for `accelerate` on every load (2 M weights here)
        unet = UNet2DModel.from_pretrained(folder / "unet", use_safetensors=True, torch_dtype=torch.float32,
                                           local_files_only=True, low_cpu_mem_usage=False)
        model = cls.__new__(cls)
        torch.nn.Module.__init__(model)
        model.config, model.unet = config, unet
        return model.eval()


def load_mouth(weights: str | os.PathLike) -> MouthRefiner | None:
    """The mouth stage in a weights folder (WEIGHTS/mouth/), or None when it has none (the cascade's frames
    are then final)."""
    folder = Path(weights) / "mouth"
    return MouthRefiner.from_pretrained(folder) if (folder / CONFIG_NAME).is_file() else None


def mouth_inputs(frames: np.ndarray, parts: np.ndarray, flow: np.ndarray, cavity: np.ndarray, config: MouthConfig,
                 *, portrait: np.ndarray | None = None, warped: np.ndarray | None = None):
    """What the refiner reads of (T, H, W, 3) uint8 frames and their controls at H x W (rendering and training
    alike): (indices of the frames that show a mouth, their boxes (K, 3), refiner inputs, paste masks), or None
    when no frame does. portrait: the reference (any size; resized), warped along the flow here; or `warped`:
    (T, H, W, 3) uint8 or a multiple of H x W (box-filtered down), already warped (video editing)."""
    from PIL import Image

    from vlogger_cli.controls.warp import warp_portrait
    from vlogger_cli.video.controls import resize_frames, to_unit

    h, w = frames.shape[1:3]
    boxes = mouth_boxes(parts, config)
    keep = np.flatnonzero(~np.isnan(boxes[:, 0]))
    if not len(keep):
        return None
    if warped is None:
        ref = portrait if portrait.shape[:2] == (h, w) else \
            np.asarray(Image.fromarray(portrait).resize((w, h), Image.BICUBIC))
        warped_unit = to_unit(warp_portrait(ref, flow[keep], cavity[keep]))
    else:
        warped_unit = resize_frames(to_unit(np.asarray(warped)[keep]), h)
    b = torch.from_numpy(boxes[keep])
    inputs, alpha = refiner_inputs(to_unit(frames[keep]), warped_unit, parts[keep], cavity[keep], b, config)
    return keep, b, inputs, alpha


def refine_mouths(model: MouthRefiner, frames: np.ndarray, controls, *, portrait: np.ndarray | None = None,
                  warped: np.ndarray | None = None, known: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of the cascade -> the same with each frame's mouth redrawn.

    controls: the frames' ControlFrames (at H x W or a multiple: labels taken nearest, flow averaged).
    portrait, warped: as mouth_inputs'. known: ((T, H, W, 3) uint8, (T, H, W) bool) pixels that must stay as
    they are (video editing's kept regions; at H x W or a multiple: a pixel is known when every pixel it covers
    is, as the cascade's stages hold them, video/render.stage_inputs), put back after the paste."""
    from vlogger_cli.video.controls import from_unit, resize_frames, to_unit

    h = frames.shape[1]
    parts, flow, cavity = _controls_at(controls, h)
    prepared = mouth_inputs(frames, parts, flow, cavity, model.config, portrait=portrait, warped=warped)
    if prepared is None:
        return frames
    keep, boxes, inputs, alpha = prepared
    device = next(model.parameters()).device
    with torch.inference_mode():
        change = model(inputs.to(device), alpha.to(device)).cpu()
        refined = paste(to_unit(frames[keep]), change, boxes)
    out = frames.copy()
    out[keep] = from_unit(refined)
    if known is not None:
        pixels, where = known
        pixels = from_unit(resize_frames(to_unit(pixels), h))
        where = resize_frames(torch.from_numpy(np.ascontiguousarray(where)).float()[:, None], h)[:, 0].numpy() > 0.999
        out[where] = pixels[where]
    return out


def _controls_at(controls, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(parts, flow, cavity) of ControlFrames at size² (the controls' own size or a multiple of it)."""
    parts, flow, cavity = controls.parts, controls.flow, controls.cavity
    k = parts.shape[1] // size
    if k * size != parts.shape[1]:
        raise ValueError(f"controls at {parts.shape[1]}² cannot make {size}² frames' mouths (not a multiple)")
    if k > 1:
        parts, cavity = parts[:, k // 2::k, k // 2::k], cavity[:, k // 2::k, k // 2::k]
        t = len(flow)
        flow = flow.reshape(t, size, k, size, k, 2).mean(axis=(2, 4)) / k
    return parts, flow, cavity
