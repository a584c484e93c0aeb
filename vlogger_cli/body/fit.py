"""Fit the body model to a portrait: camera, shape, global pose, upper-body pose and expression.

The projected model points — the 478 face landmarks through the committed barycentric table
(correspondence.py), the body keypoints and, where detected, the hand keypoints (model.KEYPOINT_NAMES) —
are pulled onto the detected landmarks, each weighted by its detection confidence, under the priors of
priors.py. Three stages, each a deterministic Adam run (no randomness anywhere):

1. rigid:  global orientation and translation of the rest body (closed-form start from the face), on
           precomputed rest points — cheap;
2. body:   + shape, upper-body pose and hands, through the full model;
3. face:   + expression (the ARKit actions, kept in [0, 1]), head, neck and eyes.

Camera: `controls.camera.Camera.for_image` — a pinhole with the principal point at the image centre,
square pixels, identity extrinsics (the camera is the world origin, the body is placed by
global_orient + transl) and a fixed focal length (`fov_deg` across the longer side, default 35 deg, a
portrait lens). A single photo cannot tell a wide-angle close-up from a tele shot from afar well enough
to fit the focal length reliably, so the fitter fixes it and lets the depth of the body absorb the scale.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from vlogger_cli.body import priors
from vlogger_cli.body.correspondence import SurfacePoints, load_face_table
from vlogger_cli.body.landmarks import FACE_OVAL, Landmarks
from vlogger_cli.body.model import ARKIT_NAMES, CANONICAL_JOINTS, HAND_JOINTS, KEYPOINT_NAMES, BodyModel, BodyParams
from vlogger_cli.camera import Camera

DEFAULT_FOV_DEG = 35.0
STEPS = {"rigid": 150, "body": 50, "face": 50}
"""Adam steps per stage (the rigid stage costs ~1 ms a step, the others a full model pass each)."""

FACE_UNIT = 0.01
"""Residuals of face points are measured in 1 % of the face's bounding-box diagonal."""
BODY_UNIT = 0.03
"""... and of body and hand keypoints in 3 % of it, with a robust (Charbonnier) loss: mediapipe's body
points and the model's regressed keypoints agree less precisely than the face points do."""
MIN_VISIBILITY = 0.5

KEYPOINT_WEIGHTS = {
    "nose": 0.0, "eye_l": 0.0, "eye_r": 0.0, "mouth_l": 0.0, "mouth_r": 0.0,  # the face mesh covers these
    "ear_l": 0.2, "ear_r": 0.2, "shoulder_l": 1.0, "shoulder_r": 1.0, "elbow_l": 1.0, "elbow_r": 1.0,
    "wrist_l": 1.0, "wrist_r": 1.0, "hip_l": 0.7, "hip_r": 0.7, "knee_l": 0.3, "knee_r": 0.3,
    "ankle_l": 0.3, "ankle_r": 0.3,
}
"""Trust in each keypoint relative to a face point; hand points get `HAND_WEIGHT`."""
HAND_WEIGHT = 0.3
FACE_JOINTS = ("neck", "head", "eye_l", "eye_r")
"""Joints the face stage moves."""


@dataclass
class BodyFit:
    """The body model fitted to a portrait (numpy; `params()` gives the BodyParams, batch 1).

    shape (S,), global_orient (3,), transl (3,), pose (13, 3) axis-angle of CANONICAL_JOINTS, hand_pose
    (30, 3), expression (E,); camera: the portrait's camera; image_size (H, W).
    face_errors (478,): pixel distance between each detected and projected face landmark;
    keypoint_errors (K,): the same per KEYPOINT_NAMES entry, NaN where not detected;
    face_diagonal: the detected face's bounding-box diagonal in pixels (the errors' natural unit).
    """

    model_name: str
    image_size: tuple[int, int]
    camera: Camera
    shape: np.ndarray
    global_orient: np.ndarray
    transl: np.ndarray
    pose: np.ndarray
    hand_pose: np.ndarray
    expression: np.ndarray
    face_errors: np.ndarray
    keypoint_errors: np.ndarray
    face_diagonal: float
    info: dict = field(default_factory=dict)

    @property
    def mean_face_error(self) -> float:
        return float(np.mean(self.face_errors))

    @property
    def relative_face_error(self) -> float:
        """Mean face landmark error as a fraction of the face's bounding-box diagonal."""
        return self.mean_face_error / self.face_diagonal

    def params(self) -> BodyParams:
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))[None]  # noqa: E731
        return BodyParams(shape=t(self.shape), global_orient=t(self.global_orient), transl=t(self.transl),
                          pose=t(self.pose), hand_pose=t(self.hand_pose), expression=t(self.expression))


