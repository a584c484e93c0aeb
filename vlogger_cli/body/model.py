"""The BodyModel interface: one stateless layer, parameters in, vertices and keypoints out.

Every adapter (anny by default, smplx for users with SMPL-X files) maps the same `BodyParams` to the
same kind of `BodyOutput`, so the fitter, the motion stage and the control renderer never see which
body model is behind them. Float32, batched over B, differentiable end to end (the fitter optimises
through it).

Conventions (shared by the whole project; see also controls/camera.py):

- World frame, metres, right-handed: +x = the subject's LEFT (image right when they face the camera),
  +y = UP, +z = FORWARD (out of the subject's chest, towards the camera). Identity `global_orient`
  therefore means "upright, facing the camera". (SMPL-X's own frame is this one; anny's native frame is
  Z-up and faces -y, and its adapter converts.)
- `transl` is the world position of the root joint (the pelvis); `global_orient` rotates the body about
  that joint: v_world = R_g (v_body - root) + transl.
- `pose[:, j]` is the rotation of CANONICAL_JOINTS[j] relative to its parent, axis-angle, expressed in the
  world axes above as carried along by the parent (the rest pose's axes; SMPL-X's convention). So at an
  otherwise rest pose, for the head: a rotation about +y by +a turns the face towards the subject's left
  (yaw, image right), about +x by +a nods the chin down (pitch), about +z by +a tilts the head towards the
  subject's right shoulder (roll). `head_rotation(yaw, pitch, roll)` builds one from degrees.
  Zero means each model's rest pose (anny: arms down at ~45 deg, SMPL-X: T-pose); the motion stage works
  with residuals on top of a fitted reference pose, so the rest pose's difference does not leak out.
- Joints that a model splits into a chain ("spine" = anny spine03..01 / SMPL-X spine1..3, "neck" =
  anny neck01..03) spread the rotation evenly along the chain: the total rotation of the chain is the
  given one, with a smooth bend.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

CANONICAL_JOINTS: tuple[str, ...] = (
    "spine", "neck", "head", "eye_l", "eye_r", "clavicle_l", "clavicle_r",
    "shoulder_l", "shoulder_r", "elbow_l", "elbow_r", "wrist_l", "wrist_r",
)
"""Upper-body joints whose local rotations are body pose parameters (shared with the motion stage)."""

FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")
HAND_JOINTS: tuple[str, ...] = tuple(
    f"{finger}{k}_{side}" for side in ("l", "r") for finger in FINGERS for k in (1, 2, 3)
)
"""Finger joints (30 = 2 hands x 5 fingers x 3 phalanges); `hand_pose` follows this order."""

ARKIT_NAMES: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
"""The 52 ARKit blendshapes in ARKit order: anny's facial actions, and the motion stage's expression names."""

PARTS: tuple[str, ...] = (
    "background", "face_skin", "lips", "mouth_interior", "eyes", "head_back", "neck", "torso",
    "upper_arm_l", "upper_arm_r", "forearm_l", "forearm_r", "hand_l", "hand_r", "lower_body",
)
"""Semantic part labels (C^m); the label of a part is its index, background = 0. `head_back` is the
scalp, ears and back of the head (where hair usually is)."""

PART_INDEX = {name: i for i, name in enumerate(PARTS)}

COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "eye_l", "eye_r", "ear_l", "ear_r", "shoulder_l", "shoulder_r", "elbow_l", "elbow_r",
    "wrist_l", "wrist_r", "hip_l", "hip_r", "knee_l", "knee_r", "ankle_l", "ankle_r",
)
HAND_KEYPOINTS: tuple[str, ...] = (
    "wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip", "middle_mcp", "middle_pip", "middle_dip",
    "middle_tip", "ring_mcp", "ring_pip", "ring_dip", "ring_tip", "pinky_mcp", "pinky_pip",
    "pinky_dip", "pinky_tip",
)
"""mediapipe Hands' 21 landmarks, in mediapipe's order."""

KEYPOINT_NAMES: tuple[str, ...] = (
    COCO_KEYPOINTS
    + ("mouth_l", "mouth_r")
    + tuple(f"hand_l.{k}" for k in HAND_KEYPOINTS)
    + tuple(f"hand_r.{k}" for k in HAND_KEYPOINTS)
)
"""Keypoints every adapter regresses, matching mediapipe: COCO body (pose landmarks 0,2,5,7,8,11-16,23-28),
mouth corners (pose 9/10), and the 21 Hands landmarks per hand. `_l` is always the subject's left."""

