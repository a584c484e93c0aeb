"""anny adapter (the free default body model): BodyParams -> anny -> BodyOutput in the world frame.

anny 0.6.2, default rig (104 bones), all 52 ARKit facial actions, float32. Native frame: Z up, metres,
faces -y, root bone at the origin; it is converted to the project frame (model.py: x left, y up, z
forward). The core model is built once per process (`anny_core()`); its first build in a cache folder
costs ~40-110 s and 1.2 GB (`paths.anny_cache_dir()`), later loads 0.35 s.

Pose: anny's "local-ref" parameterisation takes each bone's delta rotation in world-aligned axes carried
by its parent, which is exactly the canonical convention up to the fixed change of axes `_TO_ANNY`.
"""

from __future__ import annotations

import functools
import logging
import os

import numpy as np
import torch

from vlogger_cli.body import anny_parts
from vlogger_cli.body.model import (
    ARKIT_NAMES, CANONICAL_JOINTS, COCO_KEYPOINTS, FINGERS, HAND_JOINTS,
    KEYPOINT_NAMES, BodyModel, BodyOutput, BodyParams, as_rotvec, place_in_world,
)
from vlogger_cli.paths import anny_cache_dir, cache_dir

log = logging.getLogger(__name__)

# Columns: the canonical axes (x left, y up, z forward) written in anny's axes (x left, z up, -y forward).
_TO_ANNY = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

# Canonical joint -> anny bones; a rotation is spread evenly over a chain.
BONE_MAP: dict[str, tuple[str, ...]] = {
    "spine": ("spine03", "spine02", "spine01"),
    "neck": ("neck01", "neck02", "neck03"),
    "head": ("head",),
    "eye_l": ("eye.L",),
    "eye_r": ("eye.R",),
    "clavicle_l": ("clavicle.L",),
    "clavicle_r": ("clavicle.R",),
    "shoulder_l": ("upperarm01.L",),
    "shoulder_r": ("upperarm01.R",),
    "elbow_l": ("lowerarm01.L",),
    "elbow_r": ("lowerarm01.R",),
    "wrist_l": ("wrist.L",),
    "wrist_r": ("wrist.R",),
}
_FINGER_BONE = {finger: k for k, finger in enumerate(FINGERS, start=1)}  # thumb = finger1 ... pinky = finger5


def _hand_bone(joint: str) -> str:
    """'index2_l' -> 'finger2-2.L'."""
    name, side = joint.split("_")
    return f"finger{_FINGER_BONE[name[:-1]]}-{name[-1]}.{side.upper()}"


@functools.lru_cache(maxsize=None)
def anny_core():
    """The process-wide anny model (default rig, facial_actions='all', float32, CPU)."""
    cache = anny_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    # warp (anny's skinning kernels) caches compiled kernels; keep them in our cache, not ~/.cache.
    os.environ.setdefault("WARP_CACHE_PATH", str(cache_dir() / "warp"))
    try:
        import warp

        # warp prints a banner (and a "no CUDA driver" warning on CPU machines) when anny initialises it.
        warp.config.log_level = getattr(warp, "LOG_ERROR", 40)
    except ImportError:  # anny falls back to torch skinning
        pass
    import anny
    import anny.paths

    anny.paths.set_anny_cache_path(cache)
    if not any(cache.rglob("*.safetensors")):
        log.warning("building the anny body model cache in %s (once, ~100 s, 1.2 GB)", cache)
    from vlogger_cli.native_logs import silenced_stderr

    with silenced_stderr():  # warp's "no CUDA driver" notice on CPU machines
        model = anny.Anny(facial_actions="all").to(torch.float32)
    model.requires_grad_(False)
    if tuple(model.facial_action_labels) != ARKIT_NAMES:
        raise RuntimeError("anny's facial actions are not the 52 ARKit names in ARKit order")
    return model