# --- targets ---------------------------------------------------------------------------------------

@dataclass
class _Targets:
    face_uv: torch.Tensor       # (478, 2)
    face_w: torch.Tensor        # (478,)
    kp_uv: torch.Tensor         # (K, 2)
    kp_w: torch.Tensor          # (K,)
    diag: float


def _targets(landmarks: Landmarks) -> _Targets:
    height, width = landmarks.image_size
    face_w = landmarks.face_conf.astype(np.float32).copy()
    face_w[list(FACE_OVAL)] *= 0.5  # silhouette points slide over the skin as the head turns
    face_w = _down_weight_occluded(landmarks, face_w)

    kp_uv, kp_conf = landmarks.keypoints()
    inside = ((kp_uv[:, 0] >= 0) & (kp_uv[:, 0] < width) & (kp_uv[:, 1] >= 0) & (kp_uv[:, 1] < height))
    kp_w = np.where((kp_conf >= MIN_VISIBILITY) & inside, kp_conf, 0.0).astype(np.float32)
    kp_w *= np.array([KEYPOINT_WEIGHTS.get(name, HAND_WEIGHT) for name in KEYPOINT_NAMES], np.float32)
    return _Targets(face_uv=torch.from_numpy(landmarks.face[:, :2].astype(np.float32)), face_w=torch.from_numpy(face_w),
                    kp_uv=torch.from_numpy(kp_uv), kp_w=torch.from_numpy(kp_w), diag=landmarks.face_diagonal())


def _down_weight_occluded(landmarks: Landmarks, face_w: np.ndarray) -> np.ndarray:
    """Face points under a detected hand (a hand on the cheek) are guessed by the detector: trust them less."""
    import cv2

    for side in (0, 1):
        if not landmarks.has_hand(side):
            continue
        hull = cv2.convexHull(landmarks.hands[side, :, :2].astype(np.float32))
        for i, (x, y) in enumerate(landmarks.face[:, :2]):
            if cv2.pointPolygonTest(hull, (float(x), float(y)), False) >= 0:
                face_w[i] *= 0.2
    return face_w


# --- the optimisation ------------------------------------------------------------------------------

class _Variables:
    """The optimised leaves. Translation as (a, b, log depth): transl = depth * (a, b, -1), which keeps
    the image-plane position and the distance equally well conditioned for Adam."""

    def __init__(self, model: BodyModel, ab: torch.Tensor, log_depth: float):
        z = lambda *s: torch.zeros(*s, dtype=torch.float32)  # noqa: E731
        self.global_orient = z(1, 3)
        self.ab = ab.reshape(1, 2).float().clone()
        self.log_depth = torch.tensor([[log_depth]], dtype=torch.float32)
        self.shape = z(1, model.num_shape)
        self.pose = z(1, len(CANONICAL_JOINTS), 3)
        self.hand_pose = z(1, len(HAND_JOINTS), 3)
        self.expression = z(1, model.num_expression)
        # ARKit activations (anny) live in [0, 1]; other models' coefficients only get the prior.
        self.bounded_expression = tuple(model.expression_names) == ARKIT_NAMES

    @classmethod
    def from_fit(cls, model: BodyModel, fit: "BodyFit") -> "_Variables":
        """Leaves starting at an earlier fit (video tracking's warm start)."""
        depth = max(float(-fit.transl[2]), 1e-3)
        var = cls(model, torch.as_tensor(fit.transl[:2] / depth, dtype=torch.float32), math.log(depth))
        leaf = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))[None].clone()  # noqa: E731
        var.shape, var.global_orient = leaf(fit.shape), leaf(fit.global_orient)
        var.pose, var.hand_pose, var.expression = leaf(fit.pose), leaf(fit.hand_pose), leaf(fit.expression)
        return var

    def transl(self) -> torch.Tensor:
        depth = self.log_depth.exp()
        return torch.cat([self.ab * depth, -depth], dim=-1)

    def params(self) -> BodyParams:
        return BodyParams(shape=self.shape, global_orient=self.global_orient, transl=self.transl(),
                          pose=self.pose, hand_pose=self.hand_pose, expression=self.expression)

    def clamp_(self) -> None:
        with torch.no_grad():
            self.shape.clamp_(-0.5, 0.5)
            if self.bounded_expression:
                self.expression.clamp_(0.0, 1.0)


