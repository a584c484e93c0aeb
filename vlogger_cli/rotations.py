"""Ground floor: rotation conversions (pure torch; any leading batch shape).

Axis-angle (Rodrigues), 3x3 matrices and the continuous 6D representation of Zhou et al. 2019 ("On the
continuity of rotation representations"), which stage 1 stores its pose residuals in. Used by the body
tracker's smoothing, stage 1's representation and the controls' posing; imports nothing from vlogger_cli.
"""

from __future__ import annotations

import torch


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt on the two stored columns (Zhou et al. 2019).

    The 6 numbers are the first two *columns* of R, so matrix_to_rotation_6d inverts this exactly.
    """
    a1, a2 = d6[..., 0:3], d6[..., 3:6]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)  # columns


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns, column-major."""
    return torch.cat((matrix[..., :, 0], matrix[..., :, 1]), dim=-1)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) rotation vector (axis * angle, radians) -> (..., 3, 3) by Rodrigues' formula."""
    angle = axis_angle.norm(dim=-1, keepdim=True)  # (..., 1)
    small = angle < 1e-8
    axis = axis_angle / torch.where(small, torch.ones_like(angle), angle)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), dim=-1).reshape(axis.shape[:-1] + (3, 3))
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(k)
    return eye + s * k + (1 - c) * (k @ k)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 3) rotation vector, angle in [0, π].

    v = (R32 - R23, R13 - R31, R21 - R12) = 2 sin θ · axis and trace = 1 + 2 cos θ; near θ = π
    (sin θ → 0) the axis comes from the symmetric part (R + I) / 2 = axis axisᵀ instead.
    """
    m = matrix
    v = torch.stack((m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]), -1)
    cos = (m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2] - 1) / 2
    sin = v.norm(dim=-1) / 2
    angle = torch.atan2(sin, cos)  # (...,)
    axis = v / torch.clamp(2 * sin, min=1e-12)[..., None]
    near_pi = cos < -0.999
    if bool(near_pi.any()):
        sym = (m + torch.eye(3, dtype=m.dtype, device=m.device)) / 2  # = axis axisᵀ at θ = π
        col = torch.argmax(torch.diagonal(sym, dim1=-2, dim2=-1), dim=-1)
        pick = torch.gather(sym, -1, col[..., None, None].expand(sym.shape[:-1] + (1,)))[..., 0]
        axis_pi = torch.nn.functional.normalize(pick, dim=-1)
        # keep the sign consistent with v where v still carries it
        sign = torch.where((axis_pi * v).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(m.dtype)
        axis = torch.where(near_pi[..., None], axis_pi * sign, axis)
    return axis * angle[..., None]


def axis_angle_to_rotation_6d(axis_angle: torch.Tensor) -> torch.Tensor:
    return matrix_to_rotation_6d(axis_angle_to_matrix(axis_angle))


def rotation_6d_to_axis_angle(d6: torch.Tensor) -> torch.Tensor:
    return matrix_to_axis_angle(rotation_6d_to_matrix(d6))
