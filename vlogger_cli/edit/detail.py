"""The edited square at the footage's own resolution, with the footage's own fine detail.

Stage 2 renders an edit at the job's resolution R (256² with the demo weights) while the square it replaces in
the source is often two to four times larger (a face in 1080p footage). Upsampled alone, the edited face is
visibly softer than the footage around it: skin pores, lashes, hair and compression grain are gone.

The fine detail is put back from the source frame itself, at full resolution, following the edit's own flow
(controls/warp.py: for every output pixel, where its content sits in the source square):

    warped  = the full-resolution source square, warped by the flow (scaled to the square's size)
    detail  = warped - upsample(downsample(warped, R))    exactly what an R² picture cannot hold
    keep    = 1 where the edited R² square agrees with downsample(warped, R), 0 from DETAIL_TOLERANCE on
    output  = upsample(edited) + keep * detail

Where the edit only moved pixels (a turned head, a lip shape) the warped source is what the edit shows, and its
detail returns at full resolution; where stage 2 painted something the source does not hold there (teeth in an
opened mouth, lids over eyes that never closed), the pictures disagree and no foreign detail is pasted in (an
iris edge over a closed lid would be a ghost). Unedited pixels (zero flow, same colours) get the source back
exactly (the two bands add up to it): blended by the soft mask, the seam between edited and source stays
invisible.
"""

from __future__ import annotations

import numpy as np

KEEP_SIGMA = 1.0
"""The agreement is measured on the R² squares blurred by this sigma (R pixels): stage 2's sampling noise is
not a change of content."""

DETAIL_TOLERANCE = 14.0
"""Mean absolute difference (grey levels, blurred R² squares) at which no source detail is added: the edit
changed the picture there; half of it still adds half the detail. Kept skin differs from the warped source by
a few grey levels in the demo's diffusion edits, painted lids and teeth by tens."""


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def upsample(square: np.ndarray, side: int) -> np.ndarray:
    """(R, R, C) -> (side, side, C) float32, Lanczos (as edit/framing.py crops)."""
    import cv2

    out = cv2.resize(square.astype(np.float32), (side, side), interpolation=cv2.INTER_LANCZOS4)
    return out.reshape(side, side, *square.shape[2:])


def downsample(image: np.ndarray, size: int) -> np.ndarray:
    """(side, side, C) -> (size, size, C) float32, area averaging (no aliasing)."""
    import cv2

    return cv2.resize(image.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)


def warp_full(source: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """The (side, side, 3) source square warped by the (R, R, 2) backward flow of the R² square, float32."""
    import cv2

    side, r = source.shape[0], flow.shape[0]
    scale = side / r
    du = cv2.resize(flow[..., 0].astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR) * scale
    dv = cv2.resize(flow[..., 1].astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR) * scale
    grid_x, grid_y = np.meshgrid(np.arange(side, dtype=np.float32), np.arange(side, dtype=np.float32))
    return cv2.remap(source.astype(np.float32), grid_x + du, grid_y + dv, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def detail_keep(edited: np.ndarray, warped_small: np.ndarray, tolerance: float = DETAIL_TOLERANCE) -> np.ndarray:
    """(R, R) in [0, 1]: how much of the source's detail belongs at each pixel (module docstring), from the
    edited R² square and the warped source at R²."""
    change = np.abs(_blur(edited.astype(np.float32), KEEP_SIGMA) - _blur(warped_small, KEEP_SIGMA)).mean(axis=-1)
    return np.clip(1.0 - change / tolerance, 0.0, 1.0)


def full_resolution_square(edited: np.ndarray, source: np.ndarray, flow: np.ndarray | None) -> np.ndarray:
    """The edited (R, R, 3) uint8 square at the size of the source's (side, side, 3) square, with the source's
    detail where the edit kept its content (module docstring). flow: (R, R, 2) the edit's backward flow into
    this source square (None: no flow, zero motion). A square no larger than R is only resized."""
    side, r = source.shape[0], edited.shape[0]
    if side <= r:
        return upsample(edited, side).round().clip(0, 255).astype(np.uint8) if side != r else edited
    warped = warp_full(source, flow) if flow is not None else source.astype(np.float32)
    warped_small = downsample(warped, r)
    keep = np.clip(upsample(detail_keep(edited, warped_small), side), 0.0, 1.0)[..., None]
    detail = warped - upsample(warped_small, side)
    return (upsample(edited, side) + keep * detail).round().clip(0, 255).astype(np.uint8)


def high_frequency_energy(image: np.ndarray, mask: np.ndarray | None = None, *, sigma: float = 1.0) -> float:
    """Mean absolute difference of grey levels from their Gaussian blur (sigma pixels) inside `mask`: how much
    fine detail a picture holds there (a softer picture, less). For "no softer than the footage" checks."""
    grey = image.astype(np.float32).mean(axis=-1) if image.ndim == 3 else image.astype(np.float32)
    energy = np.abs(grey - _blur(grey, sigma))
    return float(energy[mask].mean() if mask is not None else energy.mean())
