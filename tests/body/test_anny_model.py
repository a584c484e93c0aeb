"""anny adapter specifics: ARKit expression, mouth region labels, joint mapping."""

from __future__ import annotations

import numpy as np
import torch

from vlogger_cli.body.anny_model import BONE_MAP
from vlogger_cli.body.model import ARKIT_NAMES, CANONICAL_JOINTS, PART_INDEX, PARTS


def test_expression_is_the_52_arkit_actions(anny):
    assert anny.expression_names == ARKIT_NAMES and len(ARKIT_NAMES) == 52
    assert set(BONE_MAP) == set(CANONICAL_JOINTS)


def test_every_part_is_present(anny):
    present = set(np.unique(anny.part_labels))
    assert present == set(range(1, len(PARTS)))


def test_jaw_open_moves_the_mouth_only(anny):
    params = anny.zero_params(2)
    params.expression = anny.expression_vector(2)
    params.expression[1] = anny.expression_vector(1, jawOpen=0.8)[0]
    with torch.no_grad():
        v = anny(params).vertices.numpy()
    moved = np.linalg.norm(v[1] - v[0], axis=-1)
    labels = anny.part_labels
    mouth = np.isin(labels, [PART_INDEX["lips"], PART_INDEX["mouth_interior"]])
    assert moved[mouth].max() > 0.015                         # the mouth opens by centimetres
    assert np.median(moved[labels == PART_INDEX["lips"]]) > 0.002
    assert moved[labels == PART_INDEX["hand_l"]].max() < 1e-3  # far parts stay (within a millimetre)
    assert moved[labels == PART_INDEX["torso"]].max() < 1e-3
    # The lower lip drops: lips below the mouth corners move down.
    lips = labels == PART_INDEX["lips"]
    assert (v[1][lips, 1] - v[0][lips, 1]).min() < -0.005


def test_spine_rotation_is_spread_over_the_chain(anny):
    """A spine rotation of 20 deg tilts the chest (and with it the head) sideways by ~20 deg."""
    params = anny.zero_params(2)
    params.pose[1, CANONICAL_JOINTS.index("spine")] = torch.tensor([0.0, 0.0, np.radians(20)])
    with torch.no_grad():
        j = anny(params).joints.numpy()
    neck, head = CANONICAL_JOINTS.index("neck"), CANONICAL_JOINTS.index("head")
    before, after = j[0, head] - j[0, neck], j[1, head] - j[1, neck]
    angle = np.degrees(np.arccos(np.dot(before, after) / np.linalg.norm(before) / np.linalg.norm(after)))
    assert 15 < angle < 25
    assert after[0] < before[0]  # roll > 0 tilts towards the subject's right (-x)
