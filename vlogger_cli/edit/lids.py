"""Closed lids for `--eyes closed` on a video that never shows them: the skin above each eye unfolds over it.

The body mesh closes its lids, but a flow-warp textures them from where the lid's surface sat in the source
frame: with the eye open, a strip a pixel or two tall above the lashes, and since the mesh's eye sits a
pixel or so off the real one at 256², partly the iris below it (the catchlight and the iris come out as
light blotches and a dark smear). Stretched five to ten times over the eye, it is a soft smudge at any
resolution, and stage 2 at 128-256² cannot paint a lid sharper than the footage around it.

A real closing lid unfolds the skin folded above the eye. So before anything is warped, the source square
itself gets its eyes closed in 2-D, per column of pixels, from the tracked face landmarks (the real eye,
not the mesh's): the band of skin from LID_BAND opening heights above the upper lid (less where a glasses
rim crosses it: lid_bands) down to the lashes is spread over that band plus the part of the opening the lid
covers, the lashes squashed onto the closed lid's edge; below it the eye (a partly closed lid) and the lower
lid stay where they are; the lid's colour moves towards the skin under the eye (_skin_tint). The skin
stretches ~1.5-2x instead of 5-10x, so at the footage's own resolution (edit/detail.py, which pastes the
source's detail back where the edit kept the warped source) the lid keeps the skin's grain and the lash
line stays a line. The same closing is applied to the job's squares at the
edit's resolution (what the flow warps and stage 2 conditions on) and to the full-resolution squares at
export, so the two agree and the detail is kept. Frames textured by a real blink of the video
(pipeline/edit.py `texture_donors`) do not need it.
"""

from __future__ import annotations

import numpy as np

LID_BAND = 2.0
"""Height of the skin band above the eye that unfolds over it, in heights of the eye's opening (at that
column): larger spreads the lid over more skin (less stretch) but moves more of the brow area down."""

UPPER_LIDS = {  # mediapipe face-mesh indices, corner to corner along the upper lid (landmarks.py EYES)
    "left": (362, 398, 384, 385, 386, 387, 388, 466, 263),
    "right": (33, 246, 161, 160, 159, 158, 157, 173, 133),
}
LOWER_LIDS = {
    "left": (362, 382, 381, 380, 374, 373, 390, 249, 263),
    "right": (33, 7, 163, 144, 145, 153, 154, 155, 133),
}
EASE = 1.5
"""Shape of the unfolding: row y moves down by D x u^e (u: 0 at the band's top, 1 where the lashes begin; D
how far the band's last row moves).
e = 1 spreads the stretch evenly (every row of the band moves); up to EASE the band's upper rows move
least (what lies there barely bends), as long as the skin next to the lash line stretches at most 2x."""
MIN_BAND = 1.0
"""The band is never shorter than this (x the opening), line or not: a shorter one would stretch a few rows of
lashes over the whole eye (a glasses rim closer to the lashes than that bends a little instead)."""
SKIP_LASHES = 0.4
"""The lowest part of the band (x the opening) is lashes and lid: lines there do not end the band."""
LINE_CONTRAST = 18.0
"""Grey levels by which a row must differ from the mean of the rows w above and below it (a thin line) to
end the band: a glasses rim (30-80) does, the skin's crease (under ~12 at 256²) does not."""
SKIN_TINT = 0.75
"""How far a closed lid's colour moves from the unfolded skin's towards the skin under the eye (_skin_tint):
a real lid is a little darker than the cheek."""
LASH_LINE = 0.3
"""Thickness of the upper lashes above the eye's outline, in openings: they move down to the closed lid's
edge, squashed by LASH_SQUASH (a closed eye's lash line is thinner than an open eye's lashes seen from the
front), the skin above them unfolds over the rest, and they keep their colour (_skin_tint)."""
LASH_SQUASH = 0.5  # (LASH_LINE)
MOVED = 0.25
"""Pixels (of the square) a row must move by to count as changed (the edit's masks: pipeline/edit.py)."""
SMOOTH_FRAMES = 1.0
"""Gaussian sigma (frames) smoothing the eye outlines over time: detector jitter of a pixel would make the
unfolded lid shimmer."""


def eye_outlines(face: np.ndarray, lost: np.ndarray) -> np.ndarray:
    """(T, 2, 2, 9, 2) float32 the upper and lower lid outlines of the (left, right) eye per frame in video
    pixels, from the tracked face mesh (T, 478, 2|3); smoothed over time; lost frames interpolated."""
    from scipy.ndimage import gaussian_filter1d

    idx = [[UPPER_LIDS[s], LOWER_LIDS[s]] for s in ("left", "right")]
    pts = np.asarray(face, np.float64)[:, np.asarray(idx), :2]  # (T, 2, 2, 9, 2)
    seen = ~np.asarray(lost, bool)
    if seen.any() and not seen.all():
        t = np.arange(len(pts))
        flat = pts.reshape(len(pts), -1)
        for j in range(flat.shape[1]):
            flat[~seen, j] = np.interp(t[~seen], t[seen], flat[seen, j])
        pts = flat.reshape(pts.shape)
    if len(pts) > 1:
        pts = gaussian_filter1d(pts, SMOOTH_FRAMES, axis=0, mode="nearest")
    return pts.astype(np.float32)


