"""2D landmarks of the person in a portrait: face mesh (478 points with irises), pose (33) and hands (21 each).

mediapipe's legacy solutions, whose models ship inside the 0.10.14 wheel (nothing is downloaded). The
detectors are combined so that every framing works:

1. Holistic (pose, then face and hands cropped around the pose): finds small faces in full-body shots,
   and tells the subject's left hand from the right one by the pose.
2. A face found by holistic comes from a crop predicted by the pose; FaceMesh (face detector first) is
   run again on a crop around it, which is more accurate on close-ups. When holistic misses the face,
   FaceMesh runs on the whole image, then on an upscaled crop around the pose's head points.
3. Hands: holistic misses hands that touch the face; the Hands solution fills in a missing hand, matched
   to the subject's side by the nearest pose wrist.

Very large images are detected on a copy whose long side is at most `DETECT_SIDE` and mapped back; crops
are cut from the full-resolution image. The graphs are built once per process and reused.

All coordinates are pixels of the input image: x to the right, y down; `z` is mediapipe's relative depth
in the same pixel units (smaller = closer to the camera; face: relative to the face centre, pose: to the
hips, hands: to the wrist).
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlogger_cli.native_logs import silenced_stderr
from vlogger_cli.errors import JobError

NUM_FACE = 478
NUM_POSE = 33
NUM_HAND = 21
DETECT_SIDE = 1280
"""Long side of the copy that detection runs on (mediapipe's models see ≤ 256² crops anyway)."""

FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
"""FaceMesh's face-outline points, in order around the face: they lie on the silhouette, so they slide over
the skin when the head turns (the fitter trusts them less)."""
IRISES = tuple(range(468, 478))
"""The refined iris points (centre + 4 on the rim, each eye)."""

POSE_HEAD = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
"""mediapipe Pose's head points: nose, eyes (inner, centre, outer), ears, mouth corners."""
POSE_WRIST = (15, 16)
"""Pose's left and right wrist: the subject's left first (as `Landmarks.hands`)."""
POSE_TO_KEYPOINTS = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28, 9, 10)
"""Pose landmark per `model.KEYPOINT_NAMES` entry, for the COCO body points and the mouth corners."""


@dataclass(frozen=True)
class Landmarks:
    """Landmarks of one person, in pixels of an image of `image_size` = (height, width).

    face:       (478, 3) float32 mediapipe FaceMesh points (x, y, z); face_conf (478,) in [0, 1].
    pose:       (33, 3) float32 mediapipe Pose points; pose_conf (33,) = mediapipe's visibility.
    hands:      (2, 21, 3) float32 mediapipe Hands points, [subject's left, subject's right];
                hands_conf (2, 21): the handedness score where found.
    A confidence of 0 means "not detected" (the coordinates are then zeros).
    """

    image_size: tuple[int, int]
    face: np.ndarray
    face_conf: np.ndarray
    pose: np.ndarray
    pose_conf: np.ndarray
    hands: np.ndarray
    hands_conf: np.ndarray

    @property
    def has_face(self) -> bool:
        return bool(self.face_conf.max() > 0)

    @property
    def has_pose(self) -> bool:
        return bool(self.pose_conf.max() > 0)

    def has_hand(self, side: int) -> bool:
        """side: 0 = the subject's left, 1 = right."""
        return bool(self.hands_conf[side].max() > 0)

    def face_bbox(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the detected face points."""
        xy = self.face[:, :2]
        return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())

    def face_diagonal(self) -> float:
        """Diagonal of the face bounding box in pixels: the unit of the fit's error bound."""
        x0, y0, x1, y1 = self.face_bbox()
        return float(np.hypot(x1 - x0, y1 - y0))

    def keypoints(self) -> tuple[np.ndarray, np.ndarray]:
        """((K, 2), (K,)) pixel positions and confidences in `model.KEYPOINT_NAMES` order
        (COCO body, mouth corners, subject's left hand, right hand)."""
        idx = np.asarray(POSE_TO_KEYPOINTS)
        xy = np.concatenate([self.pose[idx, :2], self.hands[0, :, :2], self.hands[1, :, :2]])
        conf = np.concatenate([self.pose_conf[idx], self.hands_conf[0], self.hands_conf[1]])
        return xy.astype(np.float32), conf.astype(np.float32)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"face": self.face, "face_conf": self.face_conf, "pose": self.pose, "pose_conf": self.pose_conf,
                "hands": self.hands, "hands_conf": self.hands_conf,
                "image_size": np.asarray(self.image_size, dtype=np.int64)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "Landmarks":
        size = tuple(int(v) for v in np.asarray(arrays["image_size"]))
        return cls(image_size=size, **{k: np.asarray(arrays[k], dtype=np.float32) for k in
                                      ("face", "face_conf", "pose", "pose_conf", "hands", "hands_conf")})


# --- mediapipe graphs, built once per process ------------------------------------------------------

_GRAPHS: dict[str, object] = {}
_LOCK = threading.Lock()  # a mediapipe graph processes one image at a time


def _graph(name: str):
    if name not in _GRAPHS:
        os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ logging is noise to our users
        import mediapipe as mp

        solutions = mp.solutions
        if name == "holistic":
            # model_complexity=1: the only pose model inside the wheel (0 and 2 would be downloaded).
            _GRAPHS[name] = solutions.holistic.Holistic(static_image_mode=True, model_complexity=1,
                                                        refine_face_landmarks=True)
        elif name == "face_mesh":
            _GRAPHS[name] = solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                                         refine_landmarks=True, min_detection_confidence=0.5)
        elif name == "hands":
            _GRAPHS[name] = solutions.hands.Hands(static_image_mode=True, max_num_hands=2, model_complexity=1)
        else:
            raise KeyError(name)
    return _GRAPHS[name]


