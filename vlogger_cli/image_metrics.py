"""Ground floor: image-quality measures shared by the stage-2 checks (video/) and `vlogger eval` (eval/).

Imports nothing from vlogger_cli.
"""

from __future__ import annotations

import numpy as np


def masked_psnr(frames: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR (dB, peak 255) of uint8 frames (T, H, W, 3) or (H, W, 3) against `reference` (H, W, 3) over
    the pixels where `mask` (H, W) or (T, H, W) is true (all when None)."""
    frames = np.asarray(frames, np.float64)
    ref = np.asarray(reference, np.float64)
    err = (frames - ref) ** 2  # broadcasts over T
    if mask is not None:
        m = np.broadcast_to(np.asarray(mask, bool), err.shape[:-1])
        if not m.any():
            raise ValueError("the PSNR mask is empty")
        mse = err[m].mean()
    else:
        mse = err.mean()
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))
