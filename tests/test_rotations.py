"""Rotation conversions (vlogger_cli/rotations.py): round trips, 6D projection, conventions."""

import math

import torch

from vlogger_cli import rotations as R


def test_rotation_round_trips():
    g = torch.Generator().manual_seed(0)
    axis = torch.nn.functional.normalize(torch.randn(500, 3, generator=g), dim=-1)
    angle = torch.rand(500, 1, generator=g) * (0.97 * math.pi)
    aa = axis * angle
    m = R.axis_angle_to_matrix(aa)
    assert torch.allclose(m @ m.transpose(-1, -2), torch.eye(3).expand_as(m), atol=1e-5)
    assert torch.allclose(torch.det(m), torch.ones(500), atol=1e-5)
    assert torch.allclose(R.matrix_to_axis_angle(m), aa, atol=1e-4)
    assert torch.allclose(R.rotation_6d_to_matrix(R.matrix_to_rotation_6d(m)), m, atol=1e-5)
    assert torch.allclose(R.rotation_6d_to_axis_angle(R.axis_angle_to_rotation_6d(aa)), aa, atol=1e-4)


def test_rotation_6d_projects_any_vector_onto_a_rotation():
    m = R.rotation_6d_to_matrix(torch.randn(10, 6))
    assert torch.allclose(m @ m.transpose(-1, -2), torch.eye(3).expand_as(m), atol=1e-5)


def test_small_x_rotation_is_a_nod_down():
    # body frame: the face looks along -y; a positive x rotation tips it down (-z)
    m = R.axis_angle_to_matrix(torch.tensor([0.3, 0.0, 0.0]))
    face = m @ torch.tensor([0.0, -1.0, 0.0])
    assert face[2] < 0


def test_axis_angle_near_pi_keeps_axis_and_angle():
    aa = torch.tensor([[0.0, 0.0, math.pi - 1e-4], [0.6, 0.8, 0.0]]) * torch.tensor([[1.0], [math.pi - 1e-4]])
    back = R.matrix_to_axis_angle(R.axis_angle_to_matrix(aa.double())).float()
    assert torch.allclose(back, aa, atol=1e-3)
