"""Arbitrary-length motion by temporal outpainting (VLOGGER §3.3, applied to stage 1).

Windows of N frames; the first window is generated from noise, each next one starts `overlap`
frames (N − N') before the previous one ended and takes those frames as known: they condition the
denoiser (known channel + mask) and are also written over x̂0 at every step. So the overlap frames
are bit-identical to the previous window's, and the denoiser — trained with known prefixes and a
velocity loss across the known/unknown border — continues them without a jump in value or velocity.
Default: N = 250 frames (10 s at 25 fps) and an overlap of 25 % (62 frames). The paper's 50 % is for
the video stage; the motion denoiser attends to at most `attention_window` = 64 past frames, so 62
known frames already give every new frame its full context, and each extra overlap frame costs a
re-generated frame (50 % doubles the work, 25 % costs a third more). Pass overlap=0.5 for the paper's.

The last `blend` (8) overlap frames are not given as known: the new window redraws them and the
output cross-fades from the previous window to the new one over them with smoothstep weights
(zero slope at both ends). The denoiser's own continuation from the known frames is good but not
perfect (measured on the demo weights: seam velocity 1.7x the mean without the blend); the
cross-fade spreads what remains over 0.3 s, so neither value nor velocity jumps.

Every sample of the batch (best-of-K) is outpainted in parallel.
"""

from __future__ import annotations

from typing import Callable

import torch

from vlogger_cli.motion.diffusion import DEFAULT_SAMPLER, sample
from vlogger_cli.windows import window_starts

DEFAULT_WINDOW = 250
DEFAULT_OVERLAP = 0.25
DEFAULT_BLEND = 8



def outpaint(
    model,
    audio: torch.Tensor,  # (B, T, A) prepared audio for the whole clip
    reference: torch.Tensor,  # (B, R)
    *,
    window: int = DEFAULT_WINDOW,
    overlap: float = DEFAULT_OVERLAP,
    sampler: str = DEFAULT_SAMPLER,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    blend: int = DEFAULT_BLEND,
    on_window: Callable[[int, int], None] | None = None,  # progress: (window index, count)
) -> torch.Tensor:
    """Normalised motion (B, T, D) for audio of any length, window by window."""
    b, t = audio.shape[:2]
    d = model.config.motion_dim
    out = audio.new_zeros(b, t, d)
    spans = window_starts(t, window, int(round(overlap * window)))
    for i, (start, end, known) in enumerate(spans):
        hard = max(0, known - blend)  # frames given as known; the last `blend` overlap frames are redrawn
        mask = audio.new_zeros(b, end - start)
        mask[:, :hard] = 1
        x = sample(
            model, audio[:, start:end], reference,
            sampler=sampler, steps=steps, generator=generator,
            known=out[:, start:end].clone() if hard else None,
            known_mask=mask if hard else None,
        )
        if known > hard:  # cross-fade previous -> new over the redrawn overlap frames (smoothstep weights)
            ramp = torch.arange(1, known - hard + 1, dtype=x.dtype, device=x.device) / (known - hard + 1)
            w = (ramp * ramp * (3 - 2 * ramp))[None, :, None]  # (1, blend, 1)
            x[:, hard:known] = (1 - w) * out[:, start + hard:start + known] + w * x[:, hard:known]
        out[:, start:end] = x
        if on_window:
            on_window(i, len(spans))
    return out
