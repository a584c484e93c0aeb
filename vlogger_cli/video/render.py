"""Stage 2 for one job: load the cascade for the job's resolution, render each stage window by window.

Weights (weights/README.md, "Video model folders"):
    WEIGHTS/video/          the base model (128²)
    WEIGHTS/sr/<R>/         an SR model whose output is R² (its lowres_resolution is the stage below's)
A job at resolution R uses the base and the SR models up to R, stage-major: the base renders all its
windows into chunks/base/, then each SR stage reads its low-res frames from the stage below's chunks
(bounded memory, resumable per window; chunks.py). The controls come from the job's control store at
any resolution that is a multiple of each stage's (box-filtered down per stage).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vlogger_cli.errors import JobError
from vlogger_cli.frame_store import FrameStore
from vlogger_cli.video.chunks import render_stage, window_store
from vlogger_cli.video.controls import control_tensor, resize_frames, to_unit
from vlogger_cli.video.model import CONFIG_NAME, VideoDiffusionModel


def cascade_folders(weights: str | os.PathLike, resolution: int) -> list[Path]:
    """[base folder, SR folders in order] that together make `resolution`² frames."""
    import json

    weights = Path(weights)
    base = weights / "video"
    if not (base / CONFIG_NAME).is_file():
        raise JobError(f"no stage-2 base model in {base}; train one with `vlogger train video` (weights/README.md)")
    folders = [base]
    size = json.loads((base / CONFIG_NAME).read_text())["resolution"]
    while size < resolution:
        candidates = sorted((p for p in (weights / "sr").glob("*") if (p / CONFIG_NAME).is_file()),
                            key=lambda p: json.loads((p / CONFIG_NAME).read_text())["resolution"])
        nxt = next((p for p in candidates if json.loads((p / CONFIG_NAME).read_text()).get("lowres_resolution") == size), None)
        if nxt is None:
            raise JobError(_missing_sr(weights, size, resolution))
        folders.append(nxt)
        size = json.loads((nxt / CONFIG_NAME).read_text())["resolution"]
    if size != resolution:
        raise JobError(f"the stage-2 cascade in {weights} makes {size}², not {resolution}²")
    return folders


def _missing_sr(weights: Path, size: int, resolution: int) -> str:
    """One line naming the SR folder a resolution needs (WEIGHTS/sr/<R>/, R the next stage's output) and a preset."""
    from vlogger_cli.video.config import PRESETS

    out = min(2 * size, resolution)
    presets = [n for n, c in PRESETS.items() if c.lowres_resolution == size and c.resolution == out]
    recipe = f"`vlogger train sr --preset {presets[-1]}`" if presets else "`vlogger train sr`"
    return (f"resolution {resolution} needs a super-resolution model from {size}² in {weights / 'sr' / str(out)} "
            f"(none there); train one with {recipe} and copy its final/ there (weights/README.md), or choose "
            f"resolution {size}")


def load_cascade(weights: str | os.PathLike, resolution: int, device: str = "cpu") -> list[VideoDiffusionModel]:
    return [VideoDiffusionModel.from_pretrained(p).to(device).eval() for p in cascade_folders(weights, resolution)]


def stage_name(model: VideoDiffusionModel, index: int) -> str:
    return "base" if index == 0 else f"sr{model.config.resolution}"


def render_cascade(models: list[VideoDiffusionModel], controls, portrait: np.ndarray, num_frames: int,
                   chunks: str | os.PathLike, *, seed: int = 0, key: str = "",
                   on_window: Callable[[str, object], None] | None = None,
                   portraits: Callable[[int, int], np.ndarray] | None = None,
                   known: Callable[[int, int], tuple[np.ndarray, np.ndarray]] | None = None,
                   **outpaint_kwargs) -> FrameStore:
    """Render every stage into chunks/<stage>/ (resuming what is there); returns the last stage's windows.

    controls: the job's ControlStore (`load(start, stop)` -> ControlFrames) or ControlFrames.
    portrait: (H, W, 3) uint8. outpaint_kwargs: sampler, steps, overlap, window, guidance_scale, device.
    Video editing: `portraits(start, end)` -> (T, H, W, 3) uint8 per-frame images that the flow warps (the
    source frames) instead of the one portrait; `known(start, end)` -> ((T, H, W, 3) uint8 frames, (T, H, W)
    bool known pixels) at the control maps' size: inpainting, each stage holding the pixels known at its size.
    """
    from PIL import Image

    load = controls.load if hasattr(controls, "load") else (lambda s, e: controls[s:e])
    below = None
    for i, model in enumerate(models):
        c = model.config
        ctrl_portrait = None
        if c.flow_reference:
            size = load(0, 1).position.shape[1]
            ctrl_portrait = np.asarray(Image.fromarray(portrait).resize((size, size), Image.BICUBIC))

        def source(s, e, c=c, ctrl_portrait=ctrl_portrait):
            if portraits is not None and c.flow_reference:
                return per_frame_control_tensor(load(s, e), portraits(s, e), c)
            return control_tensor(load(s, e), c.resolution, num_parts=c.num_parts, flow_reference=c.flow_reference,
                                  portrait=ctrl_portrait)

        known_pixels = None
        if known is not None:
            def known_pixels(s, e, c=c):
                frames, where = known(s, e)
                size = c.resolution
                pixels = resize_frames(to_unit(frames), size)
                # a pixel of this stage is known only when every source pixel it covers is
                held = resize_frames(torch.from_numpy(np.ascontiguousarray(where)).float()[:, None], size) > 0.999
                return pixels, held

        name = stage_name(model, i)
        store = window_store(Path(chunks) / name)
        callback = (lambda state, name=name: on_window(name, state)) if on_window else None
        render_stage(model, store, source, portrait, num_frames, lowres=below, seed=seed + i, key=key,
                     on_window=callback, known_pixels=known_pixels, **outpaint_kwargs)
        below = store
    return below


def per_frame_control_tensor(frames, portraits: np.ndarray, config) -> torch.Tensor:
    """Control tensor whose flow-reference channel warps each frame's own image (video editing: the source
    frame, warped from the tracked body to the edited one) instead of one portrait."""
    from vlogger_cli.controls.warp import warp_portrait

    base = control_tensor(frames, config.resolution, num_parts=config.num_parts, flow_reference=False)
    warped = np.stack([warp_portrait(p, f) for p, f in zip(portraits, frames.flow)])
    return torch.cat([base, resize_frames(to_unit(warped), config.resolution)], dim=1)
