"""Edit a tracked video's motion (paper §4 "video editing": change chosen parts of the motion, keep the rest).

Input: the source's motion (`motion.tracked.track_to_motion`, stage-1 format relative to the reference frame), optionally a
stage-1 motion generated from speech (new speech, or `--head generate` on the source's own speech), and the
`EditOptions`. Output: the edited motion, same length and fps.

Composition (each edit touches its own channels, so they compose):
- new speech: the mouth channels (`options.MOUTH`: jaw*, mouth*, cheekPuff, tongueOut) from the generated
  motion, unless `keep_lips`;
- `expression`: the preset's / named channels (never gaze, never the lids; never the mouth with `keep_lips`);
- `eyes`: eyeBlinkLeft/Right and the blink channel to 1 (closed) or 0 (open);
- `head`: the pose residuals (still: identity = the reference frame's pose; generate: stage 1's);
- `frames A:B`: the edit applies inside the range only and fades in/out over RAMP_SECONDS at its ends
  (inside the range), so the edited stretch joins the untouched video without a jump.
"""

from __future__ import annotations

import numpy as np

from vlogger_cli.edit.options import EYE_LIDS, MOUTH, EditOptions
from vlogger_cli.motion.artifacts import Motion
from vlogger_cli.motion.representation import ARKIT_NAMES, BLINK, EXPRESSION, POSE, neutral_motion

RAMP_SECONDS = 0.2
"""Fade of a `--frames` edit at each end of its range (a blink takes ~0.1-0.3 s: as quick as a natural one)."""


def edit_weights(options: EditOptions, num_frames: int, fps: float) -> np.ndarray:
    """(T,) how much of the edit each frame gets: 1 inside the range, ramped at its ends, 0 outside."""
    w = np.zeros(num_frames, np.float32)
    first, last = options.frame_range(num_frames)
    if last <= first:
        return w
    w[first:last] = 1.0
    if options.frames is None:
        return w
    ramp = max(1, int(round(RAMP_SECONDS * fps)))
    n = last - first
    k = min(ramp, n // 2) if n > 1 else 0
    if k:
        up = (np.arange(1, k + 1, dtype=np.float32)) / (k + 1)
        if first > 0:
            w[first:first + k] = up
        if last < num_frames:
            w[last - k:last] = up[::-1]
    return w


def needs_generated(options: EditOptions) -> bool:
    """Whether the edit needs a stage-1 motion from speech."""
    return (options.new_speech and not options.keep_lips) or options.head == "generate"


def edit_motion(source: Motion, options: EditOptions, generated: Motion | None = None) -> Motion:
    """The edited motion (module docstring). `generated` must cover the source's frames when
    `needs_generated(options)`."""
    values = source.values.astype(np.float32, copy=True)
    n = source.num_frames
    if needs_generated(options):
        if generated is None:
            raise ValueError("this edit needs a motion generated from speech")
        if generated.num_frames < n:
            raise ValueError(f"the generated motion has {generated.num_frames} frames, the video {n}")
    target = values.copy()
    idx = {name: i for i, name in enumerate(ARKIT_NAMES)}
    expr = target[:, EXPRESSION]

    if options.new_speech and not options.keep_lips:
        gen = generated.values[:n, EXPRESSION]
        for name in MOUTH:
            expr[:, idx[name]] = gen[:, idx[name]]
    for name, value in options.expression.targets().items():
        if options.keep_lips and name in MOUTH:
            continue
        expr[:, idx[name]] = value
    if options.eyes != "source":
        closed = 1.0 if options.eyes == "closed" else 0.0
        for name in EYE_LIDS:
            expr[:, idx[name]] = closed
        target[:, BLINK] = closed
    if options.head == "still":
        target[:, POSE] = neutral_motion(n)[:, POSE]
    elif options.head == "generate":
        target[:, POSE] = generated.values[:n, POSE]
    target[:, EXPRESSION] = expr

    w = edit_weights(options, n, source.fps)[:, None]
    # 6D rotations blend linearly (Gram-Schmidt re-orthonormalises them); fully edited frames take the
    # target exactly, untouched ones keep the source exactly
    out = np.where(w >= 1, target, values + w * (target - values))
    meta = {**source.meta, "source": "edit", "edit": describe(options),
            "generated_seed": None if generated is None else generated.seed}
    return Motion(out.astype(np.float32), source.fps, source.seed, meta)


def with_lids_of(source: Motion, edited: Motion) -> Motion:
    """The source motion with the edited motion's eyelids (EYE_LIDS and the blink channel) and nothing else of
    the edit: the body whose surface a source frame with its lids closed in 2-D (edit/lids.py) shows."""
    values = source.values.astype(np.float32, copy=True)
    idx = {name: i for i, name in enumerate(ARKIT_NAMES)}
    lids = [EXPRESSION.start + idx[name] for name in EYE_LIDS] + list(range(BLINK.start, BLINK.stop))
    values[:, lids] = edited.values[:source.num_frames, lids]
    return Motion(values, source.fps, source.seed, source.meta)


def describe(options: EditOptions) -> dict:
    from vlogger_cli.edit.options import format_frames

    return {"keep_lips": options.keep_lips, "eyes": options.eyes, "expression": str(options.expression),
            "head": options.head, "frames": format_frames(options.frames), "new_speech": options.new_speech}
