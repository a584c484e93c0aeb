"""Reading the reference portrait: any common photo in, one upright RGB uint8 array out.

Handles what real photos bring: EXIF rotation (phones store portraits sideways plus a tag),
RGBA (composited on white: transparent backgrounds are usually meant to be light), greyscale,
palette and 16-bit images, and very large photos (downscaled so the long side is at most
`max_side`; landmarks and fitting gain nothing beyond that and memory stays bounded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlogger_cli.errors import InputError

MIN_SIDE = 64
MAX_SIDE = 2048


def load_portrait(path: str | Path, *, max_side: int = MAX_SIDE) -> np.ndarray:
    """(H, W, 3) uint8 RGB, upright, long side ≤ max_side."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(canvas, rgba)
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit greyscale: scale to 8 bits by the actual range rather than clipping.
                arr = np.asarray(img, dtype=np.float64)
                arr = (arr - arr.min()) / max(float(arr.max() - arr.min()), 1.0) * 255.0
                img = Image.fromarray(arr.astype(np.uint8))
            img = img.convert("RGB")
            width, height = img.size
            if min(width, height) < MIN_SIDE:
                raise InputError(
                    f"portrait {path} is only {width}x{height} px; use a photo at least {MIN_SIDE} px on each side"
                )
            scale = max_side / max(width, height)
            if scale < 1.0:
                img = img.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.LANCZOS)
            return np.asarray(img, dtype=np.uint8).copy()
    except FileNotFoundError:
        raise InputError(f"portrait {path} does not exist; fix the path in the manifest") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(
            f"portrait {path} is not a readable image ({type(exc).__name__}); use a JPEG or PNG photo"
        ) from None
