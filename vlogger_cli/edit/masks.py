"""Where an edit regenerates pixels, where it keeps them, and how the two meet (soft borders).

Per frame, at the edit's control resolution R (maps of controls/render.py):

- EDITED region: where the edited body differs from the tracked one: the pixels whose backward flow to
  the source frame moves by more than FLOW_EPS (the mesh moved there: closing lids, a smile, a turned
  head), plus the C^m parts an edit redraws (`eyes` for --eyes, the mouth parts when the mouth is
  re-driven), in either body; head edits also take the flow outside the body (hair and background that
  move with the head). Dilated by DILATE and feathered by FEATHER (fractions of R) into `edit` in [0, 1].
- KEEP region (`--keep-lips`): C^m `lips` + `mouth_interior` of the tracked and edited bodies, dilated by
  KEEP_DILATE: those pixels stay as filmed.
- `blend` in [0, 1], what the final video takes from the generated frame (the rest is the source frame at
  full resolution): `edit`, with the keep region and a feathered band around it cut out — 0 exactly on
  the kept pixels, so they are the source's own. When the head moves (head edits) the kept mouth moves
  with it: it is then part of the blend, taken from the flow-warped source (held as known pixels).
- `known` (stage 2's inpainting): pixels held fixed while the rest is denoised: everything outside the
  edited region, and the kept region.
"""

from __future__ import annotations

import numpy as np

from vlogger_cli.body.model import PART_INDEX

FLOW_EPS = 0.25
"""Pixels (at R) a surface point must move to count as edited (float noise of an unchanged mesh is ~1e-4)."""
DILATE = 0.02
FEATHER = 0.012
KEEP_DILATE = 0.012
MOUTH_PARTS = ("lips", "mouth_interior")


def _disk(radius: float) -> np.ndarray:
    r = max(1, int(round(radius)))
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= r * r


def dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    """(H, W) bool grown by a disk of `radius` pixels."""
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, structure=_disk(radius)) if mask.any() else mask.copy()


def feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) bool -> float32 [0, 1]: 1 on the mask, a Gaussian fall-off outside it (never below the mask)."""
    from scipy.ndimage import gaussian_filter

    if not mask.any():
        return np.zeros(mask.shape, np.float32)
    # grow by ~2 sigma first, then blur: the blurred edge stays >= 1 on the original mask
    soft = gaussian_filter(dilate(mask, 2 * sigma).astype(np.float32), sigma)
    return np.maximum(np.clip(soft, 0.0, 1.0), mask.astype(np.float32))


def parts_mask(parts: np.ndarray, names) -> np.ndarray:
    return np.isin(parts, [PART_INDEX[n] for n in names])


def frame_masks(src_parts: np.ndarray, edit_parts: np.ndarray, flow: np.ndarray, body: np.ndarray, *,
                redraw_parts=(), keep_lips: bool = False, head_moves: bool = False, weight: float = 1.0,
                also: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """One frame's masks (module docstring). src_parts / edit_parts (H, W) uint8 C^m of the tracked and
    edited bodies; flow (H, W, 2) backward flow edited -> source; body (H, W) bool edited body pixels;
    weight: the frame's edit weight (0: untouched frame, nothing edited); also: (H, W) bool more edited
    pixels (the source's own pixels an edit changes before warping them: edit/lids.py)."""
    size = src_parts.shape[0]
    moved = np.linalg.norm(flow, axis=-1) > FLOW_EPS
    if not head_moves:
        moved &= body
    edited = moved | parts_mask(src_parts, redraw_parts) | parts_mask(edit_parts, redraw_parts)
    if also is not None:
        edited |= also
    if weight <= 0:
        edited[:] = False
    edit = feather(dilate(edited, DILATE * size), FEATHER * size) if edited.any() else np.zeros(edited.shape, np.float32)
    keep = np.zeros(edited.shape, bool)
    if keep_lips:
        keep = dilate(parts_mask(src_parts, MOUTH_PARTS) | parts_mask(edit_parts, MOUTH_PARTS), KEEP_DILATE * size)
    if keep.any() and not head_moves:
        blend = edit * (1.0 - feather(keep, FEATHER * size))
    else:
        blend = edit
    known = (edit <= 0.0) | keep
    return {"edit": edit.astype(np.float32), "keep": keep, "blend": blend.astype(np.float32), "known": known}


def redraw_parts(options) -> tuple[str, ...]:
    """The C^m parts an edit redraws whatever the flow says (their look changes, not only their place)."""
    parts: list[str] = []
    if options.eyes != "source":
        parts.append("eyes")
    if options.new_speech and not options.keep_lips:
        parts.extend(MOUTH_PARTS)
    return tuple(parts)


def mask_overlay(image: np.ndarray, blend: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Preview: the frame with the regenerated region tinted red (by its blend weight) and kept pixels green."""
    out = image.astype(np.float32)
    red = np.array([255.0, 40.0, 40.0])
    green = np.array([40.0, 220.0, 80.0])
    a = 0.55 * blend[..., None]
    out = out * (1 - a) + red * a
    k = 0.45 * keep[..., None]
    out = out * (1 - k) + green * k
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
