"""Dense flow from the body mesh to the whole image, and the `renderer: warp` preview.

The flow of a frame is BACKWARD: `flow[i, j] = (du, dv)` says that output pixel (j + 0.5, i + 0.5) shows the
reference (portrait) content at (j + 0.5 + du, i + 0.5 + dv) — the reference->frame correspondence stored
where a warp needs it. On the body it is exact (the mesh's own motion, control maps' C^w uses the same
points); outside the body it is filled in by pull-push interpolation (smooth, follows the nearest body
parts, so hair and clothes move with the head and shoulders) and fades to zero with the distance to the
body (a Gaussian of `falloff` x the image's longer side), so the far background stays still.
"""

from __future__ import annotations

import numpy as np

FALLOFF = 0.1
"""Default width of the flow's fade-out outside the body, as a fraction of the image's longer side."""


SMOOTHING = 1.5
"""Gaussian sigma (pixels) smoothing the filled-in flow outside the body."""


def sample_bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Sample (H, W, C) or (H, W) `image` at continuous pixel coordinates (..., 2) (origin at the top-left
    corner, pixel centres at +0.5; camera.py), clamping at the border. Returns (..., C) / (...) float32."""
    h, w = image.shape[:2]
    channels = image.shape[2:]
    flat = image.reshape(h * w, -1).astype(np.float32, copy=False)
    x = np.clip(uv[..., 0].astype(np.float32) - 0.5, 0.0, w - 1.0)
    y = np.clip(uv[..., 1].astype(np.float32) - 0.5, 0.0, h - 1.0)
    x0 = np.minimum(x.astype(np.int64), max(w - 2, 0))
    y0 = np.minimum(y.astype(np.int64), max(h - 2, 0))
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    dx = np.where(x0 + 1 < w, 1, 0)
    i00 = y0 * w + x0
    i10 = np.where(y0 + 1 < h, i00 + w, i00)
    top = flat[i00] * (1 - fx) + flat[i00 + dx] * fx
    bottom = flat[i10] * (1 - fx) + flat[i10 + dx] * fx
    out = top * (1 - fy) + bottom * fy
    return out.reshape(uv.shape[:-1] + channels)


def pull_push(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill (H, W, C) `values` outside boolean `mask` smoothly from the values inside (Gortler et al. 1996,
    "The Lumigraph", pull-push): average down a pyramid (pull), then blend each level's own average with
    the bilinearly upsampled coarser level where its coverage is partial (push)."""
    values = np.asarray(values, dtype=np.float32)
    weight = mask.astype(np.float32)
    pyramid = []
    v, w = values * weight[..., None], weight
    while True:
        pyramid.append((v, w))
        if max(v.shape[:2]) <= 1 or not w.any():
            break
        v, w = _sum_down(v), _sum_down(w)
    v, w = pyramid.pop()
    filled = v / np.maximum(w, 1e-12)[..., None]
    for v, w in reversed(pyramid):
        up = _upsample(filled, v.shape[:2])
        coverage = np.clip(w, 0.0, 1.0)[..., None]
        filled = v / np.maximum(w, 1e-12)[..., None] * coverage + up * (1.0 - coverage)
    return filled


def extrapolate_flow(flow: np.ndarray, mask: np.ndarray, *, falloff: float = FALLOFF) -> np.ndarray:
    """(H, W, 2) flow known inside `mask` -> dense flow: unchanged inside, pull-push filled, smoothed and
    faded outside. An empty mask gives zero flow. Images over 192 px are filled at half resolution (the
    fill is smooth anyway), which keeps 512² frames fast."""
    if not mask.any():
        return np.zeros_like(flow, dtype=np.float32)
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    h, w = mask.shape
    step = 2 if max(h, w) > 192 else 1
    if step > 1:
        coarse_w = _sum_down(mask.astype(np.float32))
        coarse = _sum_down(flow * mask[..., None]) / np.maximum(coarse_w, 1e-12)[..., None]
        coarse_mask = coarse_w > 0
    else:
        coarse, coarse_mask = flow, mask
    # A light blur removes pull-push's blockiness; the body's own flow is put back exactly below.
    sigma = SMOOTHING / step
    filled = gaussian_filter(pull_push(coarse, coarse_mask), sigma=(sigma, sigma, 0))
    distance = distance_transform_edt(~coarse_mask) * step
    fade = np.exp(-np.square(distance / max(falloff * max(h, w), 1e-6))).astype(np.float32)
    out = filled * fade[..., None]
    if step > 1:
        out = _upsample(out, (h, w))
    out[mask] = flow[mask]
    return out.astype(np.float32, copy=False)


def warp_portrait(portrait: np.ndarray, flow: np.ndarray, cavity: np.ndarray | None = None) -> np.ndarray:
    """The `renderer: warp` preview frame(s): (H, W, 3) uint8 portrait + backward flow (..., H, W, 2) ->
    (..., H, W, 3) uint8. The portrait must already be at the flow's resolution. `cavity` (..., H, W) bool,
    the mouth's unseen inside (ControlFrames.cavity), is shaded dark (mouth.shade_cavity)."""
    h, w = flow.shape[-3:-1]
    if portrait.shape[:2] != (h, w):
        raise ValueError(f"portrait is {portrait.shape[:2]}, the flow {h}x{w}: resize the portrait first")
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32) + 0.5, np.arange(h, dtype=np.float32) + 0.5),
                    axis=-1)
    out = sample_bilinear(portrait, grid + flow)
    if cavity is not None and cavity.any():
        from vlogger_cli.controls.mouth import shade_cavity

        out = shade_cavity(out, cavity)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _sum_down(a: np.ndarray) -> np.ndarray:
    """2x2 box sum with zero padding to even sizes."""
    h, w = a.shape[:2]
    if h % 2 or w % 2:
        pad = [(0, h % 2), (0, w % 2)] + [(0, 0)] * (a.ndim - 2)
        a = np.pad(a, pad)
    return a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]


def _upsample(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear 2x upsampling (cell centres aligned, edges clamped) cropped to `shape`: separable
    [1/4, 3/4] / [3/4, 1/4] taps, by slicing."""
    for axis in (0, 1):
        a = np.moveaxis(a, axis, 0)
        before = np.concatenate([a[:1], a[:-1]])
        after = np.concatenate([a[1:], a[-1:]])
        up = np.empty((2 * a.shape[0],) + a.shape[1:], dtype=np.float32)
        up[0::2] = 0.75 * a + 0.25 * before
        up[1::2] = 0.75 * a + 0.25 * after
        a = np.moveaxis(up, 0, axis)
    return a[: shape[0], : shape[1]]
