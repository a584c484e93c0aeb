"""The output framing: one square crop of the portrait around the head and shoulders.

Framing: VLOGGER makes square upper-body videos. The portrait can be any shape (a webcam frame,
a tall half-body photo, a full-body shot with a small face), so we choose one square crop of the
portrait around the head and shoulders — the region the video shows — and every later stage
works in that crop: the reference image, the render camera (the fit's camera, cropped and scaled)
and the control maps. The crop leaves room above the head and below the shoulders for motion.
A tracked video is framed the same way, per frame (edit/framing.py, train/video_real.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Square side as a multiple of the face height, and where the face sits in it (fractions of the side).
# 3.2 face heights show head, neck, shoulders and upper chest — the paper's "upper body" framing.
CROP_FACE_HEIGHTS = 3.2
FACE_TOP_AT = 0.16


@dataclass(frozen=True)
class Framing:
    """A square crop of the portrait: top-left (left, top) and side, in portrait pixels (may extend
    past the image only when the image is smaller than the square; the crop is then padded)."""

    left: float
    top: float
    side: float

    def to_dict(self) -> dict:
        return {"left": self.left, "top": self.top, "side": self.side}


def choose_framing(image_size: tuple[int, int], face_box: tuple[float, float, float, float]) -> Framing:
    """Square upper-body crop from the face box (x0, y0, x1, y1), kept inside the image where it fits."""
    height, width = image_size
    x0, y0, x1, y1 = face_box
    face_h = max(y1 - y0, x1 - x0, 1.0)
    side = min(CROP_FACE_HEIGHTS * face_h, float(min(width, height)))
    left = (x0 + x1) / 2 - side / 2
    top = y0 - FACE_TOP_AT * side
    left = float(np.clip(left, 0.0, width - side))
    top = float(np.clip(top, 0.0, height - side))
    return Framing(left, top, side)


def crop_reference(image: np.ndarray, framing: Framing, size: int) -> np.ndarray:
    """The framed square of the portrait at size x size (Lanczos)."""
    from PIL import Image

    box = (framing.left, framing.top, framing.left + framing.side, framing.top + framing.side)
    return np.asarray(Image.fromarray(image).resize((size, size), Image.LANCZOS, box=box))