def _points(landmark_list, width: float, height: float, *, visibility: bool = False):
    lms = landmark_list.landmark
    xyz = np.array([[p.x * width, p.y * height, p.z * width] for p in lms], dtype=np.float32)
    conf = (np.array([p.visibility for p in lms], dtype=np.float32) if visibility
            else np.ones(len(lms), dtype=np.float32))
    return xyz, conf


# --- detection -----------------------------------------------------------------------------------

def detect_landmarks(image: np.ndarray, *, source: str | Path = "the portrait") -> Landmarks:
    """Face, pose and hand landmarks of the most prominent person in an (H, W, 3) uint8 RGB image.

    `source` names the image in the error raised when no face is found (a `JobError`, so the job fails
    and the others go on).
    """
    image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    height, width = image.shape[:2]
    with _LOCK, warnings.catch_warnings(), silenced_stderr():
        # mediapipe 0.10.14 calls a protobuf API that warns on every image; nothing for our users to act on.
        warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated")
        found = _detect(image)
        if found is None:
            # A person too small for the whole-image detectors (a wide shot): find the face in tiles,
            # then detect everything again in a crop around it. Small tiles see faces in clouds and
            # machinery too, so this path also asks for a body under the face.
            box = _face_in_tiles(image)
            if box is not None:
                cx, cy, side = box
                found = _detect_in_crop(image, (cx, cy + 0.8 * side, 6.0 * side))
                if found is not None and found["pose_conf"][list(POSE_HEAD) + [11, 12]].min() < 0.5:
                    found = None
    if found is None:
        raise JobError(f"no person/face found in PORTRAIT {source}; use a photo showing the person's face")
    return Landmarks(image_size=(height, width), **found)


def detect_face(image: np.ndarray, *, near: np.ndarray | None = None) -> np.ndarray | None:
    """The FaceMesh points (478, 3) of the most prominent face in an (H, W, 3) uint8 RGB image, or None.

    For measuring a video frame by frame, where only the face matters (`vlogger eval`): with `near` (the
    previous frame's points; a face moves little between frames) FaceMesh runs on a crop around them,
    the accurate close-up path of `detect_landmarks`, ~10 ms. Without it, or when the crop holds no face,
    the whole image is searched as `detect_landmarks` does (without its slow search in tiles).
    """
    image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    with _LOCK, warnings.catch_warnings(), silenced_stderr():
        warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated")
        if near is not None:
            found = _face_in_crop(image, _box(np.asarray(near)[:, :2], 0.6))
            if found is not None:
                return found[0]
        found = _detect(image)
    return None if found is None else found["face"]


