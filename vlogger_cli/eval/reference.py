"""Against ground truth (`--reference-video`): how close each frame is to the real frame it should match.

For a render that should reproduce a real clip (e.g. the clip's tracked motion rendered again): the
reference is read at the video's frame rate and compared frame by frame, over the shorter of the two.
A video of another size is resized to the reference's first. Per frame:

- face_psnr: PSNR (dB) of the face region, the square around the *reference's* FaceMesh points (10 %
  margin) resized to 256², RGB, peak 255 (the paper's "face PSNR"); identical crops score MAX_PSNR;
- face_ssim: SSIM (Wang et al. 2004, scikit-image, 7x7 windows, per channel) of the same crops, in [-1, 1];
- lme: landmark error, the mean distance between the video's and the reference's 478 FaceMesh points,
  in % of the reference face's size (bounding-box diagonal); `lme_px` in the reference's pixels.
Frames where either has no face count in none of the three.
"""

from __future__ import annotations

import numpy as np

from vlogger_cli.eval.faces import crop_square, face_diagonal, face_square
from vlogger_cli.eval.group import not_available
from vlogger_cli.image_metrics import masked_psnr

CROP_SIDE = 256
MAX_PSNR = 100.0
"""PSNR of identical images (infinite otherwise, which neither a mean nor JSON can hold)."""


class ReferenceMeter:
    """Frame-by-frame comparison of a video with its reference (both frames and both faces given)."""

    def __init__(self):
        self.psnr: list[float] = []
        self.ssim: list[float] = []
        self.lme: list[float] = []
        self.lme_px: list[float] = []

    def add(self, frame: np.ndarray, points: np.ndarray, ref_frame: np.ndarray, ref_points: np.ndarray) -> None:
        if not (np.isfinite(points).all() and np.isfinite(ref_points).all()):
            for values in (self.psnr, self.ssim, self.lme, self.lme_px):
                values.append(np.nan)
            return
        frame, points = _to_size(frame, points, ref_frame.shape[:2])
        square = face_square(ref_points)
        a = crop_square(frame, square, CROP_SIDE)
        b = crop_square(np.ascontiguousarray(ref_frame), square, CROP_SIDE)
        self.psnr.append(psnr(a, b))
        self.ssim.append(ssim(a, b))
        error = float(np.linalg.norm(points[:, :2] - ref_points[:, :2], axis=1).mean())
        self.lme_px.append(error)
        self.lme.append(100.0 * error / float(face_diagonal(ref_points)))

    def metrics(self) -> tuple[dict, dict]:
        group: dict = {"reasons": {}, "frames_compared": int((~np.isnan(self.psnr)).sum()) if self.psnr else 0}
        series = {"face_psnr": np.asarray(self.psnr), "face_ssim": np.asarray(self.ssim), "lme": np.asarray(self.lme)}
        keys = ("face_psnr", "face_ssim", "lme", "lme_px")
        if group["frames_compared"] == 0:
            return not_available(group, keys, "no frame has a face in both videos"), series
        for key, values in zip(keys, (self.psnr, self.ssim, self.lme, self.lme_px)):
            group[key] = float(np.nanmean(values))
        return group, series


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images in dB (MAX_PSNR for identical images)."""
    return min(MAX_PSNR, masked_psnr(a, b))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=2, data_range=255))


def _to_size(frame: np.ndarray, points: np.ndarray, size: tuple[int, int]):
    """`frame` resized to (height, width) = `size`, and its points moved with it."""
    height, width = frame.shape[:2]
    if (height, width) == tuple(size):
        return frame, points
    import cv2

    scale = np.array([size[1] / width, size[0] / height], np.float64)
    resized = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA if scale.max() < 1 else cv2.INTER_CUBIC)
    points = np.asarray(points, np.float64).copy()
    points[:, :2] *= scale
    return resized, points
