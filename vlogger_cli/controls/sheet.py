"""`controls.png`: a contact sheet of the control maps of a few frames, for people to look at.

One row per frame: C^d (position as RGB), C^m (part colours), C^w (warped reference, invalid pixels
hatched), flow (hue = direction, brightness = magnitude) and, if a portrait is given, the warp preview.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np

from vlogger_cli.body.model import PARTS
from vlogger_cli.controls.render import ControlFrames
from vlogger_cli.io import atomic_path


def part_palette() -> np.ndarray:
    """(len(PARTS), 3) uint8 distinct colours, background black."""
    colors = [(0, 0, 0)]
    for i in range(1, len(PARTS)):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65, 0.95)
        colors.append((int(r * 255), int(g * 255), int(b * 255)))
    return np.array(colors, dtype=np.uint8)


def position_image(position: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) normalised positions in ~[-1, 1] -> uint8 RGB, background grey."""
    img = np.clip(position * 0.5 + 0.5, 0.0, 1.0) * 255
    img[~mask] = 40
    return img.astype(np.uint8)


def flow_image(flow: np.ndarray, scale: float | None = None) -> np.ndarray:
    """(H, W, 2) flow -> uint8 RGB: hue = direction, value = magnitude / scale (default: the max)."""
    mag = np.linalg.norm(flow, axis=-1)
    scale = float(mag.max()) if scale is None else scale
    hue = (np.arctan2(flow[..., 1], flow[..., 0]) / (2 * np.pi)) % 1.0
    val = np.clip(mag / max(scale, 1e-6), 0.0, 1.0)
    # Vectorised HSV -> RGB with full saturation.
    h6 = hue * 6.0
    x = val * (1 - np.abs(h6 % 2 - 1))
    zero = np.zeros_like(val)
    sector = np.floor(h6).astype(int) % 6
    choices = [np.stack(c, -1) for c in ((val, x, zero), (x, val, zero), (zero, val, x),
                                          (zero, x, val), (x, zero, val), (val, zero, x))]
    rgb = np.choose(sector[..., None], choices)
    return (rgb * 255).astype(np.uint8)


def warped_image(warped: np.ndarray, valid: np.ndarray) -> np.ndarray:
    img = warped.copy()
    hatch = ((np.add.outer(np.arange(img.shape[0]), np.arange(img.shape[1])) // 4) % 2).astype(bool)
    img[~valid] = np.where(hatch[~valid, None], 70, 30)
    return img


def contact_sheet(frames: ControlFrames, indices=None, portrait: np.ndarray | None = None,
                  frame_numbers=None) -> np.ndarray:
    """(rows*H + header, cols*W, 3) uint8 sheet of `indices` (default: first, middle, last)."""
    from PIL import Image, ImageDraw

    n = len(frames)
    indices = sorted({0, n // 2, n - 1}) if indices is None else list(indices)
    palette = part_palette()
    flow_scale = max(float(np.linalg.norm(frames.flow[indices], axis=-1).max()), 1e-6)
    rows = []
    for i in indices:
        tiles = [position_image(frames.position[i], frames.mask[i]), palette[frames.parts[i]],
                 warped_image(frames.warped[i], frames.warped_mask[i]), flow_image(frames.flow[i], flow_scale)]
        if portrait is not None:
            from vlogger_cli.controls.warp import warp_portrait

            tiles.append(warp_portrait(portrait, frames.flow[i], frames.cavity[i]))
        rows.append(np.concatenate(tiles, axis=1))
    sheet = np.concatenate(rows, axis=0)
    header = 14
    canvas = Image.new("RGB", (sheet.shape[1], sheet.shape[0] + header), (255, 255, 255))
    canvas.paste(Image.fromarray(sheet), (0, header))
    draw = ImageDraw.Draw(canvas)
    w = frames.position.shape[2]
    titles = ["C^d position", "C^m parts", "C^w warped ref", f"flow (max {flow_scale:.1f}px)"]
    if portrait is not None:
        titles.append("warp preview")
    for k, title in enumerate(titles):
        draw.text((k * w + 3, 1), title, fill=(0, 0, 0))
    numbers = indices if frame_numbers is None else frame_numbers
    h = frames.position.shape[1]
    for r, number in enumerate(numbers):
        draw.text((3, header + r * h + 2), f"frame {number}", fill=(255, 255, 255))
    return np.asarray(canvas)


def save_contact_sheet(path: str | Path, frames: ControlFrames, **kwargs) -> Path:
    """Write the sheet as PNG atomically; returns the path."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(contact_sheet(frames, **kwargs)).save(tmp, format="PNG")
    return path
