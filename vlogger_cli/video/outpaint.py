"""Videos of any length by temporal outpainting (paper §3.3), one resumable window at a time.

The first window makes N frames; each next window starts N − N' frames before the previous one ended,
takes those frames as known (held fixed by replacement, sampling.py) and makes N' new ones.
`outpaint` is a generator of `WindowState`s: the caller writes each finished window to disk (its new
frames are the video's, the whole state is the resume point), and `outpaint(..., resume=state)`
continues from any finished window with bit-identical results — the state holds the clean frames the
next window is conditioned on and the RNG state after the window.

The denoiser sees Σ_windows steps × len(window) frames (× 2 with guidance) — `ideal_frame_evaluations`;
the tests count the model's calls against it. `Outpainter` is the same loop taken apart (conditioning /
sampling / decoding per window) so that video/batching.py can sample several videos' windows in one batch.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from vlogger_cli.frame_store import FrameWindow
from vlogger_cli.windows import window_starts
from vlogger_cli.video.controls import from_unit, to_unit
from vlogger_cli.video.sampling import (DEFAULT_SAMPLER, Conditioning, WindowRequest, sample_window, solver_steps,
                                        steps_run)

Source = Callable[[int, int], torch.Tensor]
"""(start, end) -> that frame range of a per-frame input, (T, C, H, W) float (controls, low-res frames)."""


class WindowState(FrameWindow):
    """One finished outpainting window: its new frames and the sampler state that continues it identically —
    `latents` (B, end - start, C, g, g) float32, the clean model-space frames of the whole window (the next
    window's known frames come from them), and `rng_state`, the CPU generator's state after the window."""

    @classmethod
    def make(cls, index: int, start: int, end: int, known: int, latents: torch.Tensor, frames: torch.Tensor,
             rng_state: torch.Tensor, meta: dict) -> "WindowState":
        return cls(index, start, end, known, frames, {"latents": latents.detach().float(), "rng_state": rng_state},
                   meta)

    @property
    def latents(self) -> torch.Tensor:
        return self.state["latents"]

    @property
    def rng_state(self) -> torch.Tensor:
        return self.state["rng_state"]


def ideal_frame_evaluations(num_frames: int, window: int, overlap_frames: int, steps: int, *,
                            batch: int = 1, guided: bool = False, strength: float = 1.0) -> int:
    """Frames through the denoiser for a whole video: every window's frames once per step run
    (sampling.steps_run: all `steps`, or the last part of them with a residual model's sample_strength)."""
    per_step = sum(end - start for start, end, _ in window_starts(num_frames, window, overlap_frames))
    return per_step * steps_run(steps, strength) * batch * (2 if guided else 1)


def as_source(frames) -> Source:
    """A Source from a tensor (T, C, H, W), uint8 frames (T, H, W, 3) or a callable."""
    if callable(frames):
        return frames
    if isinstance(frames, np.ndarray):
        return lambda s, e: to_unit(frames[s:e])
    return lambda s, e: frames[s:e]


def reference_tensor(reference) -> torch.Tensor:
    """Portrait as (1, 3, H, W) in [-1, 1] from uint8 (H, W, 3) or a tensor (3, H, W) / (1, 3, H, W)."""
    if isinstance(reference, np.ndarray):
        reference = to_unit(reference)
    return reference if reference.ndim == 4 else reference[None]


@torch.no_grad()
def outpaint(
    model,
    controls: Source | torch.Tensor,
    reference,
    num_frames: int,
    *,
    lowres: Source | torch.Tensor | np.ndarray | None = None,  # SR models: low-res frames in [-1, 1]
    known_pixels: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]] | None = None,
    window: int | None = None,
    overlap: float | None = None,
    sampler: str = DEFAULT_SAMPLER,
    steps: int | None = None,
    seed: int = 0,
    batch: int = 1,
    guidance_scale: float = 1.0,
    key: str = "",
    resume: WindowState | None = None,
    device: str | torch.device | None = None,
    autocast: bool | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> Iterator[WindowState]:
    """Yield the windows of a `num_frames` video, from the first (or the one after `resume`) to the last.

    controls: (start, end) -> (T, Cc, R, R) (video/controls.py `control_tensor`), or the whole tensor.
    reference: the portrait. batch: independent samples (best-of-K) made together.
    key: the caller's config hash; a resume state made under another key is refused.
    autocast: bf16 denoiser (default: on CUDA only; CPU runs stay float32 and bit-reproducible).
    known_pixels: inpainting (video editing): (start, end) -> ((T, 3, R, R) frames in [-1, 1], (T, 1, R, R)
    bool, True where the frame's pixel is known); known pixels are held (sampling.py), the rest generated.
    """
    run = Outpainter(model, controls, reference, num_frames, lowres=lowres, known_pixels=known_pixels, window=window,
                     overlap=overlap, sampler=sampler, steps=steps, seed=seed, batch=batch,
                     guidance_scale=guidance_scale, key=key, resume=resume, device=device, autocast=autocast)
    while not run.done:
        yield run.step(callback)


class Outpainter:
    """One video's outpainting, one window at a time, in three steps that `outpaint` runs in a row and
    video/batching.py interleaves with other videos': `request()` builds the next window's conditioning (and
    draws nothing from the RNG), the caller samples it (`sample_window`, or `sample_windows` with other videos'
    windows), `finish(latents)` decodes its new frames into the `WindowState` and moves on."""

    def __init__(self, model, controls, reference, num_frames: int, *, lowres=None, known_pixels=None,
                 window: int | None = None, overlap: float | None = None, sampler: str = DEFAULT_SAMPLER,
                 steps: int | None = None, seed: int = 0, batch: int = 1, guidance_scale: float = 1.0, key: str = "",
                 resume: WindowState | None = None, device=None, autocast: bool | None = None):
        if num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, not {num_frames}")
        self.model = model
        cfg = model.config
        window = window or cfg.window
        overlap = cfg.overlap if overlap is None else overlap
        overlap_frames = int(round(overlap * window))
        self.sampler, self.steps = sampler, solver_steps(cfg, steps, sampler)
        self.guidance_scale, self.autocast, self.batch = guidance_scale, autocast, batch
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        meta = {"num_frames": num_frames, "window": window, "overlap_frames": overlap_frames, "sampler": sampler,
                "steps": self.steps, "seed": seed, "batch": batch, "guidance_scale": guidance_scale, "key": key}
        if known_pixels is not None:
            meta["inpaint"] = True
        if cfg.sample_strength != 1:
            meta["sample_strength"] = cfg.sample_strength
        self.meta = meta
        self.controls = as_source(controls)
        self.lowres = as_source(lowres) if lowres is not None else None
        self.known_pixels = known_pixels
        if (self.lowres is None) != (cfg.lowres_resolution is None):
            raise ValueError("an SR model needs `lowres` frames and a base model takes none")
        self.spans = window_starts(num_frames, window, overlap_frames)

        # 1. the RNG: a CPU generator (same noise on any device), seeded or restored from the resume point
        self.generator = torch.Generator("cpu")
        self.generator.manual_seed(seed)
        self.previous, self.index = None, 0
        if resume is not None:
            if resume.meta != meta:
                diff = sorted(k for k in meta if resume.meta.get(k) != meta[k])
                raise ValueError(f"resume state was made with different settings ({', '.join(diff)}); start over")
            self.generator.set_state(resume.rng_state)
            self.previous, self.index = resume.latents.to(self.device, self.dtype), resume.index + 1
        # 2. the reference tokens, once for the whole video
        ref = reference_tensor(reference).to(self.device, self.dtype)
        self.tokens = model.encode_reference(ref).expand(batch, -1, -1)
        self.null_tokens = (model.encode_reference(torch.zeros_like(ref)).expand(batch, -1, -1)
                            if guidance_scale != 1 else None)
        self._base = None
        self._known_grid = None  # this window's known-pixel mask on the grid (video editing), for `finish`

    @property
    def done(self) -> bool:
        return self.index >= len(self.spans)

    def request(self) -> WindowRequest:
        """The next window's conditioning and known frames (its generator: this video's)."""
        model, batch, device, dtype = self.model, self.batch, self.device, self.dtype
        start, end, known = self.spans[self.index]
        t = end - start
        # 3. this window's conditioning
        ctrl_t = self.controls(start, end).to(device, dtype)  # (T, Cc, R, R)
        ctrl = ctrl_t[None].expand(batch, -1, -1, -1, -1)
        low, frames_low = None, None
        if self.lowres is not None:
            frames_low = self.lowres(start, end).to(device, dtype)  # (T, 3, r, r)
            low = model.lowres_on_grid(frames_low)[None].expand(batch, -1, -1, -1, -1)
        # residual models: (T, C, g, g) the samples are relative to (upsampled low-res / flow-warped portrait)
        self._base = model.residual_base(ctrl_t, frames_low)
        cond = Conditioning(self.tokens, ctrl, low, self.null_tokens)
        previous = self.previous
        known_latents = previous[:, previous.shape[1] - known:] if known else None
        inpaint = None
        if self.known_pixels is not None:  # known pixels, relative to the residual base like the samples
            pixels, where = self.known_pixels(start, end)
            x0 = model.encode_frames(pixels.to(device, dtype))
            inpaint = (model.to_residual(x0, self._base)[None], model.known_on_grid(where.to(device))[None])
        self._known_grid = None if inpaint is None else inpaint[1]
        return WindowRequest(cond, t, known_latents, inpaint, self.generator)

    def step(self, callback: Callable[[int, int], None] | None = None) -> WindowState:
        """Make the next window alone: request, sample, finish."""
        request = self.request()
        latents = sample_window(self.model, request.cond, request.num_frames, known=request.known,
                                inpaint=request.inpaint, sampler=self.sampler, steps=self.steps,
                                generator=self.generator, guidance_scale=self.guidance_scale,
                                autocast=self.autocast, callback=callback)
        return self.finish(latents)

    def finish(self, latents: torch.Tensor) -> WindowState:
        """The sampled window (B, T, C, g, g) -> its WindowState (new frames decoded); the next window follows."""
        model, base = self.model, self._base
        start, end, known = self.spans[self.index]
        t = end - start
        # 5. decode the new frames (residual models: on top of their base frames)
        new = latents[:, known:]
        if base is not None:  # residual_blur: the sampled residual smoothed, the caller's known pixels as given
            grid = None if self._known_grid is None else self._known_grid[:, known:]
            new = model.from_residual(model.smooth_residual(new, grid), base[known:])
        new = model.decode_frames(new.flatten(0, 1))  # (B*T', 3, R, R)
        frames = torch.from_numpy(from_unit(new)).unflatten(0, (self.batch, t - known))
        self.previous, self._base = latents, None
        state = WindowState.make(self.index, start, end, known, latents.float().cpu(), frames,
                                 self.generator.get_state(), dict(self.meta))
        self.index += 1
        return state
