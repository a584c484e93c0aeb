"""Motion of the face over a video: landmark jitter, head rotation, blinks, and how often a face was found.

All from the per-frame FaceMesh points (T, 478, 3) in pixels, NaN where a frame has no face.

- jitter: the paper's temporal jitter measure made size-free: the frame-to-frame acceleration of every
  landmark, |x[t+1] - 2 x[t] + x[t-1]| (image x, y), averaged over the 478 points and divided by the face's
  size (bounding-box diagonal), in % of the face size per frame². A frozen video scores 0; smooth head
  motion scores near 0; flicker and shaking faces score high. Only triples of consecutive frames with a face.
- head rotation: each frame's rigid face points (nose, eye corners, forehead, cheekbones: points that
  speech and expression hardly move) in 3-D (x, y and FaceMesh's depth, all in pixels) aligned to the first
  face's by a similarity Procrustes fit (Kabsch); the rotation as yaw (about the image's vertical axis),
  pitch (horizontal axis) and roll (viewing axis), in degrees. Reported: the standard deviation of each over
  the video, i.e. how much the head moves.
- blinks: the eye aspect ratio (EAR, Soukupová & Čech 2016; both eyes averaged) drops below BLINK_CLOSED of
  the video's median EAR and comes back within BLINK_MAX_S; per minute of video.
- face_found: the fraction of frames with a face.
"""

from __future__ import annotations

import numpy as np

from vlogger_cli.eval.faces import face_diagonal
from vlogger_cli.eval.group import not_available

RIGID_POINTS = (1, 4, 5, 6, 8, 9, 10, 151, 168, 195, 197, 33, 133, 263, 362, 50, 280, 117, 346, 123, 352)
"""FaceMesh points on the nose, eye corners, forehead and cheekbones: they move with the skull only."""
BLINK_CLOSED = 0.65
"""A frame's eyes count as closed below this fraction of the video's median eye aspect ratio (open eyes
measure ~0.25-0.35, shut ~0.1)."""
BLINK_MAX_S = 0.7
"""A closure longer than this is not a blink (looking down, eyes shut on purpose)."""


def jitter_series(points: np.ndarray) -> np.ndarray:
    """(T,) landmark acceleration per frame in % of the face size per frame²; NaN at the ends and wherever
    a frame or a neighbour has no face."""
    xy = np.asarray(points, dtype=np.float64)[..., :2]
    out = np.full(len(xy), np.nan)
    if len(xy) < 3:
        return out
    accel = np.linalg.norm(xy[2:] - 2 * xy[1:-1] + xy[:-2], axis=-1).mean(axis=-1)  # (T-2,) pixels
    out[1:-1] = 100.0 * accel / face_diagonal(xy[1:-1])
    return out


def head_rotation(points: np.ndarray) -> np.ndarray:
    """(T, 3) yaw, pitch, roll in degrees of each frame's head relative to the first frame with a face
    (NaN rows where there is no face)."""
    from scipy.spatial.transform import Rotation

    rigid = np.asarray(points, dtype=np.float64)[:, list(RIGID_POINTS), :3]
    found = np.isfinite(rigid).all(axis=(1, 2))
    angles = np.full((len(rigid), 3), np.nan)
    if not found.any():
        return angles
    reference = _normalised(rigid[np.flatnonzero(found)[0]])
    for t in np.flatnonzero(found):
        current = _normalised(rigid[t])
        # Kabsch: the rotation R minimising |R reference - current|, without reflection.
        u, _, vt = np.linalg.svd(current.T @ reference)
        d = np.sign(np.linalg.det(u @ vt))
        rotation = u @ np.diag([1.0, 1.0, d]) @ vt
        # Image axes: x right, y down, z away from the camera. Yaw turns about y, pitch about x, roll about z.
        angles[t] = Rotation.from_matrix(rotation).as_euler("YXZ", degrees=True)
    return angles


def _normalised(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(axis=0)
    return centred / np.sqrt((centred**2).sum(axis=1).mean())


def eye_aspect_ratio_series(points: np.ndarray) -> np.ndarray:
    """(T,) eye aspect ratio, both eyes averaged (NaN without a face)."""
    from vlogger_cli.body.landmarks import eye_aspect_ratio

    left, right = eye_aspect_ratio(np.asarray(points, dtype=np.float64))
    return (left + right) / 2


def blink_frames(ear: np.ndarray, fps: float) -> list[int]:
    """One frame per blink, where the eyes are most closed: closures of the eyes (EAR below BLINK_CLOSED x
    its median) that end within BLINK_MAX_S."""
    finite = np.isfinite(ear)
    if not finite.any():
        return []
    closed = np.zeros(len(ear), bool)
    closed[finite] = ear[finite] < BLINK_CLOSED * np.median(ear[finite])
    # runs of closed frames: starts where closed turns on, ends where it turns off
    edges = np.diff(np.concatenate([[0], closed.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [int(s + np.argmin(ear[s:e])) for s, e in zip(starts, ends) if e - s <= BLINK_MAX_S * fps]


def motion_metrics(points: np.ndarray, fps: float) -> tuple[dict, dict]:
    """Motion group and its per-frame series from (T, 478, 3) points (NaN: no face) at `fps`."""
    found = np.isfinite(points).all(axis=(1, 2))
    group: dict = {"reasons": {}, "face_found": float(found.mean()) if len(found) else 0.0}
    jitter = jitter_series(points)
    series = {"jitter": jitter}
    if np.isfinite(jitter).any():
        group["jitter"] = float(np.nanmean(jitter))
        group["jitter_p95"] = float(np.nanpercentile(jitter, 95))
    else:
        not_available(group, ["jitter", "jitter_p95"], "needs 3 consecutive frames with a face")
    angles = head_rotation(points)
    series.update(head_yaw=angles[:, 0], head_pitch=angles[:, 1], head_roll=angles[:, 2])
    for i, name in enumerate(("yaw", "pitch", "roll")):
        group[f"head_{name}_std"] = float(np.nanstd(angles[:, i])) if found.any() else None
    ear = eye_aspect_ratio_series(points)
    series["eye_aspect_ratio"] = ear
    blinks = blink_frames(ear, fps)
    minutes = len(points) / fps / 60.0
    group["blinks"] = len(blinks)
    group["blinks_per_min"] = len(blinks) / minutes if minutes > 0 else None
    group["blink_frames"] = blinks
    return group, series
