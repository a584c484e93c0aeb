"""smplx adapter, for users who hold SMPL-X model files (`SMPLX_NEUTRAL.npz` from smpl-x.is.tue.mpg.de).

The file is looked up at a given path (file or folder) or under `weights/body/smplx/`. It is loaded by the
`smplx` package's own SMPLX class and posed by its `lbs` (the real code); this adapter only maps the
canonical parameters onto SMPL-X's joints and reads keypoints. SMPL-X's frame already is the project's
(x left, y up, z forward, metres) and its joint rotations are axis-angles in the rest-pose axes carried by
the parent: canonical rotations pass straight through.

shape = SMPL-X betas (`num_betas`), expression = SMPL-X expression coefficients followed by the jaw's
axis-angle (`jaw_x`, `jaw_y`, `jaw_z`; SMPL-X opens the mouth with the jaw joint, not a blendshape).
Never unpickles: `.pkl` files are refused, and `.npz` files holding pickled objects are loaded from a
sanitised copy without them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
from pathlib import Path

import numpy as np
import torch

from vlogger_cli.body.model import (
    CANONICAL_JOINTS, FINGERS, HAND_JOINTS, KEYPOINT_NAMES, PART_INDEX, BodyModel, BodyOutput, BodyParams,
    as_rotvec, place_in_world,
)
from vlogger_cli.errors import JobError
from vlogger_cli.paths import cache_dir, weights_dir

log = logging.getLogger(__name__)

SMPLX_FILE = "SMPLX_NEUTRAL.npz"
NUM_JOINTS = 55  # SMPL-X: 22 body + jaw + 2 eyes + 2 x 15 finger joints

# SMPL-X joint indices (smplx.joint_names.JOINT_NAMES order).
J = {"pelvis": 0, "hip_l": 1, "hip_r": 2, "spine1": 3, "knee_l": 4, "knee_r": 5, "spine2": 6, "ankle_l": 7,
     "ankle_r": 8, "spine3": 9, "foot_l": 10, "foot_r": 11, "neck": 12, "collar_l": 13, "collar_r": 14,
     "head": 15, "shoulder_l": 16, "shoulder_r": 17, "elbow_l": 18, "elbow_r": 19, "wrist_l": 20,
     "wrist_r": 21, "jaw": 22, "eye_l": 23, "eye_r": 24}
_SMPLX_FINGERS = ("index", "middle", "pinky", "ring", "thumb")  # SMPL-X's order within a hand
for _side, _base in (("l", 25), ("r", 40)):
    for _f, _finger in enumerate(_SMPLX_FINGERS):
        for _k in (1, 2, 3):
            J[f"{_finger}{_k}_{_side}"] = _base + 3 * _f + _k - 1

JOINT_MAP: dict[str, tuple[str, ...]] = {
    "spine": ("spine1", "spine2", "spine3"), "neck": ("neck",), "head": ("head",),
    "eye_l": ("eye_l",), "eye_r": ("eye_r",), "clavicle_l": ("collar_l",), "clavicle_r": ("collar_r",),
    "shoulder_l": ("shoulder_l",), "shoulder_r": ("shoulder_r",), "elbow_l": ("elbow_l",),
    "elbow_r": ("elbow_r",), "wrist_l": ("wrist_l",), "wrist_r": ("wrist_r",),
}
# smplx.vertex_ids.vertex_ids["smplx"] names of the keypoints read off single vertices.
_VERTEX_KEYPOINTS = {"nose": "nose", "eye_l": "leye", "eye_r": "reye", "ear_l": "lear", "ear_r": "rear"}
# SMPL-X's 51 static face landmarks follow iBUG-68 without the contour: 31 = iBUG 48, 37 = iBUG 54.
_MOUTH_LANDMARKS = {"mouth_r": 31, "mouth_l": 37}
_LIP_LANDMARKS = range(31, 51)

LIP_RADIUS = 0.008
"""metres around SMPL-X's lip landmarks that count as lips."""


def find_smplx_file(path: str | Path | None = None) -> Path:
    """The SMPL-X npz at `path` (file, or folder holding SMPLX_NEUTRAL.npz) or under weights/body/smplx/."""
    where = Path(path).expanduser() if path is not None else weights_dir() / "body" / "smplx"
    candidate = where / SMPLX_FILE if where.is_dir() or where.suffix == "" else where
    if candidate.suffix == ".pkl":
        raise JobError(f"SMPL-X model {candidate} is a pickle, which vlogger never loads; "
                       f"use the .npz file from smpl-x.is.tue.mpg.de ({SMPLX_FILE})")
    if not candidate.is_file():
        raise JobError(f"SMPL-X model file not found at {candidate}; download SMPL-X (npz) from "
                       f"smpl-x.is.tue.mpg.de and put {SMPLX_FILE} in {weights_dir() / 'body' / 'smplx'} "
                       f"(or give its path), or use the default body model: anny")
    return candidate


