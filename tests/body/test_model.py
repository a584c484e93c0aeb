"""The BodyModel interface, for both adapters (anny, and smplx on a generated SMPL-X file)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vlogger_cli.body.model import (
    CANONICAL_JOINTS, HAND_JOINTS, KEYPOINT_INDEX, KEYPOINT_NAMES, PARTS, head_rotation,
)


def test_shapes_dtype_and_batching(body_model):
    params = body_model.zero_params(3, distance=2.0)
    params.pose[1, CANONICAL_JOINTS.index("elbow_l")] = torch.tensor([0.0, 0.0, 0.7])
    params.shape[2] = 0.3
    with torch.no_grad():
        out = body_model(params)
        single = body_model(params.map(lambda t: t[1:2]))
    v = body_model.num_vertices
    assert out.vertices.shape == (3, v, 3) and out.vertices.dtype == torch.float32
    assert out.keypoints.shape == (3, len(KEYPOINT_NAMES), 3) and out.keypoints.dtype == torch.float32
    assert out.joints.shape == (3, len(CANONICAL_JOINTS), 3)
    assert body_model.faces.shape[1] == 3 and body_model.faces.max() < v and body_model.faces.min() >= 0
    # Batch members are independent: each equals its own single run, and they differ from each other.
    torch.testing.assert_close(out.vertices[1], single.vertices[0], atol=1e-5, rtol=0)
    assert (out.vertices[1] - out.vertices[0]).abs().max() > 1e-3
    assert (out.vertices[2] - out.vertices[0]).abs().max() > 1e-4


def test_gradients_reach_every_parameter(body_model):
    params = body_model.zero_params(2, distance=2.0)
    params.pose[:, CANONICAL_JOINTS.index("head")] = head_rotation(yaw=10)
    for name in ("shape", "global_orient", "transl", "pose", "hand_pose", "expression"):
        getattr(params, name).requires_grad_(True)
    out = body_model(params)
    (out.vertices.square().sum() + out.keypoints.square().sum()).backward()
    for name in ("shape", "global_orient", "transl", "pose", "hand_pose", "expression"):
        grad = getattr(params, name).grad
        assert grad is not None and torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, name


def test_part_labels_cover_every_vertex(body_model):
    labels = body_model.part_labels
    assert labels.shape == (body_model.num_vertices,) and labels.dtype == np.uint8
    assert labels.min() >= 1 and labels.max() < len(PARTS)  # no vertex is background
    face_labels = body_model.part_faces()
    assert face_labels.shape == (len(body_model.faces),) and face_labels.min() >= 1


def test_rest_pose_follows_the_world_convention(body_model):
    """x = subject's left, y = up, z = forward: identity orientation faces the camera at +z."""
    with torch.no_grad():
        kp = body_model(body_model.zero_params(1)).keypoints[0].numpy()
    k = KEYPOINT_INDEX
    assert kp[k["nose"], 1] > kp[k["hip_l"], 1] + 0.3           # head above hips
    assert kp[k["eye_l"], 0] > kp[k["eye_r"], 0]                 # left eye at +x
    assert kp[k["shoulder_l"], 0] > kp[k["shoulder_r"], 0]
    assert kp[k["nose"], 2] > kp[k["ear_l"], 2] + 0.02           # nose in front of the ears


def test_head_yaw_turns_the_face_to_the_subjects_left(body_model):
    params = body_model.zero_params(2)
    params.pose[1, CANONICAL_JOINTS.index("head")] = head_rotation(yaw=30)
    with torch.no_grad():
        kp = body_model(params).keypoints.numpy()
    nose = KEYPOINT_INDEX["nose"]
    assert kp[1, nose, 0] - kp[0, nose, 0] > 0.02                 # turned towards +x
    assert abs(kp[1, nose, 1] - kp[0, nose, 1]) < 0.01             # no nod
    wrist = KEYPOINT_INDEX["wrist_l"]
    np.testing.assert_allclose(kp[1, wrist], kp[0, wrist], atol=1e-5)  # only the head moved


def test_global_orientation_and_translation(body_model):
    params = body_model.zero_params(2)
    params.global_orient[1] = torch.tensor([0.0, math.pi / 2, 0.0])  # a quarter turn to the left
    params.transl[1] = torch.tensor([0.5, 0.0, -3.0])
    with torch.no_grad():
        out = body_model(params)
        as_matrix = body_model(params.replace(global_orient=torch.stack([torch.eye(3), _rot_y(math.pi / 2)])))
    forward = out.keypoints[:, KEYPOINT_INDEX["nose"]] - out.keypoints[:, KEYPOINT_INDEX["ear_l"]].add(
        out.keypoints[:, KEYPOINT_INDEX["ear_r"]]).div(2)
    assert forward[0, 2] > 0.05 and forward[1, 0] > 0.05            # facing +z, then +x
    centre0 = out.vertices[0].mean(0)
    assert abs(float(out.vertices[1].mean(0)[2] - centre0[2]) + 3.0) < 0.2
    torch.testing.assert_close(as_matrix.vertices[1], out.vertices[1], atol=1e-5, rtol=0)


def _rot_y(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def test_hand_pose_moves_only_fingers(body_model):
    params = body_model.zero_params(2)
    params.hand_pose[1, HAND_JOINTS.index("index1_l")] = torch.tensor([0.0, 0.0, 0.8])
    with torch.no_grad():
        kp = body_model(params).keypoints.numpy()
    tip, wrist = KEYPOINT_INDEX["hand_l.index_tip"], KEYPOINT_INDEX["hand_l.wrist"]
    assert np.linalg.norm(kp[1, tip] - kp[0, tip]) > 0.01
    np.testing.assert_allclose(kp[1, wrist], kp[0, wrist], atol=1e-5)


def test_expression_vector_by_name(body_model):
    name = body_model.expression_names[-1]
    vec = body_model.expression_vector(2, **{name: 0.5})
    assert vec.shape == (2, body_model.num_expression) and vec[:, -1].eq(0.5).all() and vec[:, :-1].eq(0).all()
    with pytest.raises(KeyError):
        body_model.expression_vector(1, notAnExpression=1.0)