class AnnyBody(BodyModel):
    """BodyModel over anny. shape: the 6 phenotypes (gender, age, muscle, weight, height, proportions)
    minus 0.5, so zeros = anny's average adult; expression: the 52 ARKit facial actions (0..1)."""

    name = "anny"

    def __init__(self, core=None):
        super().__init__()
        core = core if core is not None else anny_core()
        self.core = core
        self.shape_names = tuple(core.phenotype_labels)
        self.expression_names = ARKIT_NAMES
        self.faces = core.faces.cpu().numpy().astype(np.int64)
        labels = list(core.bone_labels)
        self.bone_labels = labels

        # Per bone: (canonical index into [pose; hand_pose], fraction of the rotation).
        src, dst, frac = [], [], []
        for j, name in enumerate(CANONICAL_JOINTS):
            chain = BONE_MAP[name]
            for bone in chain:
                src.append(j), dst.append(labels.index(bone)), frac.append(1.0 / len(chain))
        for h, name in enumerate(HAND_JOINTS):
            src.append(len(CANONICAL_JOINTS) + h), dst.append(labels.index(_hand_bone(name))), frac.append(1.0)
        self.register_buffer("_src", torch.tensor(src), persistent=False)
        self.register_buffer("_dst", torch.tensor(dst), persistent=False)
        self.register_buffer("_frac", torch.tensor(frac)[:, None], persistent=False)
        self.register_buffer("_to_anny", _TO_ANNY.clone(), persistent=False)
        self.register_buffer("_joint_bones", torch.tensor([labels.index(BONE_MAP[n][0]) for n in CANONICAL_JOINTS]),
                             persistent=False)

        rest = core()  # identity pose, average shape, neutral face
        rest_vertices = rest["vertices"][0].detach()
        rest_bones = rest["bone_poses"][0, :, :3, 3].detach()

        # Keypoints: anny's COCO regressor (dense weights), vertices (mouth corners, finger tips), bone heads.
        import anny

        coco = anny.KeypointsRegressor.coco(core)
        rows = [coco.labels.index(name if name == "nose" else
                                  f"{'left' if name[-1] == 'l' else 'right'}_{name[:-2]}") for name in COCO_KEYPOINTS]
        coco_weights = coco.regression_weights[rows].detach()  # (17, V)

        parts = anny_parts.vertex_parts(core, rest_vertices)
        self.part_labels = parts.labels
        # Keypoints come from three sources, gathered then put in KEYPOINT_NAMES order:
        # anny's COCO regressor rows, single vertices (mouth corners, finger tips), bone heads (finger joints).
        coco_rows, vertex_ids, bone_ids, order = [], [], [], []
        for name in KEYPOINT_NAMES:
            if name in COCO_KEYPOINTS or name.endswith(".wrist"):
                key = name if name in COCO_KEYPOINTS else f"wrist_{name[5]}"
                order.append(("c", len(coco_rows))), coco_rows.append(COCO_KEYPOINTS.index(key))
            elif name in ("mouth_l", "mouth_r"):
                order.append(("v", len(vertex_ids))), vertex_ids.append(parts.mouth_corners[name[-1]])
            else:
                hand, point = name.split(".")
                side = hand[-1].upper()
                finger, joint = point.split("_")
                if joint == "tip":
                    bone = labels.index(f"finger{_FINGER_BONE[finger]}-3.{side}")
                    order.append(("v", len(vertex_ids)))
                    vertex_ids.append(_finger_tip(core, rest_vertices, rest_bones, bone))
                else:
                    k = {"cmc": 1, "mcp": 2, "ip": 3} if finger == "thumb" else {"mcp": 1, "pip": 2, "dip": 3}
                    order.append(("b", len(bone_ids)))
                    bone_ids.append(labels.index(f"finger{_FINGER_BONE[finger]}-{k[joint]}.{side}"))
        offset = {"c": 0, "v": len(coco_rows), "b": len(coco_rows) + len(vertex_ids)}
        self.register_buffer("_kp_coco", coco_weights[coco_rows].clone(), persistent=False)
        self.register_buffer("_kp_vertices", torch.tensor(vertex_ids), persistent=False)
        self.register_buffer("_kp_bones", torch.tensor(bone_ids), persistent=False)
        self.register_buffer("_kp_order", torch.tensor([offset[k] + i for k, i in order]), persistent=False)

    # -- forward --------------------------------------------------------------------------------
    def forward(self, params: BodyParams) -> BodyOutput:
        batch = params.batch_size
        rotvecs = as_rotvec(params.pose, 3).float()  # (B, 13, 3) canonical axes
        hand = params.hand_pose
        if hand is None:
            hand = rotvecs.new_zeros(batch, len(HAND_JOINTS), 3)
        rotvecs = torch.cat([rotvecs, as_rotvec(hand, 3).float()], dim=1)  # (B, 43, 3)
        rotvecs = rotvecs @ self._to_anny.T  # axis-angle vectors into anny's axes
        import roma

        bone_rot = roma.rotvec_to_rotmat(rotvecs[:, self._src] * self._frac)  # (B, n, 3, 3)
        deltas = torch.eye(4, dtype=torch.float32).repeat(batch, len(self.bone_labels), 1, 1)
        deltas[:, self._dst, :3, :3] = bone_rot

        phenotypes = params.shape.float() + 0.5
        expression = params.expression
        if expression is None:
            expression = phenotypes.new_zeros(batch, len(ARKIT_NAMES))
        out = self.core(pose_parameters=deltas, phenotype_kwargs=phenotypes.expand(batch, -1),
                        facial_actions=expression.float().expand(batch, -1))
        verts = out["vertices"]  # (B, V, 3) anny axes
        bones = out["bone_poses"][:, :, :3, 3]  # (B, nbones, 3) bone heads

        kp = torch.cat([torch.einsum("kv,bvd->bkd", self._kp_coco, verts), verts[:, self._kp_vertices],
                        bones[:, self._kp_bones]], dim=1)[:, self._kp_order]  # (B, K, 3)
        joints = bones[:, self._joint_bones]

        # anny axes -> canonical axes, then into the world (one 3x3 product per point).
        to_canonical = self._to_anny.T
        root = bones[:, 0]
        return BodyOutput(
            vertices=place_in_world(verts, root, params, to_canonical),
            keypoints=place_in_world(kp, root, params, to_canonical),
            joints=place_in_world(joints, root, params, to_canonical),
        )


def _finger_tip(core, rest_vertices: torch.Tensor, rest_bones: torch.Tensor, bone: int) -> int:
    """The vertex skinned mostly to a distal finger bone that lies furthest along that phalanx."""
    weights, indices = core.vertex_bone_weights, core.vertex_bone_indices
    dominant = indices.gather(1, weights.argmax(1, keepdim=True))[:, 0]
    cand = torch.nonzero(dominant == bone)[:, 0]
    parent = core.bone_parents[bone]
    direction = rest_bones[bone] - rest_bones[parent]
    along = (rest_vertices[cand] - rest_bones[bone]) @ direction
    return int(cand[along.argmax()])


@functools.lru_cache(maxsize=None)
def anny_body() -> AnnyBody:
    """The process-wide AnnyBody (stateless, safe to share)."""
    return AnnyBody()
