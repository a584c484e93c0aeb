"""Still previews of a video: a first / middle / last frame strip, and a general contact sheet.

Both are PNGs written atomically; the contact sheet also serves the control-map and motion sheets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vlogger_cli.io import atomic_path

BACKGROUND = (24, 24, 24)
TEXT_COLOUR = (235, 235, 235)
PAD = 4  # pixels around every cell
FONT_SIZE = 11


def preview_indices(num_frames: int) -> list[int]:
    """The first, middle and last frame indices, without repeats (a 2-frame video gives [0, 1])."""
    if num_frames <= 0:
        raise ValueError("no frames to preview")
    return sorted({0, (num_frames - 1) // 2, num_frames - 1})


def write_preview(
    frames_or_sequence: Sequence,
    out_path: str | os.PathLike,
    *,
    labels: bool = True,
    fps: float | None = None,
) -> Path:
    """Write a PNG strip of the first, middle and last frames of a video.

    frames_or_sequence: anything with len() and indexing that gives (H, W, 3) uint8 frames: a list,
        an (N, H, W, 3) array, a lazy frame sequence; a list of exactly three frames shows those three.
    labels: a caption over each frame, "#index", plus "t.tt s" when `fps` is given.
    """
    indices = preview_indices(len(frames_or_sequence))
    images = [frames_or_sequence[i] for i in indices]
    titles = None
    if labels:
        titles = [f"#{i}" + (f"  {i / fps:.2f} s" if fps else "") for i in indices]
    return contact_sheet(images, len(images), out_path, titles=titles)


def contact_sheet(
    images: Sequence,
    cols: int,
    out_path: str | os.PathLike,
    titles: Sequence[str] | None = None,
) -> Path:
    """Write a grid of images (row-major, `cols` per row) with an optional title over each, as PNG.

    images: (H, W) / (H, W, 1) / (H, W, 3) / (H, W, 4) uint8 arrays or PIL images; sizes may differ,
            each is centred in a cell as large as the largest image (or its title).
    """
    with atomic_path(out_path) as tmp:
        render_contact_sheet(images, cols, titles).save(tmp, format="PNG")
    return Path(out_path)


def render_contact_sheet(images: Sequence, cols: int, titles: Sequence[str] | None = None) -> Image.Image:
    """The contact sheet as an RGB PIL image (what `contact_sheet` saves)."""
    if len(images) == 0:
        raise ValueError("contact sheet needs at least one image")
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    tiles = [_to_pil(image, i) for i, image in enumerate(images)]
    font = ImageFont.load_default(size=FONT_SIZE)
    title_height = 0
    title_width = 0
    if titles is not None:
        boxes = [font.getbbox(str(title)) for title in titles]
        title_height = max(box[3] for box in boxes) + PAD
        title_width = max(box[2] for box in boxes)

    cell_w = max(max(tile.width for tile in tiles), title_width)
    cell_h = max(tile.height for tile in tiles) + title_height
    cols = min(cols, len(tiles))
    rows = -(-len(tiles) // cols)
    sheet = Image.new("RGB", (PAD + cols * (cell_w + PAD), PAD + rows * (cell_h + PAD)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i, tile in enumerate(tiles):
        x0 = PAD + (i % cols) * (cell_w + PAD)
        y0 = PAD + (i // cols) * (cell_h + PAD)
        if titles is not None:
            draw.text((x0, y0), str(titles[i]), fill=TEXT_COLOUR, font=font)
        sheet.paste(tile, (x0 + (cell_w - tile.width) // 2, y0 + title_height))
    return sheet


def _to_pil(image, index: int) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"image {index} is {array.dtype}; convert it to uint8 (0..255) first")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ValueError(f"image {index} has shape {array.shape}; expected (H, W), (H, W, 3) or (H, W, 4)")
    return Image.fromarray(array).convert("RGB")