KEYPOINT_INDEX = {name: i for i, name in enumerate(KEYPOINT_NAMES)}


@dataclass
class BodyParams:
    """Parameters of a batch of B bodies (torch tensors, float32).

    shape:         (B, S) model-specific shape vector; zeros = the model's average body.
    global_orient: (B, 3) axis-angle or (B, 3, 3) rotation matrix, about the root joint.
    transl:        (B, 3) world position of the root joint (metres).
    pose:          (B, 13, 3) axis-angle or (B, 13, 3, 3): local rotations of CANONICAL_JOINTS.
    hand_pose:     (B, 30, 3) axis-angle or (B, 30, 3, 3) of HAND_JOINTS, or None (= rest hands).
    expression:    (B, E) model-specific (see `BodyModel.expression_names`), or None (= neutral).
    """

    shape: torch.Tensor
    global_orient: torch.Tensor
    transl: torch.Tensor
    pose: torch.Tensor
    hand_pose: torch.Tensor | None = None
    expression: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int(self.transl.shape[0])

    def replace(self, **changes) -> "BodyParams":
        return replace(self, **changes)

    def map(self, fn) -> "BodyParams":
        """Apply `fn` to every tensor (e.g. `lambda t: t.detach()`, `lambda t: t[2:5]`)."""
        return BodyParams(**{f.name: (None if getattr(self, f.name) is None else fn(getattr(self, f.name)))
                             for f in fields(self)})

    def expand(self, batch_size: int) -> "BodyParams":
        """Repeat a batch-1 parameter set B times (e.g. one fitted reference for T frames)."""
        if self.batch_size == batch_size:
            return self
        if self.batch_size != 1:
            raise ValueError(f"cannot expand a batch of {self.batch_size} to {batch_size}")
        return self.map(lambda t: t.expand(batch_size, *t.shape[1:]))


@dataclass
class BodyOutput:
    """vertices (B, V, 3), keypoints (B, K, 3) in KEYPOINT_NAMES order, joints (B, 13, 3) at the
    CANONICAL_JOINTS centres, all in the world frame (metres)."""

    vertices: torch.Tensor
    keypoints: torch.Tensor
    joints: torch.Tensor


class BodyModel(torch.nn.Module, abc.ABC):
    """A stateless body layer. Subclasses set the attributes below in `__init__` and implement `forward`.

    faces:             (F, 3) int64 numpy array of triangles (counter-clockwise seen from outside).
    part_labels:       (V,) uint8 numpy array, index into PARTS for every vertex.
    shape_names:       names of the shape vector's entries.
    expression_names:  names of the expression vector's entries.
    """

    name: str = "body"
    faces: np.ndarray
    part_labels: np.ndarray
    shape_names: tuple[str, ...]
    expression_names: tuple[str, ...]

    @property
    def num_vertices(self) -> int:
        return int(self.part_labels.shape[0])

    @property
    def num_shape(self) -> int:
        return len(self.shape_names)

    @property
    def num_expression(self) -> int:
        return len(self.expression_names)

    @abc.abstractmethod
    def forward(self, params: BodyParams) -> BodyOutput: ...

    def zero_params(self, batch_size: int = 1, *, distance: float = 0.0) -> BodyParams:
        """Average body at rest, root at (0, 0, -distance), facing +z; every tensor a fresh leaf."""
        def z(*shape):
            return torch.zeros(batch_size, *shape, dtype=torch.float32)

        transl = z(3)
        transl[:, 2] = -distance
        return BodyParams(shape=z(self.num_shape), global_orient=z(3), transl=transl,
                          pose=z(len(CANONICAL_JOINTS), 3), hand_pose=z(len(HAND_JOINTS), 3),
                          expression=z(self.num_expression))

    def expression_vector(self, batch_size: int = 1, **values: float) -> torch.Tensor:
        """(B, E) expression with named entries set, e.g. `expression_vector(jawOpen=0.8)`."""
        out = torch.zeros(batch_size, self.num_expression, dtype=torch.float32)
        for key, value in values.items():
            if key not in self.expression_names:
                raise KeyError(f"{self.name} has no expression {key!r}")
            out[:, self.expression_names.index(key)] = value
        return out

    def part_faces(self) -> np.ndarray:
        """(F,) uint8 label of every face: the most frequent label of its 3 vertices (the first on ties)."""
        lab = self.part_labels[self.faces]  # (F, 3)
        same01 = lab[:, 1] == lab[:, 2]
        return np.where(same01, lab[:, 1], lab[:, 0]).astype(np.uint8)


