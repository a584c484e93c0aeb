"""The per-frame motion vector of stage 1 (VLOGGER §3.1: expression θe and body-pose residuals Δθb).

Layout of one frame (D = 127 channels, in this order; `CHANNEL_NAMES` names every one):

| block | channels | unit | meaning |
| --- | --- | --- | --- |
| expression | 52 | 0..1 | ARKit blendshape coefficients in ARKit order (`browDownLeft` … `jawOpen` … `tongueOut`); anny's facial actions use exactly these names. Absolute, not residual: the model is told the reference expression and returns the whole expression. |
| pose | 11 × 6 | 6D | residual rotation Δθb of each `POSE_JOINTS` joint relative to the reference fit, as the first two columns of the rotation matrix (Zhou et al. 2019, "On the continuity of rotation representations"); identity = (1,0,0, 0,1,0). Residuals, not absolute poses, so any reference pose works (paper ablation: FID 52 → 15). |
| gaze | 2 | rad | `gaze_yaw`, `gaze_pitch` of both eyes (the eye joints are driven by gaze, not by residuals) |
| blink | 1 | 0..1 | both eyes' lid closure; for body models without per-eye blink (ARKit also carries eyeBlinkLeft/Right) |
| hands | 6 | -1..1 | compact hand-pose code per hand: `curl` (all fingers), `spread`, `thumb`; the body adapter maps it onto finger bones |

Joint-axis conventions are those of the body model's bones (residuals are applied as R_ref @ ΔR).
Everything here is a pure function or a constant; conversions work on any leading batch shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

ARKIT_NAMES: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight",
    "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight", "tongueOut",
)
"""The 52 ARKit blendshapes in ARKit order (= anny's `facial_actions="all"`)."""

CANONICAL_JOINTS: tuple[str, ...] = (
    "spine", "neck", "head", "eye_l", "eye_r", "clavicle_l", "clavicle_r",
    "shoulder_l", "shoulder_r", "elbow_l", "elbow_r", "wrist_l", "wrist_r",
)
"""The joints every body-model adapter maps its skeleton onto (same tuple as vlogger_cli.body.model)."""

POSE_JOINTS: tuple[str, ...] = tuple(j for j in CANONICAL_JOINTS if j not in ("eye_l", "eye_r"))
"""Joints with a residual rotation in the motion vector (the eyes are driven by `gaze_*`)."""

GAZE_NAMES = ("gaze_yaw", "gaze_pitch")
BLINK_NAMES = ("blink",)
HAND_NAMES = ("hand_l_curl", "hand_l_spread", "hand_l_thumb", "hand_r_curl", "hand_r_spread", "hand_r_thumb")

NUM_EXPRESSION = len(ARKIT_NAMES)  # 52
NUM_POSE = 6 * len(POSE_JOINTS)  # 66

EXPRESSION = slice(0, NUM_EXPRESSION)
POSE = slice(EXPRESSION.stop, EXPRESSION.stop + NUM_POSE)
GAZE = slice(POSE.stop, POSE.stop + len(GAZE_NAMES))
BLINK = slice(GAZE.stop, GAZE.stop + 1)
HANDS = slice(BLINK.stop, BLINK.stop + len(HAND_NAMES))
MOTION_DIM = HANDS.stop  # 127

CHANNEL_NAMES: tuple[str, ...] = (
    ARKIT_NAMES
    + tuple(f"{j}.rot6d.{k}" for j in POSE_JOINTS for k in range(6))
    + GAZE_NAMES
    + BLINK_NAMES
    + HAND_NAMES
)
assert len(CHANNEL_NAMES) == MOTION_DIM

FACE_CHANNELS: tuple[int, ...] = tuple(range(EXPRESSION.start, EXPRESSION.stop)) + tuple(
    range(GAZE.start, BLINK.stop)
)
"""Channels weighted as "face" in the losses (expression, gaze, blink); the rest (pose, hands) are "body"."""

REFERENCE_DIM = NUM_EXPRESSION + NUM_POSE
"""The reference vector: the reference fit's expression (52) and its absolute joint rotations in 6D (66)."""

IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def channel_index(name: str) -> int:
    """Index of a channel by name (`"jawOpen"`, `"head.rot6d.0"`, `"blink"`)."""
    try:
        return CHANNEL_NAMES.index(name)
    except ValueError:
        raise KeyError(f"unknown motion channel {name!r}") from None


def face_mask(dtype=torch.float32) -> torch.Tensor:
    """(D,) 1 for face channels, 0 for body channels."""
    mask = torch.zeros(MOTION_DIM, dtype=dtype)
    mask[list(FACE_CHANNELS)] = 1
    return mask


def neutral_motion(num_frames: int) -> np.ndarray:
    """(T, D) float32: no expression, identity residuals, centred gaze, open eyes, relaxed hands."""
    x = np.zeros((num_frames, MOTION_DIM), np.float32)
    x[:, POSE] = np.tile(np.asarray(IDENTITY_6D, np.float32), len(POSE_JOINTS))
    return x


# ---------------------------------------------------------------- normalisation

@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std of the training motion (saved beside the weights).

    The denoiser works on (x - mean) / std; std is floored so constant channels (e.g. tongueOut,
    never used by the corpus) do not blow up.
    """

    mean: np.ndarray  # (D,) float32
    std: np.ndarray  # (D,) float32
    names: tuple[str, ...] = field(default=CHANNEL_NAMES)

    STD_FLOOR = 1e-2

    @classmethod
    def fit(cls, frames: np.ndarray) -> "Normalization":
        """Statistics of (N, D) motion frames."""
        frames = np.asarray(frames, np.float64)
        std = np.maximum(frames.std(0), cls.STD_FLOOR)
        return cls(frames.mean(0).astype(np.float32), std.astype(np.float32))

    @classmethod
    def identity(cls) -> "Normalization":
        return cls(np.zeros(MOTION_DIM, np.float32), np.ones(MOTION_DIM, np.float32))

    def normalize(self, x):
        return (x - self._as(x, self.mean)) / self._as(x, self.std)

    def denormalize(self, x):
        return x * self._as(x, self.std) + self._as(x, self.mean)

    @staticmethod
    def _as(x, v: np.ndarray):
        return torch.as_tensor(v, dtype=x.dtype, device=x.device) if isinstance(x, torch.Tensor) else v

    def save(self, path) -> None:
        from vlogger_cli.io import atomic_save_safetensors

        atomic_save_safetensors(path, {"mean": self.mean, "std": self.std}, {"names": ",".join(self.names)})

    @classmethod
    def load(cls, path) -> "Normalization":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as fh:
            names = tuple(fh.metadata().get("names", ",".join(CHANNEL_NAMES)).split(","))
            if names != CHANNEL_NAMES:
                raise ValueError(f"{path}: normalisation statistics are for another motion layout")
            return cls(fh.get_tensor("mean").astype(np.float32), fh.get_tensor("std").astype(np.float32), names)
