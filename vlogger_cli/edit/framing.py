"""The square of the source video an edit works in, and pasting the edited square back.

Stage 2 works on square frames at the job's resolution R. An edit renders one fixed square of the source
(integer pixels, so cropping and pasting back are exact) and the final video is the source at its own size
with the edited pixels blended in (masks.py `blend`): everything outside the edited region is the source's
own pixels at full resolution.

The square holds the face in every frame: around the union of the tracked face boxes, FACE_HEIGHTS times the
median face height for face-only edits (eyes, expression, lips: more pixels on the face) and the upper-body
framing of portraits (pipeline/fit.py, CROP_FACE_HEIGHTS) when the head or body moves.
"""

from __future__ import annotations

import numpy as np

from vlogger_cli.pipeline.fit import CROP_FACE_HEIGHTS, FACE_TOP_AT, Framing

FACE_HEIGHTS = 1.9
"""Square side for face-only edits, in face heights (forehead to chin plus a margin for hair and jaw)."""
UNION_MARGIN = 1.1
"""The square is at least this times the union of the face boxes, so the face never leaves it."""


def edit_framing(track, *, whole_head: bool) -> Framing:
    """Integer square crop of the track's frames (module docstring)."""
    height, width = track.image_size
    face = track.landmarks["face"][~track.lost][..., :2]  # (T', 478, 2) pixels
    lo, hi = face.min(axis=1), face.max(axis=1)            # per-frame boxes
    union_lo, union_hi = lo.min(axis=0), hi.max(axis=0)
    face_h = float(np.median(np.maximum(hi[:, 1] - lo[:, 1], hi[:, 0] - lo[:, 0])))
    factor = CROP_FACE_HEIGHTS if whole_head else FACE_HEIGHTS
    side = max(factor * face_h, UNION_MARGIN * float((union_hi - union_lo).max()))
    side = int(round(min(side, width, height)))
    cx, cy = (union_lo + union_hi) / 2
    left = int(round(np.clip(cx - side / 2, 0, width - side)))
    # upper body: the face near the top (as portraits); face only: the face in the middle
    top = union_lo[1] - FACE_TOP_AT * side if whole_head else cy - side / 2
    top = int(round(np.clip(top, 0, height - side)))
    return Framing(float(left), float(top), float(side))


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
    if edited.shape[0] != side:
        edited = np.asarray(Image.fromarray(edited).resize((side, side), Image.LANCZOS))
        blend = np.asarray(Image.fromarray(np.ascontiguousarray(blend, dtype=np.float32)).resize((side, side), Image.BILINEAR))
    blend = np.clip(blend, 0.0, 1.0)[..., None]
    out = frame.copy()
    src = frame[top:top + side, left:left + side].astype(np.float32)
    mixed = src * (1.0 - blend) + edited.astype(np.float32) * blend
    region = out[top:top + side, left:left + side]
    changed = blend[..., 0] > 0
    region[changed] = np.clip(mixed[changed] + 0.5, 0, 255).astype(np.uint8)
    return out
