import numpy as np
import pytest
import torch

from vlogger_cli.motion import representation as rep
from vlogger_cli.rotations import rotation_6d_to_matrix


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
    mats = rotation_6d_to_matrix(torch.as_tensor(x[:, rep.POSE]).reshape(3, -1, 6))
    assert torch.allclose(mats, torch.eye(3).expand_as(mats), atol=1e-6)


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
