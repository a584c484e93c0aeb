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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vlogger_cli.errors import JobError
from vlogger_cli.frame_store import FrameStore
from vlogger_cli.video.batching import StageTask, render_together, window_limit
from vlogger_cli.video.chunks import stage_run, window_store
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


def control_loader(controls) -> Callable:
    """(start, end) -> ControlFrames of a ControlStore (read from disk window by window) or of frames in memory."""
    return controls.load if hasattr(controls, "load") else (lambda s, e: controls[s:e])


MOUTH_STAGE = "mouth"
MOUTH_WINDOW = 50
"""Frames per window of the mouth stage's store: it is per frame and deterministic (no outpainting state), so
windows only bound memory and what a killed run redoes."""


def render_mouth(refiner, below: FrameStore, controls, num_frames: int, folder: str | os.PathLike, *,
                 portrait: np.ndarray | None = None, warped: Callable[[int, int], np.ndarray] | None = None,
                 known: Callable[[int, int], tuple] | None = None) -> FrameStore:
    """The mouth stage (video/mouth.py) over the cascade's last stage `below`: its frames with each mouth
    redrawn, window by window into `folder` (a plain frame store), resuming at the windows not on disk.
    controls: as render_cascade's; portrait, or warped(start, end) and known(start, end): as refine_mouths'."""
    from vlogger_cli.video.mouth import refine_mouths

    store = FrameStore(folder)
    load = control_loader(controls)
    for index, first in enumerate(range(0, num_frames, MOUTH_WINDOW)):
        if store.has(index):
            continue
        end = min(first + MOUTH_WINDOW, num_frames)
        frames = refine_mouths(refiner, below.frames(first, end), load(first, end), portrait=portrait,
                               warped=warped(first, end) if warped else None,
                               known=known(first, end) if known else None)
        store.write(index, frames, num_frames=num_frames, window=MOUTH_WINDOW)
    return store


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
    portrait: (H, W, 3) uint8. outpaint_kwargs: sampler, steps, overlap, window, guidance_scale, device, autocast.
    Video editing: `portraits(start, end)` -> (T, H, W, 3) uint8 per-frame images that the flow warps (the
    source frames) instead of the one portrait; `known(start, end)` -> ((T, H, W, 3) uint8 frames, (T, H, W)
    bool known pixels) at the control maps' size: inpainting, each stage holding the pixels known at its size.
    """
    job = CascadeJob(controls, portrait, num_frames, Path(chunks), seed=seed, key=key, on_window=on_window,
                     portraits=portraits, known=known, options=outpaint_kwargs)
    error = render_cascades(models, [job], batch=1)[0]
    if error is not None:
        raise error
    return window_store(job.chunks / stage_name(models[-1], len(models) - 1))


@dataclass
class CascadeJob:
    """One video of `render_cascades`: `render_cascade`'s arguments."""

    controls: object                      # a ControlStore (`load(start, stop)`) or ControlFrames
    portrait: np.ndarray                  # (H, W, 3) uint8
    num_frames: int
    chunks: Path                          # its windows go to chunks/<stage>/
    seed: int = 0
    key: str = ""
    on_window: Callable[[str, object], None] | None = None
    portraits: Callable[[int, int], np.ndarray] | None = None
    known: Callable[[int, int], tuple[np.ndarray, np.ndarray]] | None = None
    options: dict = field(default_factory=dict)   # outpaint keyword arguments: steps, overlap, sampler, ...


def render_cascades(models: list[VideoDiffusionModel], jobs: list[CascadeJob], *, batch: int | str = 1,
                    log: Callable[[str], None] | None = None) -> list[BaseException | None]:
    """Render several videos through the same cascade, stage-major as `render_cascade`, window k of each video
    sampled in one batch of up to `batch` windows (an integer, or 'auto': video/batching.py). Per video: None
    when done, or the error that stopped it (the others go on; KeyboardInterrupt stops all, windows kept).
    One video with batch 1 is `render_cascade`, bit for bit."""
    errors: list[BaseException | None] = [None] * len(jobs)
    for i, model in enumerate(models):
        name = stage_name(model, i)
        tasks, owners = [], []
        for j, job in enumerate(jobs):
            if errors[j] is not None:
                continue
            try:
                store = window_store(job.chunks / name)
                below = window_store(job.chunks / stage_name(models[i - 1], i - 1)) if i else None
                source, known_pixels = stage_inputs(model, job.controls, job.portrait, job.portraits, job.known)
                run = stage_run(model, store, source, job.portrait, job.num_frames, lowres=below, seed=job.seed + i,
                                key=job.key, known_pixels=known_pixels, **job.options)
            except Exception as err:  # noqa: BLE001 - this video's inputs or store
                errors[j] = err
                continue
            if run is None:  # this stage is done for this video
                continue
            callback = (lambda state, job=job, name=name: job.on_window(name, state)) if job.on_window else None
            tasks.append(StageTask(run, store, callback))
            owners.append(j)
        if tasks:
            limit = window_limit(batch, tasks[0].run.device)
            render_together(model, tasks, limit=limit, log=log)
            for j, task in zip(owners, tasks):
                errors[j] = task.error
    return errors


def stage_inputs(model: VideoDiffusionModel, controls, portrait: np.ndarray,
                 portraits: Callable[[int, int], np.ndarray] | None = None,
                 known: Callable[[int, int], tuple[np.ndarray, np.ndarray]] | None = None):
    """(controls source, known-pixels source or None) of one stage: (start, end) -> that stage's control tensor
    (T, Cc, R, R), and for video editing the pixels known at its size."""
    from PIL import Image

    c = model.config
    load = control_loader(controls)
    ctrl_portrait = None
    if c.flow_reference:
        size = load(0, 1).position.shape[1]
        ctrl_portrait = np.asarray(Image.fromarray(portrait).resize((size, size), Image.BICUBIC))

    def source(s, e):
        if portraits is not None and c.flow_reference:
            return per_frame_control_tensor(load(s, e), portraits(s, e), c)
        return control_tensor(load(s, e), c.resolution, num_parts=c.num_parts, flow_reference=c.flow_reference,
                              portrait=ctrl_portrait)

    known_pixels = None
    if known is not None:
        def known_pixels(s, e):
            frames, where = known(s, e)
            size = c.resolution
            pixels = resize_frames(to_unit(frames), size)
            # a pixel of this stage is known only when every source pixel it covers is
            held = resize_frames(torch.from_numpy(np.ascontiguousarray(where)).float()[:, None], size) > 0.999
            return pixels, held

    return source, known_pixels


def per_frame_control_tensor(frames, portraits: np.ndarray, config) -> torch.Tensor:
    """Control tensor whose flow-reference channel warps each frame's own image (video editing: the source
    frame, warped from the tracked body to the edited one) instead of one portrait."""
    from vlogger_cli.controls.warp import warp_portrait

    base = control_tensor(frames, config.resolution, num_parts=config.num_parts, flow_reference=False)
    warped = np.stack([warp_portrait(p, f, c) for p, f, c in zip(portraits, frames.flow, frames.cavity)])
    return torch.cat([base, resize_frames(to_unit(warped), config.resolution)], dim=1)
