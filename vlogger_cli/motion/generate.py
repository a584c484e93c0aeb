"""Stage 1 entry point: speech features (+ reference fit) -> Motion.

    motion = generate_motion(features, reference, weights_dir=None, seed=7, steps=None, best_of=1)
    save_motion(job / "motion.safetensors", motion); plot_motion(motion, features, job / "motion.png")

Defaults: DPM-Solver++ (diffusion.DEFAULT_STEPS), windows of 250 frames with 25 % overlap (outpaint.py).
best_of=K draws K samples in one batch and keeps the best by quality.best_of_score (no ground truth).
"""

from __future__ import annotations

import numpy as np
import torch

from vlogger_cli.errors import InputError
from vlogger_cli.motion.artifacts import Motion, load_motion, plot_motion, save_motion
from vlogger_cli.motion.denoiser import prepare_audio
from vlogger_cli.motion.diffusion import DEFAULT_SAMPLER, DEFAULT_STEPS
from vlogger_cli.motion.outpaint import DEFAULT_OVERLAP, DEFAULT_WINDOW, outpaint
from vlogger_cli.motion.quality import best_of_score
from vlogger_cli.motion.representation import (
    ARKIT_NAMES, BLINK, EXPRESSION, HANDS, NUM_EXPRESSION, POSE_JOINTS, REFERENCE_DIM, channel_index
)
from vlogger_cli.rotations import axis_angle_to_rotation_6d, matrix_to_rotation_6d
from vlogger_cli.motion.weights import load_weights

__all__ = ["generate_motion", "reference_vector", "Motion", "save_motion", "load_motion", "plot_motion"]


def reference_vector(reference: dict | None) -> np.ndarray:
    """(118,) conditioning vector from a reference fit.

    reference: None (neutral), or a dict with optional
      "expression": (52,) ARKit coefficients, or {ARKit name: value};
      "pose": {joint: (3,) rotation vector or (3, 3) matrix}, absolute, joints of POSE_JOINTS.
    """
    vec = np.zeros(REFERENCE_DIM, np.float32)
    rot = torch.zeros(len(POSE_JOINTS), 3)
    vec[NUM_EXPRESSION:] = axis_angle_to_rotation_6d(rot).reshape(-1).numpy()
    if not reference:
        return vec
    expr = reference.get("expression")
    if isinstance(expr, dict):
        for name, value in expr.items():
            if name not in ARKIT_NAMES:
                raise InputError(f"reference expression has unknown ARKit name {name!r}")
            vec[ARKIT_NAMES.index(name)] = float(value)
    elif expr is not None:
        expr = np.asarray(expr, np.float32).reshape(-1)
        if expr.shape != (NUM_EXPRESSION,):
            raise InputError(f"reference expression needs {NUM_EXPRESSION} ARKit values, got {expr.shape[0]}")
        vec[:NUM_EXPRESSION] = expr
    for joint, value in (reference.get("pose") or {}).items():
        if joint not in POSE_JOINTS:
            continue  # eyes and joints the motion stage does not drive
        v = torch.as_tensor(np.asarray(value, np.float32))
        d6 = matrix_to_rotation_6d(v) if v.shape == (3, 3) else axis_angle_to_rotation_6d(v.reshape(3))
        i = NUM_EXPRESSION + 6 * POSE_JOINTS.index(joint)
        vec[i:i + 6] = d6.numpy()
    return vec


def generate_motion(
    features,
    reference: dict | None = None,
    *,
    weights_dir=None,
    seed: int = 0,
    steps: int | None = None,
    best_of: int = 1,
    device: str = "cpu",
    sampler: str = DEFAULT_SAMPLER,
    window: int = DEFAULT_WINDOW,
    overlap: float = DEFAULT_OVERLAP,
    threads: int | None = 1,
    progress=None,
) -> Motion:
    """Sample motion for `features` (AudioFeatures); same seed and arguments, same motion.

    threads: torch CPU threads during the call (restored after). 1 by default: the denoiser's
    matrices are tiny (250 x 128), so intra-op threads mostly wait on each other — on the shared
    2-core box 60 s of audio took 0.48 s with 1 thread and 2.3 s with 2. None keeps torch's setting.
    """
    previous = torch.get_num_threads()
    if threads and device == "cpu":
        torch.set_num_threads(threads)
    try:
        return _generate(features, reference, weights_dir, seed, steps, best_of, device, sampler, window, overlap, progress)
    finally:
        torch.set_num_threads(previous)


@torch.inference_mode()
def _generate(features, reference, weights_dir, seed, steps, best_of, device, sampler, window, overlap, progress) -> Motion:
    if features.num_frames < 1:
        raise InputError("the speech is too short to animate (no video frame): give at least one frame of audio")
    if best_of < 1:
        raise InputError(f"best_of must be at least 1, got {best_of}")
    model, norm = load_weights(weights_dir, device)
    mel = torch.as_tensor(np.asarray(features.mel, np.float32), device=device)[None]
    energy = torch.as_tensor(np.asarray(features.energy, np.float32), device=device)[None]
    audio = prepare_audio(mel, energy).expand(best_of, -1, -1)  # (K, T, A)
    ref = torch.as_tensor(reference_vector(reference), device=device)[None].expand(best_of, -1)
    gen = torch.Generator(device).manual_seed(int(seed))
    steps = steps or DEFAULT_STEPS[sampler]
    x = outpaint(model, audio, ref, window=window, overlap=overlap, sampler=sampler, steps=steps,
                 generator=gen, on_window=progress)  # (K, T, D) normalised
    samples = norm.denormalize(x.float().cpu().numpy())
    jaw_i = channel_index("jawOpen")
    energy_np = np.asarray(features.energy, np.float64)
    scores = [best_of_score(np.clip(s[:, jaw_i], 0, 1), energy_np, xn, features.fps) for s, xn in zip(samples, x.cpu().numpy())]
    best = int(np.argmax(scores)) if best_of > 1 else 0
    values = samples[best].astype(np.float32)
    values[:, EXPRESSION] = np.clip(values[:, EXPRESSION], 0, 1)
    values[:, BLINK] = np.clip(values[:, BLINK], 0, 1)
    values[:, HANDS] = np.clip(values[:, HANDS], -1, 1)
    meta = {"sampler": sampler, "steps": steps, "best_of": best_of, "chosen": best,
            "scores": [round(float(s), 4) for s in scores], "window": window, "overlap": overlap}
    return Motion(values, float(features.fps), int(seed), meta)

