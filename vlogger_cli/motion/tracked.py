"""A tracked video's motion in stage 1's format (`Motion`), relative to one of its frames.

Used by `vlogger edit` (the source's motion, edited and re-rendered) and by `train prepare-videos` (stage-1
training clips from real footage). Expression absolute, residual rotations R_ref^T R_t of the POSE_JOINTS
relative to the reference frame in the motion axes (motion/axes.py), gaze from the eyeLook* and blink from the
eyeBlink* expressions, hand code 0. Per-frame translation (the head moving in the picture) has no channel in
the motion vector: it stays in the track (`Track.transl`) and the edit keeps it.
"""

from __future__ import annotations

import numpy as np
import torch

from vlogger_cli.body import smoothing
from vlogger_cli.body.model import ARKIT_NAMES, CANONICAL_JOINTS
from vlogger_cli.body.track import Track
from vlogger_cli.motion.artifacts import Motion
from vlogger_cli.motion.axes import NATIVE_TO_CANONICAL
from vlogger_cli.motion.representation import BLINK, EXPRESSION, GAZE, POSE, POSE_JOINTS, neutral_motion
from vlogger_cli.rotations import axis_angle_to_matrix, matrix_to_rotation_6d


def track_to_motion(track: Track, reference_index: int = 0, *, blink: str = "landmarks") -> Motion:
    """The track as a stage-1 `Motion` relative to frame `reference_index` (whose fit, `track.fit(i)`,
    is the reference fit that the controls stage applies the residuals to).

    blink: "landmarks" (default) sets eyeBlinkLeft/Right to `eye_closure()`, measured on the detected
    lids; "fit" keeps the fitted values. The fit under-reads closed eyes (0.05-0.17 on fully closed
    frames of videoretalking_face_4): the face table's lid points do not follow anny's eyeBlink shapes."""
    if track.expression.shape[1] != len(ARKIT_NAMES):
        raise ValueError(f"motion needs ARKit expressions; the {track.model_name} track has "
                         f"{track.expression.shape[1]} expression coefficients")
    if not 0 <= reference_index < track.num_frames:
        raise IndexError(f"reference_index {reference_index} outside 0..{track.num_frames - 1}")
    n = track.num_frames
    values = neutral_motion(n)
    expr = np.clip(track.expression, 0.0, 1.0).astype(np.float32)
    if blink == "landmarks":
        closure = track.eye_closure()
        expr[:, ARKIT_NAMES.index("eyeBlinkLeft")] = closure[:, 0]
        expr[:, ARKIT_NAMES.index("eyeBlinkRight")] = closure[:, 1]
    elif blink != "fit":
        raise ValueError(f"blink must be 'landmarks' or 'fit', not {blink!r}")
    values[:, EXPRESSION] = expr

    joints = [CANONICAL_JOINTS.index(j) for j in POSE_JOINTS]
    delta = smoothing.rotations_to_tangent(track.pose[:, joints], track.pose[reference_index, joints])

    d_canonical = axis_angle_to_matrix(torch.as_tensor(delta, dtype=torch.float64)).numpy()  # R_ref^T R_t
    p = NATIVE_TO_CANONICAL.astype(np.float64)
    d_native = p.T @ d_canonical @ p  # to_canonical(x) = P x P^T inverted
    values[:, POSE] = matrix_to_rotation_6d(torch.as_tensor(d_native)).reshape(n, -1).numpy()

    idx = {name: i for i, name in enumerate(ARKIT_NAMES)}
    e = lambda name: expr[:, idx[name]]
    # Inverse of the corpus' gaze -> eyeLook* mapping (yaw 0.4 rad, pitch 0.3 rad at full activation),
    # both eyes averaged; subject's left eye looks out when the gaze turns to the subject's left.
    yaw = 0.5 * 0.4 * ((e("eyeLookOutLeft") - e("eyeLookInLeft")) + (e("eyeLookInRight") - e("eyeLookOutRight")))
    pitch = 0.5 * 0.3 * ((e("eyeLookUpLeft") - e("eyeLookDownLeft"))
                         + (e("eyeLookUpRight") - e("eyeLookDownRight")))
    values[:, GAZE] = np.stack([yaw, pitch], axis=1)
    # The renderer closes the lids by max(eyeBlink*, blink): the smaller lid keeps its own value.
    values[:, BLINK] = np.minimum(e("eyeBlinkLeft"), e("eyeBlinkRight"))[:, None]
    meta = {"source": "track", "video": track.source, "reference_index": int(reference_index), "blink": blink,
            "lost_frames": track.lost_frames, "model": track.model_name}
    return Motion(values.astype(np.float32), float(track.fps), None, meta)