def _detect(image: np.ndarray) -> dict | None:
    """Landmark arrays in `image`'s pixels (the Landmarks fields), or None without a face."""
    height, width = image.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(height, width))
    small = image if scale == 1.0 else _resize(image, scale)
    sh, sw = small.shape[:2]
    to_full = np.array([width / sw, height / sh, width / sw], dtype=np.float32)

    result = _graph("holistic").process(small)
    face = pose = face_conf = pose_conf = None
    hands = np.zeros((2, NUM_HAND, 3), np.float32)
    hands_conf = np.zeros((2, NUM_HAND), np.float32)
    if result.pose_landmarks is not None:
        pose, pose_conf = _points(result.pose_landmarks, sw, sh, visibility=True)
        pose *= to_full
    if result.face_landmarks is not None and len(result.face_landmarks.landmark) == NUM_FACE:
        face, face_conf = _points(result.face_landmarks, sw, sh)
        face *= to_full
    for side, lms in enumerate((result.left_hand_landmarks, result.right_hand_landmarks)):
        if lms is not None:
            hands[side], hands_conf[side] = _points(lms, sw, sh)
            hands[side] *= to_full

    # Face: a detector-driven FaceMesh pass around the holistic face (or the pose's head), or the whole image.
    face_box = _box(face[:, :2], 0.6) if face is not None else None
    if face_box is None and pose is not None and pose_conf[list(POSE_HEAD)].max() > 0.3:
        face_box = _box(pose[list(POSE_HEAD), :2], 1.6)
    refined = _face_in_crop(image, face_box) if face_box is not None else None
    if refined is None and face is None:
        refined = _face_mesh(small)
        if refined is not None:
            refined = (refined[0] * to_full, refined[1])
    if refined is not None:
        face, face_conf = refined
    if face is None:
        return None

    if pose is not None and not (hands_conf.max(axis=1) > 0).all():
        _fill_hands(small, to_full, pose, pose_conf, hands, hands_conf)
    if pose is None:
        pose = np.zeros((NUM_POSE, 3), np.float32)
        pose_conf = np.zeros(NUM_POSE, np.float32)
    return {"face": face.astype(np.float32), "face_conf": face_conf, "pose": pose, "pose_conf": pose_conf,
            "hands": hands, "hands_conf": hands_conf}


