"""The inside of the mouth in the warp: teeth that ride with the jaws, a dark cavity between them.

The body mesh has a mouth cavity but no teeth. Warped along the mesh, the inside of an opening mouth shows
the portrait where those cavity points were in the portrait: between the portrait's lips. So the teeth of
a smiling portrait stretch with the opening, and a closed-mouth portrait's lip line is smeared over it —
"stretched lips", the flow-warp's signature artefact, which the stage-2 residual inherited (C^w and the
flow-warped portrait are its inputs).

Here the opening (C^m `mouth_interior` pixels of a frame) is redrawn per column of pixels as two rigid
plates and a gap, which is how a mouth opens: the upper teeth are fixed to the skull, the lower ones to the
jaw.

- **Upper plate**: a pixel d rows below the frame's upper inner lip shows the portrait d rows below that
  lip's place in the portrait (the flow of the lip pixel just above the opening), if that is still in the
  upper half of the portrait's own opening (above its bite line, half way between its inner lips).
- **Lower plate**: likewise from the lower inner lip, below the bite line.
- **Cavity**: neither. The portrait does not show it (C^w unseen), and the warp shades it: the colour of
  the lips around it, darkened (`shade_cavity`).

A frame opened wider than the portrait gets the portrait's teeth at the lips and a dark gap between them;
one opened less gets the upper teeth over the lower ones (the upper plate wins); a portrait with closed
lips has no plates, so the whole opening is cavity. Everything outside the opening is untouched.
"""

from __future__ import annotations

import numpy as np

from vlogger_cli.body.model import PART_INDEX

MOUTH = PART_INDEX["mouth_interior"]

CAVITY_SHADE = 0.4
"""The cavity's colour: the colour of the lips around it (a ring CAVITY_RING pixels wide, LIP_PERCENTILE) times this.
Taken from the frame itself, so it follows the skin, the lips and the light of any portrait. Measured on
real footage (the eight training clips of docs/REAL-VIDEO.md): the real frames are 0.62-0.74 of the lips'
colour where the controls say cavity (their mean, blurred by the mesh's fit: teeth, tongue and lip edges
are in it). 0.4 is darker than that mean on purpose: it reads as the inside of a mouth on the demo
portrait, where 0.65 reads as a hole (docs/REAL-VIDEO.md, "The inside of the mouth")."""

CAVITY_RING = 2
"""Pixels around the cavity whose colour it takes: the inner lips (and teeth where the plates show them)."""

LIP_PERCENTILE = 25
"""The ring's colour is its 25th percentile per channel, not its median: where the plates show teeth next
to the gap, the bright teeth must not turn the cavity grey."""

CAVITY_EDGE = 0.5
"""Gaussian sigma (pixels) of the cavity's edge: the pixel-stepped outline of the mesh's opening,
anti-aliased against the teeth and lips."""

CAVITY_FULL = 0.012
"""A column's gap is drawn fully dark from this height on (fraction of the frame's height: 3 px at 256²),
fainter below. Lips just parted by a pixel show a line of half-lit teeth and lip edge, not a black one, and
where the mesh's gap flickers between 0 and 1 pixel from column to column (or frame to frame) the shadow
fades instead of drawing a dashed line."""


