"""Temporal filling and smoothing of per-frame tracks (body/track.py).

- `fill_gaps`: frames without a measurement (the face was lost) get the linear interpolation of their
  nearest measured neighbours; frames before the first / after the last measured one hold its value.
- `savgol`: a Savitzky–Golay filter (least-squares polynomial of `order` over a centred window of
  `window` frames, scipy's `savgol_filter`, edges fitted with the polynomial of the first/last window).
  Unlike a moving average it keeps peaks and the timing of fast events (a blink, a jaw opening) while
  removing frame-to-frame detector jitter, which is what tracking needs.
- Rotations (axis-angle) are filled and smoothed in the tangent space of a reference rotation per
  joint: r_t -> log(R_ref^T R_t), filter, R_ref exp(.). Exact for the small deviations a talking person
  makes from the reference frame, and free of axis-angle's wrap-around at π.
"""

from __future__ import annotations

import numpy as np
import torch

from vlogger_cli.rotations import axis_angle_to_matrix, matrix_to_axis_angle


def window_frames(seconds: float, fps: float, *, minimum: int = 5) -> int:
    """An odd window length covering about `seconds` at `fps` (at least `minimum`)."""
    n = max(minimum, round(seconds * fps))
    return n if n % 2 else n + 1


def fill_gaps(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(T, ...) values with the frames where `valid` (T,) is False interpolated linearly from the valid
    ones (held at the ends). All frames invalid: ValueError."""
    values = np.array(values, dtype=np.float64, copy=True)
    valid = np.asarray(valid, bool)
    if not valid.any():
        raise ValueError("no valid frame to interpolate from")
    if valid.all():
        return values
    t = np.arange(len(values))
    flat = values.reshape(len(values), -1)
    for c in range(flat.shape[1]):
        flat[~valid, c] = np.interp(t[~valid], t[valid], flat[valid, c])
    return flat.reshape(values.shape)


def savgol(values: np.ndarray, window: int, order: int = 2) -> np.ndarray:
    """Savitzky–Golay along axis 0; sequences shorter than the window get the largest odd window that
    fits (no filtering below order + 2 frames)."""
    from scipy.signal import savgol_filter

    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    window = min(window, n if n % 2 else n - 1)
    if window <= order + 1:
        return values.copy()
    return savgol_filter(values, window, order, axis=0, mode="interp")


def rotations_to_tangent(rotvec: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(T, J, 3) axis-angle -> (T, J, 3) log(R_ref^T R_t) for a (J, 3) reference."""
    r = axis_angle_to_matrix(torch.as_tensor(rotvec, dtype=torch.float64))
    ref = axis_angle_to_matrix(torch.as_tensor(reference, dtype=torch.float64))
    return matrix_to_axis_angle(ref.transpose(-1, -2)[None] @ r).numpy()


def tangent_to_rotations(tangent: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Inverse of `rotations_to_tangent`: (T, J, 3) axis-angle of R_ref exp(tangent)."""
    d = axis_angle_to_matrix(torch.as_tensor(tangent, dtype=torch.float64))
    ref = axis_angle_to_matrix(torch.as_tensor(reference, dtype=torch.float64))
    return matrix_to_axis_angle(ref[None] @ d).numpy()


def fill_and_smooth_rotations(rotvec: np.ndarray, valid: np.ndarray, window: int | None, order: int = 2) -> np.ndarray:
    """(T, J, 3) axis-angle: invalid frames interpolated, then (window not None) smoothed, on the
    tangent space of the first valid frame."""
    reference = np.asarray(rotvec)[int(np.argmax(valid))]
    tangent = fill_gaps(rotations_to_tangent(rotvec, reference), valid)
    if window:
        tangent = savgol(tangent, window, order)
    return tangent_to_rotations(tangent, reference)
