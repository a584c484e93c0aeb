import math

import numpy as np
import pytest
import torch

from vlogger_cli.motion import representation as rep


def test_layout_names_every_channel_and_puts_arkit_first():
    assert rep.MOTION_DIM == 52 + 6 * 11 + 2 + 1 + 6 == len(rep.CHANNEL_NAMES)
    assert len(set(rep.CHANNEL_NAMES)) == rep.MOTION_DIM
    assert rep.CHANNEL_NAMES[:52] == rep.ARKIT_NAMES
    assert rep.ARKIT_NAMES[0] == "browDownLeft" and rep.ARKIT_NAMES[-1] == "tongueOut"
    assert rep.channel_index("jawOpen") == rep.ARKIT_NAMES.index("jawOpen")
    assert "eye_l" not in rep.POSE_JOINTS and "head" in rep.POSE_JOINTS
    with pytest.raises(KeyError):
        rep.channel_index("jawClose")


def test_face_mask_covers_expression_gaze_blink_only():
    mask = rep.face_mask()
    assert mask[rep.EXPRESSION].all() and mask[rep.GAZE].all() and mask[rep.BLINK].all()
    assert not mask[rep.POSE].any() and not mask[rep.HANDS].any()


def test_neutral_motion_has_identity_residuals():
    x = rep.neutral_motion(3)
    mats = rep.rotation_6d_to_matrix(torch.as_tensor(x[:, rep.POSE]).reshape(3, -1, 6))
    assert torch.allclose(mats, torch.eye(3).expand_as(mats), atol=1e-6)


def test_rotation_round_trips():
    g = torch.Generator().manual_seed(0)
    axis = torch.nn.functional.normalize(torch.randn(500, 3, generator=g), dim=-1)
    angle = torch.rand(500, 1, generator=g) * (0.97 * math.pi)
    aa = axis * angle
    m = rep.axis_angle_to_matrix(aa)
    assert torch.allclose(m @ m.transpose(-1, -2), torch.eye(3).expand_as(m), atol=1e-5)
    assert torch.allclose(torch.det(m), torch.ones(500), atol=1e-5)
    assert torch.allclose(rep.matrix_to_axis_angle(m), aa, atol=1e-4)
    assert torch.allclose(rep.rotation_6d_to_matrix(rep.matrix_to_rotation_6d(m)), m, atol=1e-5)
    assert torch.allclose(rep.rotation_6d_to_axis_angle(rep.axis_angle_to_rotation_6d(aa)), aa, atol=1e-4)


def test_rotation_6d_projects_any_vector_onto_a_rotation():
    m = rep.rotation_6d_to_matrix(torch.randn(10, 6))
    assert torch.allclose(m @ m.transpose(-1, -2), torch.eye(3).expand_as(m), atol=1e-5)


def test_small_x_rotation_is_a_nod_down():
    # body frame: the face looks along -y; a positive x rotation tips it down (-z)
    m = rep.axis_angle_to_matrix(torch.tensor([0.3, 0.0, 0.0]))
    face = m @ torch.tensor([0.0, -1.0, 0.0])
    assert face[2] < 0


def test_normalization_round_trip(tmp_path):
    frames = np.random.default_rng(0).normal(2.0, 3.0, (200, rep.MOTION_DIM)).astype(np.float32)
    frames[:, 5] = 0.25  # a constant channel must not blow up
    norm = rep.Normalization.fit(frames)
    z = norm.normalize(frames)
    assert abs(z[:, 0].mean()) < 1e-4 and abs(z[:, 0].std() - 1) < 1e-3
    assert np.isfinite(z).all() and np.allclose(z[:, 5], 0)
    norm.save(tmp_path / "n.safetensors")
    loaded = rep.Normalization.load(tmp_path / "n.safetensors")
    np.testing.assert_array_equal(loaded.mean, norm.mean)
    np.testing.assert_allclose(loaded.denormalize(torch.as_tensor(z)).numpy(), frames, atol=1e-4)


def test_axis_angle_near_pi_keeps_axis_and_angle():
    aa = torch.tensor([[0.0, 0.0, math.pi - 1e-4], [0.6, 0.8, 0.0]]) * torch.tensor([[1.0], [math.pi - 1e-4]])
    back = rep.matrix_to_axis_angle(rep.axis_angle_to_matrix(aa.double())).float()
    assert torch.allclose(back, aa, atol=1e-3)
