"""Body-model fixtures: the process-wide anny model, and a generated SMPL-X model file.

The SMPL-X file is random but well-formed, in SMPL-X's npz format, so that the real `smplx` loading and
posing code runs without the licensed model: SMPL-X's 55-joint kinematic tree, a rough T-pose skeleton, one
small convex blob of vertices per joint (skinned to it), SMPL-X's vertex count (10,475: smplx's keypoint
vertex ids index into it) with the keypoint vertices placed where they belong (nose in front of the head,
finger tips at the ends of the fingers), random small shape/expression/pose correctives, face landmarks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SMPLX_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
                 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
                 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53]
NUM_VERTICES = 10475


def _skeleton() -> np.ndarray:
    """(55, 3) rough SMPL-X T-pose joints (x left, y up, z forward, metres)."""
    left = {1: (0.06, -0.09, 0.0), 4: (0.10, -0.47, 0.0), 7: (0.09, -0.87, -0.04), 10: (0.11, -0.92, 0.08),
            13: (0.07, 0.42, 0.0), 16: (0.17, 0.45, -0.01), 18: (0.43, 0.44, -0.03), 20: (0.69, 0.45, -0.03),
            23: (0.03, 0.66, 0.10)}
    joints = np.zeros((55, 3))
    for j, p in left.items():
        joints[j] = p
        joints[j + 1] = (-p[0], p[1], p[2])
    joints[[3, 6, 9, 12, 15, 22]] = [(0, 0.11, -0.01), (0, 0.24, 0), (0, 0.30, 0.02), (0, 0.51, -0.01),
                                     (0, 0.60, 0.04), (0, 0.57, 0.06)]
    for side, base, wrist in ((1, 25, 20), (-1, 40, 21)):
        for f, lateral in enumerate((0.02, 0.0, -0.035, -0.018, 0.035)):  # index, middle, pinky, ring, thumb
            for k in range(3):
                reach = (0.03 if f == 4 else 0.09) + 0.025 * k
                joints[base + 3 * f + k] = joints[wrist] + (side * reach, 0.0, lateral + (0.02 if f == 4 else 0.0))
    return joints


def make_smplx_npz(path: Path, *, seed: int = 0, num_betas: int = 10, num_expression: int = 10) -> Path:
    from scipy.spatial import ConvexHull
    from smplx.vertex_ids import vertex_ids

    rng = np.random.default_rng(seed)
    joints = _skeleton()
    radius = np.full(55, 0.04)
    radius[25:] = 0.008
    radius[[15]] = 0.09
    radius[[23, 24]] = 0.012
    owner = np.arange(NUM_VERTICES) % 55  # vertex -> joint blob
    verts = np.zeros((NUM_VERTICES, 3))
    faces = []
    for j in range(55):
        idx = np.nonzero(owner == j)[0]
        # Fibonacci sphere around the joint: a closed convex blob.
        n = len(idx)
        k = np.arange(n) + 0.5
        phi, theta = np.arccos(1 - 2 * k / n), np.pi * (1 + 5 ** 0.5) * k
        unit = np.stack([np.cos(theta) * np.sin(phi), np.cos(phi), np.sin(theta) * np.sin(phi)], -1)
        verts[idx] = joints[j] + radius[j] * unit
        faces.append(idx[ConvexHull(unit).simplices])
    faces = np.concatenate(faces)

    # Put smplx's keypoint vertices where they belong by swapping them with the right blob vertex.
    ids = vertex_ids["smplx"]
    head, want = np.nonzero(owner == 15)[0], {}
    want[ids["nose"]] = head[np.argmax(verts[head, 2])]
    for side, sign in (("l", 1), ("r", -1)):
        want[ids[f"{side}eye"]] = np.nonzero(owner == (23 if side == "l" else 24))[0][0]
        want[ids[f"{side}ear"]] = head[np.argmax(sign * verts[head, 0])]
        for f, finger in enumerate(("index", "middle", "pinky", "ring", "thumb")):
            blob = np.nonzero(owner == (25 if side == "l" else 40) + 3 * f + 2)[0]
            want[ids[f"{side}{finger}"]] = blob[np.argmax(sign * verts[blob, 0])]
    perm = np.arange(NUM_VERTICES)  # new index -> old index
    for new, old in want.items():
        where = int(np.nonzero(perm == old)[0][0])
        perm[[new, where]] = perm[[where, new]]
    inverse = np.argsort(perm)
    verts, owner, faces = verts[perm], owner[perm], inverse[faces]

    weights = np.zeros((NUM_VERTICES, 55))
    weights[np.arange(NUM_VERTICES), owner] = 0.8
    parent = np.array(SMPLX_PARENTS)[owner]
    weights[np.arange(NUM_VERTICES), np.where(parent < 0, owner, parent)] += 0.2
    regressor = np.zeros((55, NUM_VERTICES))
    regressor[owner, np.arange(NUM_VERTICES)] = 1.0
    regressor /= regressor.sum(1, keepdims=True)

    head_faces = np.nonzero(np.isin(faces, np.nonzero(owner == 15)[0]).all(1))[0]
    bary = rng.random((51, 3))
    dyn_bary = rng.random((79, 17, 3))
    kintree = np.stack([np.array(SMPLX_PARENTS, dtype=np.int64) % (2**32), np.arange(55)])
    data = dict(
        v_template=verts.astype(np.float32),
        f=faces.astype(np.uint32),
        shapedirs=(rng.normal(size=(NUM_VERTICES, 3, num_betas + num_expression)) * 2e-3).astype(np.float32),
        posedirs=(rng.normal(size=(NUM_VERTICES, 3, 54 * 9)) * 1e-4).astype(np.float32),
        J_regressor=regressor.astype(np.float32),
        weights=weights.astype(np.float32),
        kintree_table=kintree,
        hands_componentsl=np.eye(45, dtype=np.float32), hands_componentsr=np.eye(45, dtype=np.float32),
        hands_meanl=np.zeros(45, np.float32), hands_meanr=np.zeros(45, np.float32),
        lmk_faces_idx=rng.choice(head_faces, 51).astype(np.int64),
        lmk_bary_coords=(bary / bary.sum(1, keepdims=True)).astype(np.float32),
        dynamic_lmk_faces_idx=rng.choice(head_faces, (79, 17)).astype(np.int64),
        dynamic_lmk_bary_coords=(dyn_bary / dyn_bary.sum(-1, keepdims=True)).astype(np.float32),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **data)
    return path


@pytest.fixture(scope="session")
def smplx_file(tmp_path_factory) -> Path:
    """A generated SMPLX_NEUTRAL.npz in its own folder."""
    return make_smplx_npz(tmp_path_factory.mktemp("smplx") / "SMPLX_NEUTRAL.npz")


@pytest.fixture(scope="session")
def smplx_model(smplx_file):
    from vlogger_cli.body.smplx_model import SmplxBody

    return SmplxBody(smplx_file)


@pytest.fixture(scope="session", params=["anny", "smplx"])
def body_model(request):
    """Both adapters, for the interface tests."""
    return request.getfixturevalue(request.param if request.param == "anny" else "smplx_model")