def mouth_inside(parts: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) C^m labels and (H, W, 2) backward body flow -> (the flow with the opening's pixels following
    the plates, (H, W) bool cavity). Columns are handled independently; the lip pixel just above (below)
    a column's opening gives its upper (lower) plate's flow."""
    inside = parts == MOUTH
    cavity = np.zeros(parts.shape, bool)
    if not inside.any():
        return flow, cavity
    h = parts.shape[0]
    cols = np.flatnonzero(inside.any(axis=0))
    top = np.argmax(inside[:, cols], axis=0)                  # first row of the opening, per column
    bottom = h - 1 - np.argmax(inside[::-1, cols], axis=0)    # its last row
    upper = flow[np.maximum(top - 1, 0), cols]                # (n, 2) the upper inner lip's flow
    lower = flow[np.minimum(bottom + 1, h - 1), cols]         # the lower inner lip's
    # The opening's edges are at rows `top` and `bottom + 1` (pixel edges); in the portrait they lie
    # where the lips' flows take them, and the bite line half way between.
    bite = (top + upper[:, 1] + bottom + 1 + lower[:, 1]) / 2

    ys, xs = np.nonzero(inside)
    column = np.searchsorted(cols, xs)
    centre = ys + 0.5
    on_upper = centre + upper[column, 1] < bite[column]
    on_lower = ~on_upper & (centre + lower[column, 1] >= bite[column])
    out = flow.copy()
    out[ys, xs] = np.where(on_upper[:, None], upper[column], lower[column])
    cavity[ys, xs] = ~(on_upper | on_lower)
    return out, cavity


def shade_cavity(frames: np.ndarray, cavity: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) float colours, (..., H, W) bool cavity -> the colours with the cavity's colour
    (CAVITY_SHADE) blended in (in place): by the height of each column's gap (CAVITY_FULL), through an
    anti-aliased (CAVITY_EDGE) mask. Only the box around the cavities is touched: the mouth is a few hundred
    pixels of a frame, and this runs on every warped frame (the warp renderer, stage 2's inputs)."""
    from scipy.ndimage import gaussian_filter

    box = _box(cavity, margin=2 * _EDGE_RADIUS + 1)  # the blur and the ring stay inside it, as on the whole frame
    hole = cavity[box]
    rows = hole.sum(axis=-2, keepdims=True)  # (..., 1, w) the gap's height per column
    depth = np.clip(rows / (CAVITY_FULL * cavity.shape[-2]), 0.0, 1.0)
    sigma = (0,) * (cavity.ndim - 2) + (CAVITY_EDGE, CAVITY_EDGE)
    alpha = gaussian_filter(hole * depth.astype(np.float32), sigma=sigma)[..., None]
    pixels = box + (slice(None),)  # the same box of the colours (..., H, W, 3)
    inside = frames[pixels]
    frames[pixels] = inside * (1 - alpha) + cavity_colour(inside, hole)[..., None, None, :] * alpha
    return frames


_EDGE_RADIUS = max(int(4.0 * CAVITY_EDGE + 0.5), CAVITY_RING)  # gaussian_filter's (truncate 4) and the ring's reach


def _box(mask: np.ndarray, margin: int) -> tuple:
    """Index of the (..., rows, cols) box holding every True of (..., H, W) `mask`, `margin` pixels wider."""
    ys, xs = np.nonzero(mask.reshape(-1, *mask.shape[-2:]).any(axis=0))
    h, w = mask.shape[-2:]
    return (..., slice(max(ys.min() - margin, 0), min(ys.max() + 1 + margin, h)),
            slice(max(xs.min() - margin, 0), min(xs.max() + 1 + margin, w)))


def cavity_colour(frames: np.ndarray, cavity: np.ndarray) -> np.ndarray:
    """(..., 3) the cavity's colour of each frame: CAVITY_SHADE x the LIP_PERCENTILE colour of the ring of
    pixels around its cavity (0 where a frame has none)."""
    from scipy.ndimage import binary_dilation

    flat_frames = frames.reshape(-1, *frames.shape[-3:])
    flat = cavity.reshape(-1, *cavity.shape[-2:])
    out = np.zeros((len(flat), 3), np.float32)
    for i, (frame, hole) in enumerate(zip(flat_frames, flat)):
        if hole.any():
            ring = binary_dilation(hole, iterations=CAVITY_RING) & ~hole
            out[i] = CAVITY_SHADE * np.percentile(frame[ring], LIP_PERCENTILE, axis=0)
    return out.reshape(*cavity.shape[:-2], 3)