def _unpickled_npz(path: Path) -> Path:
    """`path` if it holds only plain arrays; else a cached copy without the pickled ones."""
    with np.load(path, allow_pickle=False) as data:
        plain, pickled = {}, []
        for key in data.files:
            try:
                plain[key] = data[key]
            except ValueError:
                pickled.append(key)
    if not pickled:
        return path
    digest = hashlib.sha256(f"{path.resolve()}:{path.stat().st_mtime_ns}".encode()).hexdigest()[:16]
    clean = cache_dir() / "smplx" / f"{path.stem}-{digest}.npz"
    if not clean.is_file():
        from vlogger_cli.io import atomic_path

        log.info("SMPL-X file %s holds pickled entries %s: using a copy without them", path, pickled)
        with atomic_path(clean) as tmp:
            np.savez(tmp, **plain)
    return clean


class SmplxBody(BodyModel):
    """BodyModel over an SMPL-X model file."""

    name = "smplx"

    def __init__(self, path: str | Path | None = None, *, num_betas: int = 10, num_expression: int = 10):
        super().__init__()
        import smplx
        from smplx.vertex_ids import vertex_ids

        file = _unpickled_npz(find_smplx_file(path))
        try:
            with contextlib.redirect_stdout(io.StringIO()) as printed:  # smplx print()s its warnings
                core = smplx.SMPLX(str(file), ext="npz", num_betas=num_betas, num_expression_coeffs=num_expression,
                                   use_pca=False, flat_hand_mean=True, use_face_contour=False)
            for line in printed.getvalue().splitlines():
                log.info("smplx: %s", line)
        except (KeyError, AttributeError, ValueError, IndexError) as err:
            raise JobError(f"SMPL-X model file {file} is not a valid SMPL-X npz ({err}); "
                           f"download it again from smpl-x.is.tue.mpg.de") from err
        core.requires_grad_(False)
        self.core = core
        self.shape_names = tuple(f"beta{i:02d}" for i in range(core.num_betas))
        self.expression_names = tuple(f"expression{i:02d}" for i in range(core.num_expression_coeffs)) + (
            "jaw_x", "jaw_y", "jaw_z")
        self.faces = np.asarray(core.faces, dtype=np.int64)

        # Per SMPL-X joint: (canonical source index into [pose; hand_pose], fraction).
        src, dst, frac = [], [], []
        for j, name in enumerate(CANONICAL_JOINTS):
            chain = JOINT_MAP[name]
            for joint in chain:
                src.append(j), dst.append(J[joint]), frac.append(1.0 / len(chain))
        for h, name in enumerate(HAND_JOINTS):
            src.append(len(CANONICAL_JOINTS) + h), dst.append(J[name]), frac.append(1.0)
        self.register_buffer("_src", torch.tensor(src), persistent=False)
        self.register_buffer("_dst", torch.tensor(dst), persistent=False)
        self.register_buffer("_frac", torch.tensor(frac)[:, None], persistent=False)
        self.register_buffer("_joint_ids", torch.tensor([J[JOINT_MAP[n][0]] for n in CANONICAL_JOINTS]),
                             persistent=False)

        # Keypoints: ("joint", i) | ("vertex", i) | ("landmark", i) gathered, then ordered.
        ids = vertex_ids["smplx"]
        source = []
        for name in KEYPOINT_NAMES:
            if name in _VERTEX_KEYPOINTS:
                source.append(("v", ids[_VERTEX_KEYPOINTS[name]]))
            elif name in _MOUTH_LANDMARKS:
                source.append(("l", _MOUTH_LANDMARKS[name]))
            elif "." not in name:
                source.append(("j", J[name]))
            else:
                hand, point = name.split(".")
                side = hand[-1]
                finger, _, joint = point.partition("_")
                if point == "wrist":
                    source.append(("j", J[f"wrist_{side}"]))
                elif joint == "tip":
                    source.append(("v", ids[f"{side}{finger}"]))
                else:
                    k = {"cmc": 1, "mcp": 2, "ip": 3} if finger == "thumb" else {"mcp": 1, "pip": 2, "dip": 3}
                    source.append(("j", J[f"{finger}{k[joint]}_{side}"]))
        nv = core.v_template.shape[0]
        if max(i for kind, i in source if kind == "v") >= nv:
            raise JobError(f"SMPL-X model file {file} has {nv} vertices, not SMPL-X's 10,475")
        # Rows of one (K, J + V + L) selection matrix would be wasteful; gather from a concatenation instead.
        offset = {"j": 0, "v": NUM_JOINTS, "l": NUM_JOINTS + nv}
        self.register_buffer("_kp_index", torch.tensor([offset[k] + i for k, i in source]), persistent=False)
        self.part_labels = self._part_labels()

    # -- forward --------------------------------------------------------------------------------
    def forward(self, params: BodyParams) -> BodyOutput:
        from smplx.lbs import lbs, vertices2landmarks

        core, batch = self.core, params.batch_size
        pose = as_rotvec(params.pose, 3).float()  # (B, 13, 3)
        hand = params.hand_pose
        hand = pose.new_zeros(batch, len(HAND_JOINTS), 3) if hand is None else as_rotvec(hand, 3).float()
        rotvec = torch.cat([pose, hand], dim=1)  # (B, 43, 3) canonical = SMPL-X axes
        full = rotvec.new_zeros(batch, NUM_JOINTS, 3)
        full = full.index_add(1, self._dst, rotvec[:, self._src] * self._frac)

        expression = params.expression
        n_expr = core.num_expression_coeffs
        if expression is None:
            expression = rotvec.new_zeros(batch, n_expr + 3)
        expression = expression.float().expand(batch, -1)
        full = full.index_add(1, torch.tensor([J["jaw"]]), expression[:, None, n_expr:])
        betas = params.shape.float().expand(batch, -1)

        shape_components = torch.cat([betas, expression[:, :n_expr]], dim=-1)
        shapedirs = torch.cat([core.shapedirs, core.expr_dirs], dim=-1)
        verts, joints = lbs(shape_components, full.reshape(batch, -1), core.v_template, shapedirs, core.posedirs,
                            core.J_regressor, core.parents, core.lbs_weights, pose2rot=True)
        landmarks = vertices2landmarks(verts, core.faces_tensor, core.lmk_faces_idx.expand(batch, -1).contiguous(),
                                       core.lmk_bary_coords.expand(batch, -1, -1))
        kp = torch.cat([joints, verts, landmarks], dim=1)[:, self._kp_index]
        root = joints[:, 0]
        return BodyOutput(vertices=place_in_world(verts, root, params),
                          keypoints=place_in_world(kp, root, params),
                          joints=place_in_world(joints[:, self._joint_ids], root, params))

    # -- part labels ----------------------------------------------------------------------------
    def _part_labels(self) -> np.ndarray:
        """Dominant skinning joint, then the head split into face / head_back and lips (no mouth interior:
        SMPL-X has none)."""
        core = self.core
        dominant = core.lbs_weights.argmax(1).cpu().numpy()
        by_joint = np.full(NUM_JOINTS, PART_INDEX["lower_body"], np.uint8)
        for name, idx in J.items():
            side = name[-1]
            if name.startswith(("spine", "collar")):
                by_joint[idx] = PART_INDEX["torso"]
            elif name == "neck":
                by_joint[idx] = PART_INDEX["neck"]
            elif name in ("head", "jaw"):
                by_joint[idx] = PART_INDEX["face_skin"]
            elif name.startswith("eye"):
                by_joint[idx] = PART_INDEX["eyes"]
            elif name.startswith("shoulder"):
                by_joint[idx] = PART_INDEX[f"upper_arm_{side}"]
            elif name.startswith("elbow"):
                by_joint[idx] = PART_INDEX[f"forearm_{side}"]
            elif name.startswith("wrist") or name[:-2].rstrip("123") in FINGERS:
                by_joint[idx] = PART_INDEX[f"hand_{side}"]
        labels = by_joint[dominant]

        with torch.no_grad():
            rest = self(self.zero_params(1))
        verts = rest.vertices[0].numpy()
        kp = rest.keypoints[0].numpy()
        ears = (kp[KEYPOINT_NAMES.index("ear_l")] + kp[KEYPOINT_NAMES.index("ear_r")]) / 2
        eyes = (kp[KEYPOINT_NAMES.index("eye_l")] + kp[KEYPOINT_NAMES.index("eye_r")]) / 2
        head = labels == PART_INDEX["face_skin"]
        face = (verts[:, 2] > ears[2] + 0.02) & (verts[:, 1] < eyes[1] + 0.055)
        labels[head & ~face] = PART_INDEX["head_back"]
        from smplx.lbs import vertices2landmarks

        lmk = vertices2landmarks(rest.vertices, self.core.faces_tensor, self.core.lmk_faces_idx[None],
                                 self.core.lmk_bary_coords[None])[0].numpy()[list(_LIP_LANDMARKS)]
        near = np.min(np.linalg.norm(verts[:, None] - lmk[None], axis=-1), axis=1) < LIP_RADIUS
        labels[head & near] = PART_INDEX["lips"]
        return labels.astype(np.uint8)


@functools.lru_cache(maxsize=4)
def smplx_body(path: str | None = None) -> SmplxBody:
    """A process-wide SmplxBody per model file."""
    return SmplxBody(path)
