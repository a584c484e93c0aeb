"""The stage-1 hand-off (`Motion`) and its job artifacts: motion.safetensors and motion.png.

motion.safetensors holds one tensor `motion` (T, 127) float32 in the representation.py layout and
string metadata: `format` ("vlogger-motion"), `fps`, `names` (JSON list of the 127 channel names,
ARKit names such as `jawOpen` included), `seed`, and `meta` (JSON: sampler, steps, best_of, scores).
A motion dataset's clips use the same file (plus a `reference` tensor).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from vlogger_cli.errors import InputError
from vlogger_cli.io import atomic_path, atomic_save_safetensors
from vlogger_cli.motion.representation import (
    BLINK, CHANNEL_NAMES, EXPRESSION, GAZE, HANDS, MOTION_DIM, POSE, POSE_JOINTS, channel_index
)
from vlogger_cli.rotations import rotation_6d_to_axis_angle, rotation_6d_to_matrix

FORMAT = "vlogger-motion"


@dataclass(frozen=True)
class Motion:
    """Per-frame expression θe and body-pose residuals Δθb (+ gaze, blink, hands) at `fps`."""

    values: np.ndarray  # (T, D) float32
    fps: float
    seed: int | None = None
    meta: dict = field(default_factory=dict)
    names: tuple[str, ...] = CHANNEL_NAMES

    @property
    def num_frames(self) -> int:
        return int(self.values.shape[0])

    def channel(self, name: str) -> np.ndarray:
        """(T,) one channel by name, e.g. "jawOpen", "blink", "gaze_yaw"."""
        return self.values[:, channel_index(name)]

    @property
    def expression(self) -> np.ndarray:  # (T, 52) ARKit coefficients
        return self.values[:, EXPRESSION]

    @property
    def gaze(self) -> np.ndarray:  # (T, 2) yaw, pitch (rad)
        return self.values[:, GAZE]

    @property
    def blink(self) -> np.ndarray:  # (T,)
        return self.values[:, BLINK][:, 0]

    @property
    def hands(self) -> np.ndarray:  # (T, 6)
        return self.values[:, HANDS]

    def pose_residuals(self) -> dict[str, np.ndarray]:
        """{joint: (T, 3, 3)} residual rotation matrices ΔR (apply as R_ref @ ΔR), body-frame axes."""
        d6 = torch.as_tensor(self.values[:, POSE]).reshape(self.num_frames, len(POSE_JOINTS), 6)
        mats = rotation_6d_to_matrix(d6).numpy()
        return {j: mats[:, i] for i, j in enumerate(POSE_JOINTS)}

    def joint_axis_angle(self, joint: str) -> np.ndarray:
        """(T, 3) residual rotation vector of one joint (x nod, y tilt, z turn), radians."""
        i = POSE_JOINTS.index(joint)
        d6 = torch.as_tensor(self.values[:, POSE]).reshape(self.num_frames, len(POSE_JOINTS), 6)[:, i]
        return rotation_6d_to_axis_angle(d6).numpy()


def save_motion(path: str | os.PathLike, motion: Motion) -> None:
    """Write motion.safetensors atomically (format in the module docstring)."""

    metadata = {
        "format": FORMAT,
        "fps": repr(float(motion.fps)),
        "names": json.dumps(list(motion.names)),
        "seed": "" if motion.seed is None else str(int(motion.seed)),
        "meta": json.dumps(motion.meta, default=str),
    }
    atomic_save_safetensors(path, {"motion": np.ascontiguousarray(motion.values, np.float32)}, metadata)


def load_motion(path: str | os.PathLike) -> Motion:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
            values = fh.get_tensor("motion")
    except Exception as err:  # safetensors raises several types for a bad file
        raise InputError(f"{path} is not a readable motion.safetensors ({err}); regenerate it") from None
    names = tuple(json.loads(meta.get("names", "[]")))
    if names != CHANNEL_NAMES or values.ndim != 2 or values.shape[1] != MOTION_DIM:
        raise InputError(f"{path}: motion channels differ from this vlogger's layout; regenerate it")
    seed = meta.get("seed", "")
    return Motion(values.astype(np.float32), float(meta["fps"]), int(seed) if seed else None, json.loads(meta.get("meta", "{}")), names)


def plot_motion(motion: Motion, features, out_png: str | os.PathLike) -> None:
    """motion.png: jawOpen and head angles (degrees) over time against the loudness envelope."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(motion.num_frames) / motion.fps
    energy = np.asarray(features.energy[: motion.num_frames], np.float64)
    loud = energy / energy.max() if energy.size and energy.max() > 0 else energy
    head = np.degrees(motion.joint_axis_angle("head") + motion.joint_axis_angle("neck"))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    ax1.fill_between(t[: len(loud)], 0, loud, color="0.8", label="loudness (RMS, normalised)")
    ax1.plot(t, motion.channel("jawOpen"), color="C3", label="jawOpen")
    ax1.plot(t, motion.blink, color="C0", lw=0.8, alpha=0.6, label="blink")
    ax1.set_ylim(0, 1.05)
    ax1.legend(loc="upper right", fontsize=8)
    ax2.fill_between(t[: len(loud)], 0, loud * max(1.0, np.abs(head).max()), color="0.9")
    ax2.plot(t, head[:, 0], label="head nod (x)")
    ax2.plot(t, head[:, 2], label="head turn (z)")
    ax2.set_ylabel("degrees")
    ax2.set_xlabel("seconds")
    ax2.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"motion: {motion.num_frames} frames @ {motion.fps:g} fps, seed {motion.seed}")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
