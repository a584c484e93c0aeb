"""The square of the source video an edit works in, and pasting the edited square back.

Stage 2 works on square frames at the job's resolution R. An edit renders a square of each source frame
(integer pixels, so cropping and pasting back are exact) and the final video is the source at its own size
with the edited pixels blended in (masks.py `blend`): everything outside the edited region is the source's
own pixels at full resolution.

The square follows the face from frame to frame (its side fixed, its place on the face's smoothed path), so a
head that travels across the picture keeps its pixels: FACE_HEIGHTS times the median face height for face-only
edits (eyes, expression, lips: more pixels on the face), the upper-body framing of portraits (pipeline/fit.py,
CROP_FACE_HEIGHTS) when the head or body moves. The controls of each frame are rendered with that frame's crop
of the tracked camera (a principal-point shift: FaceRasterizer.set_camera).
"""

from __future__ import annotations

import numpy as np

from vlogger_cli.body.framing import CROP_FACE_HEIGHTS, FACE_TOP_AT, Framing

FACE_HEIGHTS = 1.9
"""Square side for face-only edits, in face heights (forehead to chin plus a margin for hair and jaw)."""
FACE_MARGIN = 1.25
"""The square is at least this times the largest face box of the video, so the face always fits in it."""
FOLLOW_SECONDS = 0.3
"""The square follows the face's path smoothed over this long (a moving average)."""


def edit_framings(track, *, whole_head: bool) -> list[Framing]:
    """One integer square per frame (module docstring): a fixed side, centred on the face's smoothed path."""
    from vlogger_cli.body import smoothing

    height, width = track.image_size
    seen = ~track.lost
    face = track.landmarks["face"][..., :2]                       # (T, 478, 2) pixels, zeros where lost
    lo, hi = face.min(axis=1), face.max(axis=1)                   # per-frame face boxes
    size = np.maximum(hi[:, 1] - lo[:, 1], hi[:, 0] - lo[:, 0])
    factor = CROP_FACE_HEIGHTS if whole_head else FACE_HEIGHTS
    side = max(factor * float(np.median(size[seen])), FACE_MARGIN * float(size[seen].max()))
    side = int(round(min(side, width, height)))
    # where the square goes: the face's centre (or, for upper-body squares, the face's top) over time,
    # lost frames interpolated, smoothed over FOLLOW_SECONDS so the square glides instead of shaking
    anchor = np.stack([(lo[:, 0] + hi[:, 0]) / 2, (lo[:, 1] + hi[:, 1]) / 2 if not whole_head else lo[:, 1]], 1)
    anchor = smoothing.fill_gaps(anchor.astype(np.float64), seen)
    anchor = _moving_average(anchor, max(1, int(round(FOLLOW_SECONDS * track.fps))))
    out = []
    for x, y in anchor:
        top = y - FACE_TOP_AT * side if whole_head else y - side / 2
        left = int(round(np.clip(x - side / 2, 0, width - side)))
        out.append(Framing(float(left), float(int(round(np.clip(top, 0, height - side)))), float(side)))
    return out


def _moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """(T, C) centred moving average over `window` frames, edges padded with the end values."""
    if window <= 1 or len(x) < 2:
        return x
    half = window // 2
    padded = np.concatenate([np.repeat(x[:1], half, 0), x, np.repeat(x[-1:], half, 0)])
    kernel = np.ones(2 * half + 1) / (2 * half + 1)
    return np.stack([np.convolve(padded[:, c], kernel, mode="valid") for c in range(x.shape[1])], axis=1)


def crop_square(frame: np.ndarray, framing: Framing, size: int) -> np.ndarray:
    """The framed square of a frame at size x size (Lanczos; integer box, no resampling when side == size)."""
    from PIL import Image

    left, top, side = int(framing.left), int(framing.top), int(framing.side)
    square = frame[top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(square)
    return np.asarray(Image.fromarray(np.ascontiguousarray(square)).resize((size, size), Image.LANCZOS))


def paste_back(frame: np.ndarray, edited: np.ndarray, blend: np.ndarray, framing: Framing) -> np.ndarray:
    """The source frame (H, W, 3) with the edited square (R, R, 3) blended in by `blend` (R, R) in [0, 1].

    Where `blend` is 0 (upsampled: exactly 0 away from the edited region) the source pixel is returned as is."""
    from PIL import Image

    left, top, side = int(framing.left), int(framing.top), int(framing.side)
    if not blend.any():
        return frame
    if edited.shape[0] != side:  # (pipeline/edit_render.py passes it at full size already: edit/detail.py)
        edited = np.asarray(Image.fromarray(edited).resize((side, side), Image.LANCZOS))
    if blend.shape[0] != side:
        blend = np.asarray(Image.fromarray(np.ascontiguousarray(blend, dtype=np.float32)).resize((side, side), Image.BILINEAR))
    blend = np.clip(blend, 0.0, 1.0)[..., None]
    out = frame.copy()
    src = frame[top:top + side, left:left + side].astype(np.float32)
    mixed = src * (1.0 - blend) + edited.astype(np.float32) * blend
    region = out[top:top + side, left:left + side]
    changed = blend[..., 0] > 0
    region[changed] = np.clip(mixed[changed] + 0.5, 0, 255).astype(np.uint8)
    return out