def _crop(image: np.ndarray, box: tuple[float, float, float], crop_side: int):
    """Square crop around box = (centre x, centre y, side), edge pixels repeated outside the image,
    resized to `crop_side`; returns (crop, scale, offset) with crop = image * scale + offset."""
    import cv2

    cx, cy, side = box
    scale = crop_side / side
    offset = np.array([crop_side / 2 - scale * cx, crop_side / 2 - scale * cy])
    affine = np.array([[scale, 0, offset[0]], [0, scale, offset[1]]], np.float64)
    crop = cv2.warpAffine(image, affine, (crop_side, crop_side), borderMode=cv2.BORDER_REPLICATE,
                          flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return crop, scale, offset


def _uncrop(xyz: np.ndarray, scale: float, offset: np.ndarray) -> np.ndarray:
    out = np.array(xyz, dtype=np.float32, copy=True)
    out[..., :2] = (out[..., :2] - offset) / scale
    out[..., 2] = out[..., 2] / scale
    return out


def _detect_in_crop(image: np.ndarray, box: tuple[float, float, float], crop_side: int = 768) -> dict | None:
    crop, scale, offset = _crop(image, box, crop_side)
    found = _detect(crop)
    if found is not None:
        for key in ("face", "pose", "hands"):
            found[key] = _uncrop(found[key], scale, offset)
    return found


def _face_in_tiles(image: np.ndarray) -> tuple[float, float, float] | None:
    """(centre x, centre y, size) of a face found by FaceMesh in overlapping tiles (a half, a third, then
    a fifth of the shorter side, half a tile apart; FaceMesh's detector wants faces of >~ 1/5 of its input),
    or None."""
    height, width = image.shape[:2]
    for parts in (2, 3, 5):
        side = min(height, width) / parts
        if side < 64:
            break
        stride = side / 2
        for y in np.arange(0, max(height - side, 0) + 1, stride):
            for x in np.arange(0, max(width - side, 0) + 1, stride):
                found = _face_in_crop(image, (x + side / 2, y + side / 2, side))
                if found is not None:
                    lo, hi = found[0][:, :2].min(0), found[0][:, :2].max(0)
                    return float((lo[0] + hi[0]) / 2), float((lo[1] + hi[1]) / 2), float(max(hi - lo))
    return None


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def _box(points: np.ndarray, margin: float) -> tuple[float, float, float]:
    """Square (centre x, centre y, side) around `points`, enlarged by `margin` of its size on each side."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre = (lo + hi) / 2
    side = float(max(hi - lo)) * (1 + 2 * margin)
    return float(centre[0]), float(centre[1]), max(side, 8.0)


def _face_mesh(image: np.ndarray):
    result = _graph("face_mesh").process(image)
    if not result.multi_face_landmarks:
        return None
    h, w = image.shape[:2]
    return _points(result.multi_face_landmarks[0], w, h)


def _face_in_crop(image: np.ndarray, box: tuple[float, float, float], crop_side: int = 512):
    """FaceMesh on a square crop around box = (centre x, centre y, side); points in `image`'s pixels."""
    crop, scale, offset = _crop(image, box, crop_side)
    found = _face_mesh(crop)
    if found is None:
        return None
    return _uncrop(found[0], scale, offset), found[1]


def _fill_hands(small, to_full, pose, pose_conf, hands, hands_conf) -> None:
    """Fill hands holistic missed from the Hands solution, each matched to the nearest visible pose wrist."""
    result = _graph("hands").process(small)
    if not result.multi_hand_landmarks:
        return
    sh, sw = small.shape[:2]
    wrists = pose[list(POSE_WRIST), :2]
    visible = pose_conf[list(POSE_WRIST)] > 0.3
    # Hands are free to be far from the wrist estimate when the arm is half hidden: accept up to a
    # few hand sizes, and never give one side two hands.
    for lms, handed in zip(result.multi_hand_landmarks, result.multi_handedness):
        xyz, _ = _points(lms, sw, sh)
        xyz *= to_full
        size = float(np.ptp(xyz[:, :2], axis=0).max())
        dist = np.linalg.norm(wrists - xyz[0, :2], axis=1)
        dist[~visible] = np.inf
        side = int(np.argmin(dist))
        if not np.isfinite(dist[side]) or dist[side] > 3 * size or hands_conf[side].max() > 0:
            continue
        if np.linalg.norm(wrists[1 - side] - xyz[0, :2]) < dist[side] and visible[1 - side]:
            continue
        hands[side] = xyz
        hands_conf[side] = float(handed.classification[0].score)


EYES = {  # mediapipe face-mesh indices (p1 .. p6 of Soukupová & Čech 2016): corner, upper, upper, corner, lower, lower
    "left": (362, 385, 387, 263, 373, 380),   # the subject's left eye (on the image's right)
    "right": (33, 160, 158, 133, 153, 144),   # the subject's right eye
}


def eye_aspect_ratio(face: np.ndarray) -> tuple:
    """Eye aspect ratio (EAR, Soukupová & Čech 2016) of the subject's (left, right) eye from mediapipe face
    mesh points (478, 2|3), or batched (..., 478, 2|3) -> two (...) arrays.

    EAR = (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|): ~0.25-0.35 for an open eye, < ~0.1 closed; image x, y only.
    """
    pts = np.asarray(face, dtype=np.float64)[..., :2]
    out = []
    for side in ("left", "right"):
        p1, p2, p3, p4, p5, p6 = (pts[..., i, :] for i in EYES[side])
        d = lambda a, b: np.linalg.norm(a - b, axis=-1)
        ear = (d(p2, p6) + d(p3, p5)) / np.maximum(2.0 * d(p1, p4), 1e-9)
        out.append(float(ear) if np.ndim(ear) == 0 else ear)
    return tuple(out)
