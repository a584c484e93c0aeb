"""The motion vector's joint axes and the reference a motion model is conditioned on.

Axes: the motion vector's joint rotations use anny's native axes (x nod, y tilt, z turn; see
weights/README.md "Motion dataset"), the body model's canonical frame is x nod, y turn, z tilt
(body/model.py). `NATIVE_TO_CANONICAL` is the fixed rotation between them (anny: Z up, facing -y;
canonical: Y up, facing +z), so rotations move between the two as P R P^T.
"""

from __future__ import annotations

import numpy as np


NATIVE_TO_CANONICAL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], dtype=np.float32)


def to_native(rotvec: np.ndarray) -> np.ndarray:
    """(..., 3) rotation vectors, canonical body axes -> motion (anny-native) axes."""
    return np.asarray(rotvec, np.float32) @ NATIVE_TO_CANONICAL  # P^T r, written for row vectors


def to_canonical(matrices: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations in motion axes -> canonical body axes: P R P^T."""
    return NATIVE_TO_CANONICAL @ np.asarray(matrices, np.float32) @ NATIVE_TO_CANONICAL.T


def reference_of(fit) -> dict:
    """The motion model's conditioning from a body fit: its expression and absolute joint rotations."""
    from vlogger_cli.body.model import CANONICAL_JOINTS

    return {"expression": np.asarray(fit.expression, np.float32),
            "pose": {joint: to_native(fit.pose[i]) for i, joint in enumerate(CANONICAL_JOINTS)}}
