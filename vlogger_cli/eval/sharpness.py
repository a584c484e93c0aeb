"""Sharpness of the face region: CPBD, the paper's metric, and the variance of the Laplacian as a fallback.

CPBD (cumulative probability of blur detection; Narvekar & Karam 2011), from the `cpbd` package: the
fraction of edges in the image whose width a viewer would not notice as blur, in [0, 1], higher is
sharper. It depends on resolution, so every face is measured as the same crop: the square around the
FaceMesh points (10 % margin) resized to CROP_SIDE² grey levels. Real clips' face crops score 0.09-0.46
at 256² (../shared/ENVIRONMENT.md). It costs ~0.15 s per crop (pure Python loops), so at most MAX_FRAMES
frames, evenly spread over the video, are measured.

`cpbd` is installed with `pip install --no-deps cpbd==1.0.7` (its own pins would downgrade numpy and scipy;
make setup does it). When it is absent, `cpbd` is null with that fix as the reason, and the fallback
`laplacian_var` (variance of the 3x3 Laplacian of the same crop, in grey levels², higher is sharper; not
comparable with CPBD) is always reported.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from vlogger_cli.eval.faces import crop_square, face_square
from vlogger_cli.eval.group import not_available

CROP_SIDE = 256
MAX_FRAMES = 30
CPBD_INSTALL = "the cpbd package is not installed: pip install --no-deps cpbd==1.0.7 (make setup does)"


def sample_frames(num_frames: int, max_frames: int = MAX_FRAMES) -> set[int]:
    """Indices of the frames whose sharpness is measured: all, or `max_frames` evenly spread."""
    if num_frames <= max_frames:
        return set(range(num_frames))
    return {int(i) for i in np.linspace(0, num_frames - 1, max_frames).round()}


def face_crop_grey(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(CROP_SIDE, CROP_SIDE) float64 grey levels 0..255 of the face region."""
    import cv2

    crop = crop_square(np.ascontiguousarray(image[..., :3]), face_square(points), CROP_SIDE)
    return cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float64)


def load_cpbd():
    """cpbd's `compute(grey) -> float`, or None when the package is not installed.

    cpbd 1.0.7 imports `scipy.ndimage.imread` (removed in SciPy 1.2) for its command-line entry point
    only; a stand-in that raises is put there first, so the metric itself imports on current SciPy.
    """
    if importlib.util.find_spec("cpbd") is None:
        return None
    import scipy.ndimage

    if not hasattr(scipy.ndimage, "imread"):
        def imread(*args, **kwargs):
            raise NotImplementedError("scipy.ndimage.imread was removed in SciPy 1.2")

        scipy.ndimage.imread = imread
    from cpbd import compute

    return compute


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian of a grey image (grey levels²): high for crisp edges, ~0 for blur."""
    import cv2

    return float(cv2.Laplacian(grey, cv2.CV_64F, ksize=3).var())


class SharpnessMeter:
    """Collects both sharpness measures of the face crops of the sampled frames."""

    def __init__(self, num_frames: int):
        self.frames = sample_frames(num_frames)
        self._cpbd = load_cpbd()
        self.cpbd: list[float] = []
        self.laplacian: list[float] = []

    def add(self, index: int, image: np.ndarray, points: np.ndarray) -> None:
        """Measure frame `index` if it is sampled and has a face (finite points)."""
        if index not in self.frames or not np.isfinite(points).all():
            return
        grey = face_crop_grey(image, points)
        self.laplacian.append(laplacian_variance(grey))
        if self._cpbd is not None:
            self.cpbd.append(float(self._cpbd(grey)))

    def metrics(self) -> dict:
        group: dict = {"reasons": {}, "frames_measured": len(self.laplacian)}
        if not self.laplacian:
            return not_available(group, ["cpbd", "laplacian_var"], "no sampled frame has a face")
        group["laplacian_var"] = float(np.mean(self.laplacian))
        if self._cpbd is None:
            not_available(group, ["cpbd"], CPBD_INSTALL)
        else:
            group["cpbd"] = float(np.mean(self.cpbd))
        return group