def _prior(var: _Variables, expression_weight: float) -> torch.Tensor:
    """Plausibility of the current leaves (body/priors.py), weighted as the fit uses it."""
    return (priors.pose_prior(var.pose)[0] + priors.shape_prior(var.shape)[0]
            + priors.hand_prior(var.hand_pose)[0] * 0.1
            + expression_weight * priors.expression_prior(var.expression)[0])


def _result(body_model: BodyModel, table: SurfacePoints, var: _Variables, tg: _Targets, landmarks: Landmarks,
            camera: Camera, image_size: tuple[int, int], info: dict) -> "BodyFit":
    """The BodyFit at the leaves' final values, with per-landmark errors in pixels."""
    with torch.no_grad():
        params = var.params()
        face_uv, kp_uv, _ = _project(body_model, table, params, camera)
    face_err = (face_uv - tg.face_uv).norm(dim=-1).numpy().astype(np.float32)
    _, kp_conf = landmarks.keypoints()
    kp_err = np.where(kp_conf > 0, (kp_uv - tg.kp_uv).norm(dim=-1).numpy(), np.nan).astype(np.float32)
    p = params.map(lambda t: t.detach()[0].numpy().copy())
    return BodyFit(model_name=body_model.name, image_size=image_size, camera=camera, shape=p.shape,
                   global_orient=p.global_orient, transl=p.transl, pose=p.pose, hand_pose=p.hand_pose,
                   expression=p.expression, face_errors=face_err, keypoint_errors=kp_err, face_diagonal=tg.diag,
                   info=info)


def _data_loss(face_uv, kp_uv, tg: _Targets) -> torch.Tensor:
    r_face = (face_uv - tg.face_uv).square().sum(-1) / (FACE_UNIT * tg.diag) ** 2
    face = (tg.face_w * r_face).sum() / tg.face_w.sum().clamp(min=1e-6)
    r_kp = (kp_uv - tg.kp_uv).square().sum(-1) / (BODY_UNIT * tg.diag) ** 2
    body = (tg.kp_w * (torch.sqrt(1.0 + r_kp) - 1.0)).sum()
    return face + 0.1 * body


def _project(model: BodyModel, table: SurfacePoints, params: BodyParams, camera: Camera):
    out = model(params)
    face = table.locate(out.vertices, model.faces)[0]  # (478, 3)
    face_uv, _ = camera.project(face)
    kp_uv, _ = camera.project(out.keypoints[0])
    return face_uv, kp_uv, out


def _adam(leaves: list[tuple[torch.Tensor, float]], loss_fn, steps: int, var: _Variables) -> float:
    for leaf, _ in leaves:
        leaf.requires_grad_(True)
    opt = torch.optim.Adam([{"params": [leaf], "lr": lr} for leaf, lr in leaves])
    # Cosine decay: large moves first, then settle precisely.
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.1 + 0.45 * (1 + math.cos(math.pi * k / max(steps, 1))))
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        sched.step()
        var.clamp_()
    for leaf, _ in leaves:
        leaf.requires_grad_(False)
    return float(loss.detach())


