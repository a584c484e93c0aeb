"""Stage-2 quality figures (issue 5 "Done when"), pure numpy:

- face PSNR (`image_metrics.masked_psnr`, the paper's 22.2 dB in new poses) is measured on frames rendered
  with zero pose residual.
- `seam_report`: frame-to-frame change inside a region at outpainting seams (the first new frame of
  each window vs the frame before it) against the change between frames inside windows. Temporal
  outpainting is seamless when the largest seam change is no larger than the largest within-window one.
- `masked_ssim`: SSIM (Wang et al. 2004, Gaussian window sigma 1.5) averaged inside a region, per frame.
- `flicker`: frame-to-frame change inside a region that the true video does not have (video/real_check.py).
"""

from __future__ import annotations

import numpy as np

from vlogger_cli.windows import window_starts


def seams(num_frames: int, window: int, overlap_frames: int) -> list[int]:
    """Indices of the first new frame of every window after the first."""
    return [start + known for start, _, known in window_starts(num_frames, window, overlap_frames)[1:]]


def seam_report(frames: np.ndarray, window: int, overlap_frames: int, mask: np.ndarray | None = None) -> dict:
    """Mean absolute change (0-255) inside `mask` from frame t-1 to t, split into seam and within-window t."""
    frames = np.asarray(frames, np.float64)
    change = np.abs(np.diff(frames, axis=0)).mean(-1)  # (T-1, H, W): change into frame t = index + 1
    if mask is not None:
        m = np.asarray(mask, bool)
        per_step = np.array([c[m if m.ndim == 2 else m[i + 1]].mean() for i, c in enumerate(change)])
    else:
        per_step = change.reshape(len(change), -1).mean(1)
    seam_t = seams(len(frames), window, overlap_frames)
    is_seam = np.zeros(len(per_step), bool)
    is_seam[[t - 1 for t in seam_t if 0 < t < len(frames)]] = True
    within, at_seam = per_step[~is_seam], per_step[is_seam]
    return {"seams": seam_t, "seam_max": float(at_seam.max()) if at_seam.size else 0.0,
            "seam_mean": float(at_seam.mean()) if at_seam.size else 0.0,
            "within_max": float(within.max()) if within.size else 0.0,
            "within_mean": float(within.mean()) if within.size else 0.0,
            "seamless": bool(not at_seam.size or not within.size or at_seam.max() <= within.max())}


def masked_ssim(frames: np.ndarray, targets: np.ndarray, masks: np.ndarray) -> float:
    """Mean SSIM of uint8 frames (T, H, W, 3) against `targets` (T, H, W, 3) inside `masks` (T, H, W): the
    SSIM map of each frame (colour channels averaged) averaged over its masked pixels, then over the frames
    whose mask is not empty."""
    from skimage.metrics import structural_similarity

    values = []
    for frame, target, mask in zip(frames, targets, np.asarray(masks, bool)):
        if not mask.any():
            continue
        _, ssim_map = structural_similarity(target, frame, channel_axis=-1, data_range=255, gaussian_weights=True,
                                            sigma=1.5, use_sample_covariance=False, full=True)
        values.append(float(ssim_map.mean(-1)[mask].mean()))
    if not values:
        raise ValueError("the SSIM masks are empty")
    return float(np.mean(values))


def flicker(frames: np.ndarray, targets: np.ndarray, masks: np.ndarray) -> float:
    """Mean absolute difference (grey levels) between the frames' and the targets' frame-to-frame change,
    inside masks[t] & masks[t - 1]: temporal noise a renderer adds to the true motion (0 for a renderer that
    changes exactly as the real video does; the motion itself is not counted)."""
    frames, targets = np.asarray(frames, np.float64), np.asarray(targets, np.float64)
    masks = np.asarray(masks, bool)
    values = []
    for t in range(1, len(frames)):
        m = masks[t] & masks[t - 1]
        if m.any():
            change = (frames[t] - frames[t - 1]) - (targets[t] - targets[t - 1])
            values.append(float(np.abs(change).mean(-1)[m].mean()))
    if not values:
        raise ValueError("flicker needs two frames with overlapping masks")
    return float(np.mean(values))