def in_square(outlines: np.ndarray, framing, size: int) -> np.ndarray:
    """One frame's outlines (2, 2, 9, 2) in video pixels -> pixels of its framed square at size x size (the
    integer box edit/framing.py crops)."""
    scale = size / int(framing.side)
    return (outlines - np.array([int(framing.left), int(framing.top)], np.float32)) * scale


def _lid_lines(outlines: np.ndarray, size: int):
    """Per eye: (columns, upper lid y, opening height h) over the eye's columns of a size x size square."""
    out = []
    for upper, lower in outlines:
        x0, x1 = max(upper[:, 0].min(), 0.0), min(upper[:, 0].max(), float(size))
        cols = np.arange(int(np.floor(x0)), int(np.ceil(x1)))
        cols = cols[(cols >= 0) & (cols < size)]
        xc = cols + 0.5
        order_u, order_l = np.argsort(upper[:, 0]), np.argsort(lower[:, 0])
        y_up = np.interp(xc, upper[order_u, 0], upper[order_u, 1])
        y_low = np.interp(xc, lower[order_l, 0], lower[order_l, 1])
        out.append((cols, y_up, np.maximum(y_low - y_up, 0.0)))
    return out


def lid_bands(guide: np.ndarray, outlines: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per eye: (x, band) at the eye's column centres of the (S, S, 3) `guide` square (its pixels; outlines
    in them): the height of the skin band above the upper lid that unfolds, LID_BAND x the opening, but
    ending below the first thin line the band meets going up from the lid (a glasses rim, a brow): moved, it
    would bend; never below MIN_BAND x the opening. Measured once on one square and used at every resolution
    (close_lids `bands`), so that the edit's squares and the full-resolution footage get the same lids."""
    from scipy.ndimage import gaussian_filter1d, median_filter

    size = guide.shape[0]
    grey = guide.astype(np.float32).mean(axis=-1)
    w = max(1, int(round(size / 128)))  # a rim is ~2 px thick at 256²
    line = np.abs(grey - 0.5 * (np.roll(grey, w, axis=0) + np.roll(grey, -w, axis=0)))
    bands = []
    for cols, y_up, h in _lid_lines(outlines, size):
        band = LID_BAND * h
        for k, (x, y0, hk) in enumerate(zip(cols, y_up, h)):
            # rows searched, upwards from above the lashes to the band's top
            lo, hi = int(np.floor(y0 - band[k])), int(np.floor(y0 - max(SKIP_LASHES * hk, 2 * w)))
            hit = next((y for y in range(min(hi, size - 1 - w), max(lo, w) - 1, -1) if line[y, x] > LINE_CONTRAST),
                       None)
            if hit is not None:
                band[k] = max(0.0, y0 - (hit + 0.5 + w))  # the band ends below the first line
        if len(band) > 4:
            band = gaussian_filter1d(median_filter(band, 5, mode="nearest"), 1.0, mode="nearest")
        bands.append((cols + 0.5, np.clip(band, MIN_BAND * h, LID_BAND * h)))
    return bands


