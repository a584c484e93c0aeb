"""Priors that keep a fitted body plausible: joint-angle limits, pull towards rest, bounded shape and expression.

One image only constrains what it shows (2D points), so every degree of freedom the points leave open
(the twist of an arm about its own axis, the depth of a hand, the body below the frame) is held by these
terms instead of drifting. Angles are the axis-angle components in the canonical frame (model.py: +x
pitch, chin down; +y yaw, towards the subject's left; +z roll, towards the right shoulder), which for the
moderate rotations a portrait shows are close to those Euler angles.
"""

from __future__ import annotations

import math

import torch

from vlogger_cli.body.model import CANONICAL_JOINTS

JOINT_LIMITS_DEG: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    # joint:       (x: pitch),    (y: yaw),     (z: roll)
    "spine":      ((-25, 40), (-35, 35), (-25, 25)),
    "neck":       ((-35, 40), (-50, 50), (-30, 30)),
    "head":       ((-35, 35), (-45, 45), (-30, 30)),
    "eye_l":      ((-25, 25), (-35, 35), (-2, 2)),
    "eye_r":      ((-25, 25), (-35, 35), (-2, 2)),
    "clavicle_l": ((-20, 20), (-25, 25), (-20, 20)),
    "clavicle_r": ((-20, 20), (-25, 25), (-20, 20)),
    "shoulder_l": ((-150, 150), (-150, 150), (-150, 150)),
    "shoulder_r": ((-150, 150), (-150, 150), (-150, 150)),
    "elbow_l":    ((-160, 160), (-160, 160), (-160, 160)),
    "elbow_r":    ((-160, 160), (-160, 160), (-160, 160)),
    "wrist_l":    ((-80, 80), (-80, 80), (-80, 80)),
    "wrist_r":    ((-80, 80), (-80, 80), (-80, 80)),
}
"""Box limits per canonical joint, degrees; outside them a quadratic penalty grows."""

REST_WEIGHT: dict[str, float] = {
    "spine": 2.0, "neck": 1.0, "head": 0.5, "eye_l": 0.2, "eye_r": 0.2, "clavicle_l": 4.0, "clavicle_r": 4.0,
    "shoulder_l": 0.1, "shoulder_r": 0.1, "elbow_l": 0.05, "elbow_r": 0.05, "wrist_l": 0.3, "wrist_r": 0.3,
}
"""Relative pull of each joint towards its rest rotation (radians squared): strong where images say
little (spine, clavicles), weak for the arms, whose 2D keypoints constrain them well."""


def _limits() -> tuple[torch.Tensor, torch.Tensor]:
    lo = torch.tensor([[math.radians(a) for a, _ in JOINT_LIMITS_DEG[j]] for j in CANONICAL_JOINTS])
    hi = torch.tensor([[math.radians(b) for _, b in JOINT_LIMITS_DEG[j]] for j in CANONICAL_JOINTS])
    return lo, hi


_LO, _HI = _limits()
_REST = torch.tensor([REST_WEIGHT[j] for j in CANONICAL_JOINTS])


def pose_prior(pose: torch.Tensor, joints: slice | list[int] = slice(None)) -> torch.Tensor:
    """(B, J, 3) axis-angle of CANONICAL_JOINTS[joints] (all 13 by default) -> (B,) penalty: weighted
    squared rotation + squared excess over the limits."""
    excess = torch.relu(pose - _HI[joints]) + torch.relu(_LO[joints] - pose)
    rest = (pose.square().sum(-1) * _REST[joints]).sum(-1)
    return rest + 100.0 * excess.square().sum((-1, -2))


def hand_prior(hand_pose: torch.Tensor) -> torch.Tensor:
    """(B, 30, 3) -> (B,): fingers stay near rest and bend by at most ~100 deg per phalanx."""
    excess = torch.relu(hand_pose.norm(dim=-1) - math.radians(100))
    return 0.05 * hand_pose.square().sum((-1, -2)) + 100.0 * excess.square().sum(-1)


def shape_prior(shape: torch.Tensor) -> torch.Tensor:
    """(B, S) -> (B,): the average body unless the points ask otherwise."""
    return shape.square().sum(-1)


def expression_prior(expression: torch.Tensor) -> torch.Tensor:
    """(B, E) -> (B,): sparse, small activations (a neutral face unless the points ask otherwise)."""
    return expression.abs().sum(-1) + expression.square().sum(-1)