# --- rotations (shared by the adapters) ---------------------------------------------------------

def as_rotvec(rot: torch.Tensor, vector_ndim: int) -> torch.Tensor:
    """Axis-angle from axis-angle (ndim == vector_ndim, last dim 3) or matrices (one more dim, last (3, 3)).
    `vector_ndim` disambiguates a batch of 3 axis-angles (3, 3) from one matrix."""
    if rot.ndim == vector_ndim + 1:
        import roma

        return roma.rotmat_to_rotvec(rot)
    return rot


def as_rotmat(rot: torch.Tensor, vector_ndim: int) -> torch.Tensor:
    """Rotation matrices from axis-angle or matrices (see `as_rotvec`)."""
    if rot.ndim == vector_ndim + 1:
        return rot
    import roma

    return roma.rotvec_to_rotmat(rot)


def head_rotation(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> torch.Tensor:
    """(3,) axis-angle of a head turn in degrees, in the canonical frame: yaw > 0 turns the face to the
    subject's left, pitch > 0 nods the chin down, roll > 0 tilts towards the right shoulder
    (applied as yaw, then pitch, then roll in the head's frame)."""
    import roma

    ry = roma.rotvec_to_rotmat(torch.tensor([0.0, math.radians(yaw), 0.0]))
    rx = roma.rotvec_to_rotmat(torch.tensor([math.radians(pitch), 0.0, 0.0]))
    rz = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.0, math.radians(roll)]))
    return roma.rotmat_to_rotvec(ry @ rx @ rz).float()


def place_in_world(points: torch.Tensor, root: torch.Tensor, params: BodyParams,
                   axes: torch.Tensor | None = None) -> torch.Tensor:
    """(B, N, 3) body-frame points -> world: R_g A (p - root) + transl, with root (B, 3) in the same frame and
    A (3, 3) the model's axes -> canonical axes (None: already canonical)."""
    rot = as_rotmat(params.global_orient, 2).to(points.dtype)  # (B, 3, 3)
    if axes is not None:
        rot = rot @ axes
    rot = rot.expand(points.shape[0], 3, 3)
    # bmm: far faster than einsum / broadcasting for (N, 3) x (3, 3) products on the CPU.
    return torch.bmm(points - root[:, None], rot.transpose(1, 2)) + params.transl[:, None]


def load_body_model(kind: str = "anny", path=None) -> BodyModel:
    """The process-wide body model: "anny" (default, free) or "smplx" (SMPL-X file at `path` or under
    weights/body/smplx/). Built once per process and shared; it holds no per-job state."""
    if kind == "anny":
        from vlogger_cli.body.anny_model import anny_body

        return anny_body()
    if kind == "smplx":
        from vlogger_cli.body.smplx_model import smplx_body

        return smplx_body(None if path is None else str(path))
    from vlogger_cli.errors import JobError

    raise JobError(f"unknown body model {kind!r}; use 'anny' or 'smplx'")
