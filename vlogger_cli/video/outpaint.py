"""Videos of any length by temporal outpainting (paper §3.3), one resumable window at a time.

The first window makes N frames; each next window starts N − N' frames before the previous one ended,
takes those frames as known (held fixed by replacement, sampling.py) and makes N' new ones.
`outpaint` is a generator of `WindowState`s: the caller writes each finished window to disk (its new
frames are the video's, the whole state is the resume point), and `outpaint(..., resume=state)`
continues from any finished window with bit-identical results — the state holds the clean frames the
next window is conditioned on and the RNG state after the window.

The denoiser sees Σ_windows steps × len(window) frames (× 2 with guidance) — `ideal_frame_evaluations`;
the tests count the model's calls against it.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from vlogger_cli.frame_store import FrameWindow
from vlogger_cli.windows import window_starts
from vlogger_cli.video.controls import from_unit, to_unit
from vlogger_cli.video.sampling import DEFAULT_SAMPLER, DEFAULT_STEPS, Conditioning, sample_window, steps_run

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
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, not {num_frames}")
    cfg = model.config
    window = window or cfg.window
    overlap = cfg.overlap if overlap is None else overlap
    overlap_frames = int(round(overlap * window))
    steps = steps or DEFAULT_STEPS[sampler]
    device = torch.device(device) if device is not None else next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    meta = {"num_frames": num_frames, "window": window, "overlap_frames": overlap_frames, "sampler": sampler,
            "steps": steps, "seed": seed, "batch": batch, "guidance_scale": guidance_scale, "key": key}
    if known_pixels is not None:
        meta["inpaint"] = True
    if cfg.sample_strength != 1:
        meta["sample_strength"] = cfg.sample_strength
    controls, lowres = as_source(controls), (as_source(lowres) if lowres is not None else None)
    if (lowres is None) != (cfg.lowres_resolution is None):
        raise ValueError("an SR model needs `lowres` frames and a base model takes none")
    spans = window_starts(num_frames, window, overlap_frames)

    # 1. the RNG: a CPU generator (same noise on any device), seeded or restored from the resume point
    generator = torch.Generator("cpu")
    generator.manual_seed(seed)
    previous, first = None, 0
    if resume is not None:
        if resume.meta != meta:
            diff = sorted(k for k in meta if resume.meta.get(k) != meta[k])
            raise ValueError(f"resume state was made with different settings ({', '.join(diff)}); start over")
        generator.set_state(resume.rng_state)
        previous, first = resume.latents.to(device, dtype), resume.index + 1
    # 2. the reference tokens, once for the whole video
    ref = reference_tensor(reference).to(device, dtype)
    tokens = model.encode_reference(ref).expand(batch, -1, -1)
    null_tokens = model.encode_reference(torch.zeros_like(ref)).expand(batch, -1, -1) if guidance_scale != 1 else None

    for index in range(first, len(spans)):
        start, end, known = spans[index]
        t = end - start
        # 3. this window's conditioning
        ctrl_t = controls(start, end).to(device, dtype)  # (T, Cc, R, R)
        ctrl = ctrl_t[None].expand(batch, -1, -1, -1, -1)
        low, frames_low = None, None
        if lowres is not None:
            frames_low = lowres(start, end).to(device, dtype)  # (T, 3, r, r)
            low = model.lowres_on_grid(frames_low)[None].expand(batch, -1, -1, -1, -1)
        # residual models: (T, C, g, g) the samples are relative to (upsampled low-res / flow-warped portrait)
        base = model.residual_base(ctrl_t, frames_low)
        cond = Conditioning(tokens, ctrl, low, null_tokens)
        known_latents = previous[:, previous.shape[1] - known:] if known else None
        inpaint = None
        if known_pixels is not None:  # known pixels, relative to the residual base like the samples
            pixels, where = known_pixels(start, end)
            x0 = model.encode_frames(pixels.to(device, dtype))
            inpaint = (model.to_residual(x0, base)[None], model.known_on_grid(where.to(device))[None])
        # 4. sample the window (known frames held fixed)
        latents = sample_window(model, cond, t, known=known_latents, inpaint=inpaint, sampler=sampler, steps=steps,
                                generator=generator, guidance_scale=guidance_scale, autocast=autocast,
                                callback=callback)
        # 5. decode the new frames (residual models: on top of their base frames)
        new = model.from_residual(latents[:, known:], None if base is None else base[known:])
        new = model.decode_frames(new.flatten(0, 1))  # (B*T', 3, R, R)
        frames = torch.from_numpy(from_unit(new)).unflatten(0, (batch, t - known))
        previous = latents
        yield WindowState.make(index, start, end, known, latents.float().cpu(), frames, generator.get_state(),
                               dict(meta))
