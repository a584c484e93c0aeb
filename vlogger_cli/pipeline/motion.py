"""Stage "motion": speech features + the reference fit -> per-frame motion (VLOGGER stage 1).

Axes: the motion vector's joint rotations use anny's native axes (x nod, y tilt, z turn; see
weights/README.md "Motion dataset"), the body model's canonical frame is x nod, y turn, z tilt
(body/model.py). `NATIVE_TO_CANONICAL` is the fixed rotation between them (anny: Z up, facing -y;
canonical: Y up, facing +z), so rotations move between the two as P R P^T.
"""

from __future__ import annotations

import numpy as np

from vlogger_cli.pipeline.base import Stage, StageContext

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


def run_motion(ctx: StageContext) -> None:
    from vlogger_cli.motion.generate import generate_motion, plot_motion, save_motion

    features = ctx.results["features"]
    # The manifest's `steps` is for stage 2 (the costly sampler); motion keeps its tuned sampler
    # (DPM-Solver++, motion.diffusion.DEFAULT_STEPS), which already runs >100x real time.
    motion = generate_motion(features, reference_of(ctx.results["fit"]), seed=ctx.spec.seed,
                             best_of=ctx.spec.best_of, device=ctx.torch_device())
    save_motion(ctx.job.path("motion.safetensors"), motion)
    plot_motion(motion, features, ctx.job.path("motion.png"))
    ctx.log.info("motion: %d frames, seed %d, best of %d", motion.num_frames, ctx.spec.seed, ctx.spec.best_of)
    ctx.results["motion"] = motion


def load_motion_stage(ctx: StageContext) -> None:
    from vlogger_cli.motion.generate import load_motion

    ctx.results["motion"] = load_motion(ctx.job.path("motion.safetensors"))


MOTION = Stage("motion", run_motion, load_motion_stage, ("motion.safetensors", "motion.png"))