def lid_source_rows(outlines: np.ndarray, cover: float, size: int, bands, scale: float = 1.0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 2-D lid closing of one square as a row remap: (size, size) float32 source row (pixel-centre
    coordinates) of every output pixel, the (size, size) bool pixels it moves by more than MOVED, and the
    (size, size) float32 share of each pixel the remap takes (1 inside, partial on the lash line's row).
    `outlines` (2, 2, 9, 2) in the square's pixels; `cover` in [0, 1] the part of each eye's opening the
    upper lid covers; `bands` from lid_bands on a square `scale` times smaller than this one."""
    return _rows(_eyes(outlines, size, bands, scale), cover, size)


def _eyes(outlines: np.ndarray, size: int, bands, scale: float) -> list:
    """Per eye with columns on the square: (columns, upper lid y, opening h, top y of the band that unfolds)."""
    out = []
    for (cols, y_up, h), (bx, bh) in zip(_lid_lines(outlines, size), bands):
        if len(cols) and len(bx):
            out.append((cols, y_up, h, y_up - np.interp((cols + 0.5) / scale, bx, bh) * scale))
    return out


def _rows(eyes: list, cover: float, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """lid_source_rows of the eyes' geometry (_eyes)."""
    ys = np.arange(size, dtype=np.float32)[:, None] + 0.5
    rows = np.repeat(ys, size, axis=1)
    moved, alpha = np.zeros((size, size), bool), np.zeros((size, size), np.float32)
    if cover <= 0:
        return rows, moved, alpha
    for cols, y_up, h, top in eyes:  # the band of skin that unfolds starts at `top`
        margin = y_up + cover * h            # and ends where the lid's lash line comes to rest
        lashes = LASH_LINE * h               # the lashes above the lid's edge: squashed to the closed lid's edge
        edge = margin - LASH_SQUASH * lashes  # where the skin ends and the lashes begin on the closed lid
        shift = cover * h + (1 - LASH_SQUASH) * lashes  # how far the skin's last row moves down
        span = np.maximum(edge - top, 1e-6)
        inside = (ys >= top) & (ys < margin + 0.5) & (h > 1e-3)
        u = np.clip((ys - top) / span, 0.0, 1.0)
        # the ease, where the band is long enough for it: the skin next to the lash line stretches at most 2x
        ease = np.clip(0.5 * span / np.maximum(shift, 1e-6), 1.0, EASE)
        skin = ys - shift * u ** ease  # 0 at the band's top, `shift` where the lashes begin
        lash = (y_up - lashes) + (ys - edge) / LASH_SQUASH
        source = np.where(ys < edge, skin, lash)
        rows[:, cols] = np.where(inside, source, rows[:, cols])
        # the pixel row the lash line ends in is covered in part: its share (no staircase along the lid)
        alpha[:, cols] = np.where(inside, np.clip(margin + 0.5 - ys, 0.0, 1.0), alpha[:, cols])
        moved[:, cols] |= inside & (np.abs(source - ys) > MOVED)
    return rows, moved, alpha


def close_lids(square: np.ndarray, outlines: np.ndarray, cover: float, bands=None, scale: float = 1.0) -> np.ndarray:
    """The (S, S, 3) uint8 square with its eyes closed in 2-D (module docstring) by `cover` in [0, 1];
    `outlines` (2, 2, 9, 2) the eye outlines in the square's pixels (in_square); `bands` (lid_bands) measured
    on a square `scale` times smaller (default: on this one)."""
    import cv2

    size = square.shape[0]
    if cover <= 0:
        return square
    bands = lid_bands(square, outlines) if bands is None else bands
    eyes = _eyes(outlines, size, bands, scale)
    rows, _, alpha = _rows(eyes, cover, size)
    if not alpha.any():
        return square
    cols = np.repeat(np.arange(size, dtype=np.float32)[None, :], size, axis=0)
    out = cv2.remap(square, cols, rows - 0.5, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    out = _skin_tint(out.astype(np.float32), square, eyes, cover)
    mixed = alpha[..., None] * out + (1.0 - alpha[..., None]) * square.astype(np.float32)
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def _skin_tint(out: np.ndarray, square: np.ndarray, eyes: list, cover: float) -> np.ndarray:
    """The unfolded lids (float (S, S, 3)) with their colour moved to the skin's: what unfolds is the skin
    right above the lashes, often in the shadow of the brow (or a glasses rim) and made up, and a lid that
    dark reads as an open eye. Per column, the lid's mean colour is shifted SKIN_TINT of the way to the mean
    of the skin under the eye (rows 0.5-1.5 openings below the lower lid), fully in the lid's middle, not at
    all in the band's upper half nor on the lashes (LASH_LINE); the lid keeps its own texture (only its mean
    moves)."""
    from scipy.ndimage import gaussian_filter1d

    size = square.shape[0]
    ys = np.arange(size, dtype=np.float32)[:, None] + 0.5
    for cols, y_up, h, top in eyes:
        if len(cols) < 2:
            continue
        margin, y_low = y_up + cover * h, y_up + h
        lash = np.maximum(LASH_SQUASH * LASH_LINE * h, 1e-6)  # the lash line's rows on the closed lid
        lid = (ys >= y_up) & (ys < margin - lash)
        under = (ys >= y_low + 0.5 * h) & (ys < y_low + 1.5 * h) & (ys < size)
        ok = lid.any(axis=0) & under.any(axis=0)
        if not ok.any():
            continue
        block, src = out[:, cols], square[:, cols].astype(np.float32)
        mean = lambda img, m: (img * m[..., None]).sum(0) / np.maximum(m.sum(0), 1)[:, None]  # (n, 3)
        shift = np.where(ok[:, None], mean(src, under) - mean(block, lid), 0.0)
        shift = gaussian_filter1d(shift, max(1.0, 0.1 * len(cols)), axis=0, mode="nearest")
        start = y_up - 0.5 * (y_up - top)  # the band's upper half (a rim, the brow's shadow) keeps its colour
        ramp_in = np.clip((ys - start) / np.maximum(y_up - start, 1e-6), 0.0, 1.0)
        ramp_out = np.clip((margin - lash - ys) / (0.5 * lash), 0.0, 1.0)
        weight = (ramp_in * ramp_out * (ys >= top) * (h > 1e-3))[..., None]
        out[:, cols] = block + weight * shift[None, :, :] * (SKIN_TINT * cover)
    return out
