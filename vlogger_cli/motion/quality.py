"""Ground-truth-free measures of generated motion: lip-sync agreement, silence, smoothness.

Used twice: `best_of=K` keeps the sample with the highest `best_of_score`, and the evaluation
(tests, bench) checks the same numbers on held-out speech.

  lip_sync    Pearson correlation of jawOpen with the loudness envelope (AudioFeatures.energy, RMS).
  silence     frames inside silences longer than 0.3 s, where a silence is energy 30 dB or more below
              the loud-speech level (95th percentile of the clip's energy); the mouth should be closed.
  jitter      mean |second difference| of the normalised motion (per frame, per channel): jerky = high.

best_of_score = lip_sync − 0.5 · jitter − 2 · mean jawOpen in silence.
"""

from __future__ import annotations

import numpy as np

SILENCE_DB = -30.0
MIN_SILENCE_S = 0.3


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def silence_mask(energy: np.ndarray, fps: float, min_seconds: float = MIN_SILENCE_S, db: float = SILENCE_DB) -> np.ndarray:
    """(T,) bool: frames inside runs of quiet frames lasting at least min_seconds."""
    energy = np.asarray(energy, np.float64)
    level = np.percentile(energy, 95) if len(energy) else 0.0
    quiet = energy < level * 10 ** (db / 20)
    mask = np.zeros(len(energy), bool)
    start = None
    for i, q in enumerate(list(quiet) + [False]):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if (i - start) / fps >= min_seconds:
                mask[start:i] = True
            start = None
    return mask


def jitter(motion_normalised: np.ndarray) -> float:
    x = np.asarray(motion_normalised, np.float64)
    return float(np.abs(np.diff(x, n=2, axis=0)).mean()) if len(x) > 2 else 0.0


def best_of_score(jaw: np.ndarray, energy: np.ndarray, motion_normalised: np.ndarray, fps: float) -> float:
    silent = silence_mask(energy, fps)
    in_silence = float(np.mean(jaw[silent])) if silent.any() else 0.0
    return pearson(jaw, energy) - 0.5 * jitter(motion_normalised) - 2.0 * in_silence


def lip_sync_report(jaw: np.ndarray, energy: np.ndarray, fps: float) -> dict:
    """{"pearson", "silence_frames", "jaw_in_silence_max", "jaw_in_silence_mean"} for one clip."""
    silent = silence_mask(energy, fps)
    return {
        "pearson": round(pearson(jaw, energy), 4),
        "silence_frames": int(silent.sum()),
        "jaw_in_silence_max": round(float(jaw[silent].max()), 4) if silent.any() else 0.0,
        "jaw_in_silence_mean": round(float(jaw[silent].mean()), 4) if silent.any() else 0.0,
    }


def head_rotation_std(motion: np.ndarray) -> dict:
    """{"x", "y", "z", "total"}: standard deviation in degrees of the head's rotation over a clip, from the
    (T, D) motion's neck and head residuals composed (ΔR_neck · ΔR_head, as axis-angle in the neck's frame).
    How alive the head is: the same measure on generated and on tracked real motion compares them. `total`
    is the root of the summed variances (the spread of the rotation whatever its axis)."""
    import torch

    from vlogger_cli.motion.representation import channel_index
    from vlogger_cli.rotations import matrix_to_axis_angle, rotation_6d_to_matrix

    def joint(name: str) -> torch.Tensor:
        first = channel_index(f"{name}.rot6d.0")
        return rotation_6d_to_matrix(torch.as_tensor(np.asarray(motion[:, first:first + 6], np.float32)))

    angles = np.degrees(matrix_to_axis_angle(joint("neck") @ joint("head")).numpy())
    std = angles.std(axis=0)
    return {"x": round(float(std[0]), 2), "y": round(float(std[1]), 2), "z": round(float(std[2]), 2),
            "total": round(float(np.sqrt((std ** 2).sum())), 2)}
