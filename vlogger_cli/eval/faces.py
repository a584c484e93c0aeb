"""The face in every frame of a video: mediapipe FaceMesh points, and the face crops the metrics look at.

Every metric of `vlogger eval` reads the face: identity (the dlib descriptor of the face), sharpness
(CPBD of the face crop), lip sync (mouth opening), motion (jitter, head rotation, blinks) and the
comparison with a reference video (face PSNR/SSIM, landmark error). One FaceMesh pass per frame serves
them all (`body.landmarks.detect_face`: a crop around the previous frame's face, the whole image when
that fails).

Points are pixels of the frame (x right, y down; z mediapipe's relative depth in the same units). A
frame without a face holds NaN points.
"""

from __future__ import annotations

import numpy as np

MOUTH_INNER = (13, 14)
"""FaceMesh inner-lip midpoints (upper, lower): their distance is the mouth opening."""
EYE_OUTER_CORNERS = (33, 263)
"""The subject's right and left outer eye corners."""


def face_diagonal(points: np.ndarray) -> np.ndarray:
    """Diagonal of the face points' bounding box in pixels, (..., 478, 2|3) -> (...): the face's size,
    the unit that makes landmark motion independent of how large the face is in the picture (as
    `Landmarks.face_diagonal`)."""
    xy = np.asarray(points, dtype=np.float64)[..., :2]
    span = xy.max(axis=-2) - xy.min(axis=-2)
    return np.hypot(span[..., 0], span[..., 1])


def face_square(points: np.ndarray, margin: float = 0.1) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square around the face points, enlarged by `margin` of its size
    on each side: the face region the image metrics crop."""
    xy = np.asarray(points, dtype=np.float64)[:, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    centre = (lo + hi) / 2
    return float(centre[0]), float(centre[1]), float(max(hi - lo) * (1 + 2 * margin))


def crop_square(image: np.ndarray, square: tuple[float, float, float], side: int) -> np.ndarray:
    """The square region `square` = (centre x, centre y, side) of `image`, resized to `side`² pixels
    (edge pixels repeated outside the image). Faces of any size are compared at one size."""
    import cv2

    cx, cy, size = square
    scale = side / max(size, 1.0)
    affine = np.array([[scale, 0, side / 2 - scale * cx], [0, scale, side / 2 - scale * cy]], np.float64)
    return cv2.warpAffine(image, affine, (side, side), borderMode=cv2.BORDER_REPLICATE,
                          flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


class FaceTracker:
    """FaceMesh points frame after frame, each search starting around the previous frame's face.

    A frame identical to the previous one (a held or frozen picture) gets the previous points: FaceMesh
    searching again from a crop around its own answer can land a fraction of a pixel away, which would read
    as motion that the video does not have."""

    def __init__(self):
        self._previous: np.ndarray | None = None
        self._previous_frame: np.ndarray | None = None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """(478, 3) float32 points of the face in `frame`, NaN when there is none."""
        from vlogger_cli.body.landmarks import NUM_FACE, detect_face

        if self._previous_frame is None or not np.array_equal(frame, self._previous_frame):
            self._previous = detect_face(frame, near=self._previous)
            self._previous_frame = frame
        if self._previous is None:
            return np.full((NUM_FACE, 3), np.nan, np.float32)
        return self._previous.astype(np.float32)