def fit_portrait(image: np.ndarray, landmarks: Landmarks, body_model: BodyModel, *,
                 steps: dict[str, int] | None = None, fov_deg: float = DEFAULT_FOV_DEG) -> BodyFit:
    """Fit `body_model` to the detected `landmarks` of `image` ((H, W, 3) uint8; used for its size)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    steps = {**STEPS, **(steps or {})}
    height, width = image.shape[:2]
    if not landmarks.has_face:
        raise ValueError("fit_portrait needs face landmarks (detect_landmarks raises when there are none)")
    if landmarks.image_size != (height, width):
        raise ValueError(f"landmarks are for a {landmarks.image_size} image, not {(height, width)}")
    camera = Camera.for_image(width, height, fov_deg=fov_deg)
    table = load_face_table(body_model)
    tg = _targets(landmarks)
    torch_threads = torch.get_num_threads()

    # 1. rigid: the rest body's points, moved as a whole.
    with torch.no_grad():
        rest = body_model(body_model.zero_params(1))
        rest_face = table.locate(rest.vertices, body_model.faces)[0]
        rest_kp = rest.keypoints[0]
    ab, log_depth = _initial_translation(rest_face, tg, camera)
    var = _Variables(body_model, ab, log_depth)

    def rigid_loss():
        import roma

        rot = roma.rotvec_to_rotmat(var.global_orient[0])
        t = var.transl()[0]
        face_uv, _ = camera.project(rest_face @ rot.T + t)
        kp_uv, _ = camera.project(rest_kp @ rot.T + t)
        return _data_loss(face_uv, kp_uv, tg)

    losses = {"rigid": _adam([(var.global_orient, 0.02), (var.ab, 0.005), (var.log_depth, 0.02)],
                             rigid_loss, steps["rigid"], var)}

    # 2. body: shape, pose and hands, through the model.
    face_mask = torch.tensor([[1.0 if j in FACE_JOINTS else 0.0] for j in CANONICAL_JOINTS])

    def full_loss(expression_weight: float):
        face_uv, kp_uv, _ = _project(body_model, table, var.params(), camera)
        return _data_loss(face_uv, kp_uv, tg) + 0.5 * _prior(var, expression_weight)

    _init_arms(body_model, var, tg, camera)
    hands = landmarks.has_hand(0) or landmarks.has_hand(1)
    leaves = [(var.global_orient, 0.01), (var.ab, 0.002), (var.log_depth, 0.01), (var.shape, 0.02), (var.pose, 0.02)]
    if hands:
        leaves.append((var.hand_pose, 0.03))
    losses["body"] = _adam(leaves, lambda: full_loss(1.0), steps["body"], var)

    # 3. face: expression, head, neck and eyes (the rest of the pose held).
    body_pose = var.pose.detach().clone()
    face_pose = var.pose.detach().clone()

    def face_loss():
        var.pose = body_pose * (1 - face_mask) + face_pose * face_mask
        return full_loss(0.2)

    losses["face"] = _adam([(face_pose, 0.01), (var.expression, 0.03), (var.ab, 0.001), (var.log_depth, 0.005),
                            (var.global_orient, 0.005), (var.shape, 0.01)], face_loss, steps["face"], var)
    var.pose = (body_pose * (1 - face_mask) + face_pose * face_mask).detach()

    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return _result(body_model, table, var, tg, landmarks, camera, (height, width),
                   {"seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2), "steps": steps,
                    "losses": losses, "fov_deg": fov_deg, "threads": torch_threads})


def _initial_translation(rest_face: torch.Tensor, tg: _Targets, camera: Camera) -> tuple[torch.Tensor, float]:
    """Root position putting the upright rest face over the detected one: linear least squares in
    (tx, ty, tz) of  (u - cx) * -(Z + tz) = f (X + tx),  (v - cy) * -(Z + tz) = -f (Y + ty)."""
    p = rest_face.double().numpy()
    uv = tg.face_uv.double().numpy()
    du, dv = uv[:, 0] - camera.cx, uv[:, 1] - camera.cy
    n = len(p)
    a = np.zeros((2 * n, 3))
    b = np.zeros(2 * n)
    a[:n, 0], a[:n, 2], b[:n] = camera.fx, du, -du * p[:, 2] - camera.fx * p[:, 0]
    a[n:, 1], a[n:, 2], b[n:] = -camera.fy, dv, -dv * p[:, 2] + camera.fy * p[:, 1]
    (tx, ty, tz), *_ = np.linalg.lstsq(a, b, rcond=None)
    depth = max(-tz, 0.2)
    return torch.tensor([tx / depth, ty / depth]), math.log(depth)


SHOULDER_GRID_DEG = ((30.0, 0.0, -30.0, -60.0, -90.0, -120.0), (-40.0, -20.0, 0.0, 30.0, 60.0))
"""Upper-arm candidates: rotation about x (negative raises the arm forwards) x abduction (positive
lifts it sideways, mirrored between the sides)."""
ELBOW_GRID_DEG = ((0.0, -40.0, -80.0, -120.0, -150.0), (-60.0, -30.0, 0.0, 30.0, 60.0))
"""Forearm candidates: rotation about x (negative bends it up) x about z (positive turns it inwards)."""


def _init_arms(model: BodyModel, var: _Variables, tg: _Targets, camera: Camera) -> None:
    """Start each arm from the best of a few candidate poses for its detected keypoints: gradient steps
    alone do not bring a hand from the rest pose (arms down) to, say, the cheek. Two batched model passes:
    upper arms (scored on the elbows), then forearms (scored on the wrists and hands). Arms without a
    detected elbow, wrist or hand keep their rest pose."""
    groups: dict[str, dict[str, list[int]]] = {"l": {"upper": [], "lower": []}, "r": {"upper": [], "lower": []}}
    for k, name in enumerate(KEYPOINT_NAMES):
        if float(tg.kp_w[k]) <= 0:
            continue
        if name.startswith("hand_"):
            groups[name[5]]["lower"].append(k)
        elif name.startswith("elbow"):
            groups[name[-1]]["upper"].append(k)
            groups[name[-1]]["lower"].append(k)
        elif name.startswith("wrist"):
            groups[name[-1]]["lower"].append(k)
    refine = tuple((a, b) for a in (-15.0, 0.0, 15.0) for b in (-15.0, 0.0, 15.0))
    for joint, key, grid_deg, relative in (("shoulder", "upper", SHOULDER_GRID_DEG, False),
                                           ("shoulder", "upper", refine, True),
                                           ("elbow", "lower", ELBOW_GRID_DEG, False),
                                           ("elbow", "lower", refine, True)):
        # Without a detected elbow the upper arm is chosen by the wrist and hand.
        active = {side: g[key] or (g["lower"] if joint == "shoulder" else []) for side, g in groups.items()}
        active = {side: idx for side, idx in active.items() if idx}
        if not active:
            continue
        grid = torch.tensor(grid_deg if relative else [(x, z) for x in grid_deg[0] for z in grid_deg[1]]).deg2rad()
        n = len(grid)
        pose = var.pose.detach().expand(n, -1, -1).clone()
        for side, mirror in (("l", 1.0), ("r", -1.0)):
            j = CANONICAL_JOINTS.index(f"{joint}_{side}")
            # Shoulder: abduction is +z on the left, -z on the right; elbow: inwards is -z on the left.
            sign = mirror if joint == "shoulder" else -mirror
            start = pose[:, j].clone() if relative else torch.zeros_like(pose[:, j])
            pose[:, j, 0] = start[:, 0] + grid[:, 0]
            pose[:, j, 2] = start[:, 2] + sign * grid[:, 1]
        base = var.params()
        params = BodyParams(shape=base.shape.expand(n, -1), global_orient=base.global_orient.expand(n, -1),
                            transl=base.transl.expand(n, -1), pose=pose,
                            hand_pose=base.hand_pose.expand(n, -1, -1), expression=base.expression.expand(n, -1))
        with torch.no_grad():
            kp_uv, _ = camera.project(model(params).keypoints)  # (N, K, 2)
            err = (kp_uv - tg.kp_uv).square().sum(-1) / (BODY_UNIT * tg.diag) ** 2
            for side, idx in active.items():
                j = CANONICAL_JOINTS.index(f"{joint}_{side}")
                prior = 0.5 * priors.pose_prior(pose[:, j:j + 1], slice(j, j + 1))
                cost = (tg.kp_w[idx] * (torch.sqrt(1.0 + err[:, idx]) - 1.0)).sum(-1) + prior
                var.pose[0, j] = pose[int(torch.argmin(cost)), j]
