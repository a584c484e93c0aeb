"""Cascaded super-resolution (paper §3.2: 128 -> 256 (-> 512) diffusion SR models), windowed.

An SR model is a `VideoDiffusionModel` whose config has `lowres_resolution`: its base UNet takes the
noisy high-res frame concatenated with the low-res frame pixel-unshuffled onto the same grid (every
low-res pixel kept, no interpolation), its control branch reads the controls at the HIGH resolution,
and its temporal layers and outpainting are those of the base model — so SR windows are temporally
consistent and resumable with the same `WindowState`s.

`super_resolve` is `outpaint` for an SR model; `cascade` chains a base and its SR models in one
stream with bounded memory (each SR stage starts a window as soon as the stage below has made the
low-res frames it needs, and forgets frames no window will read again).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from vlogger_cli.windows import window_starts
from vlogger_cli.video.controls import resize_frames, to_unit
from vlogger_cli.video.outpaint import WindowState, as_source, outpaint


def lowres_frames(frames: np.ndarray | torch.Tensor, resolution: int) -> torch.Tensor:
    """Previous stage's frames, uint8 (T, h, w, 3) (numpy or torch) -> (T, 3, r, r) in [-1, 1] at `resolution`."""
    if isinstance(frames, torch.Tensor):
        frames = frames.cpu().numpy()
    return resize_frames(to_unit(frames), resolution)


def super_resolve(model, lowres, controls, reference, num_frames: int, **kwargs) -> Iterator[WindowState]:
    """`outpaint` for an SR model. lowres: a Source of the low-res frames, or all of them (uint8 (T, h, w, 3))."""
    if model.config.lowres_resolution is None:
        raise ValueError("super_resolve needs an SR model (config.lowres_resolution is unset)")
    r = model.config.lowres_resolution
    if isinstance(lowres, (np.ndarray, torch.Tensor)) and lowres.dtype in (np.uint8, torch.uint8):
        source = lambda s, e: lowres_frames(lowres[s:e], r)  # noqa: E731
    else:
        given = as_source(lowres)
        source = lambda s, e: resize_frames(given(s, e).float(), r)  # noqa: E731
    return outpaint(model, controls, reference, num_frames, lowres=source, **kwargs)


class FrameBuffer:
    """Frames [offset, offset + len) of a stream, appended window by window, forgotten once read past."""

    def __init__(self):
        self.offset = 0
        self.frames: torch.Tensor | None = None  # (T, R, R, 3) uint8

    @property
    def end(self) -> int:
        return self.offset + (0 if self.frames is None else self.frames.shape[0])

    def append(self, frames: torch.Tensor) -> None:
        self.frames = frames if self.frames is None else torch.cat([self.frames, frames])

    def read(self, start: int, end: int) -> torch.Tensor:
        if start < self.offset or end > self.end:
            raise IndexError(f"frames [{start}, {end}) not buffered (have [{self.offset}, {self.end}))")
        return self.frames[start - self.offset:end - self.offset]

    def forget_before(self, frame: int) -> None:
        drop = max(0, min(frame, self.end) - self.offset)
        if drop:
            self.frames, self.offset = self.frames[drop:], self.offset + drop


def cascade(models: list, controls: list, reference, num_frames: int, *, sample: int = 0,
            settings: list[dict] | None = None) -> Iterator[tuple[int, WindowState]]:
    """Run a base model and its SR models as one stream: yields (stage, window) as each window is done.

    controls[i]: the controls of stage i (a Source or tensor at model i's resolution). settings[i]:
    outpaint keyword arguments of stage i (window, overlap, sampler, steps, seed, ...). SR stages read
    sample `sample` of the stage below. Memory: each stage buffers at most about one window of the
    stage below.
    """
    settings = settings or [{} for _ in models]
    buffers = [FrameBuffer() for _ in models]
    spans = []
    for model, kw in zip(models, settings):
        window = kw.get("window") or model.config.window
        overlap = model.config.overlap if kw.get("overlap") is None else kw["overlap"]
        spans.append(window_starts(num_frames, window, int(round(overlap * window))))

    streams = []
    for i, model in enumerate(models):
        if i == 0:
            streams.append(outpaint(model, controls[0], reference, num_frames, **settings[0]))
        else:
            below, r = buffers[i - 1], model.config.lowres_resolution
            streams.append(outpaint(model, controls[i], reference, num_frames,
                                    lowres=lambda s, e, below=below, r=r: lowres_frames(below.read(s, e), r),
                                    **settings[i]))
    made = [0] * len(models)  # windows finished per stage
    while made[-1] < len(spans[-1]):
        # the highest stage whose next window has all its low-res frames buffered (stage 0 always has)
        i = next(i for i in range(len(models) - 1, -1, -1)
                 if made[i] < len(spans[i]) and (i == 0 or buffers[i - 1].end >= spans[i][made[i]][1]))
        state = next(streams[i])
        made[i] += 1
        buffers[i].append(state.frames[sample])
        if i > 0 and made[i] < len(spans[i]):
            buffers[i - 1].forget_before(spans[i][made[i]][0])
        if i == len(models) - 1:
            buffers[i].forget_before(state.end)  # the last stage's frames go to the caller only
        yield i, state
