"""Stage "motion": speech features + the reference fit -> per-frame motion (VLOGGER stage 1).

Axes: the reference's rotations move into the motion vector's axes with motion/axes.py.
"""

from __future__ import annotations

from vlogger_cli.motion.axes import reference_of
from vlogger_cli.pipeline.base import Stage, StageContext

def run_motion(ctx: StageContext) -> None:
    from vlogger_cli.motion.generate import generate_motion, plot_motion, save_motion

    features = ctx.results.features
    # The manifest's `steps` is for stage 2 (the costly sampler); motion keeps its tuned sampler
    # (DPM-Solver++, motion.diffusion.DEFAULT_STEPS), which already runs >100x real time.
    motion = generate_motion(features, reference_of(ctx.results.fit), seed=ctx.spec.seed,
                             best_of=ctx.spec.best_of, device=ctx.torch_device())
    save_motion(ctx.job.path("motion.safetensors"), motion)
    plot_motion(motion, features, ctx.job.path("motion.png"))
    ctx.log.info("motion: %d frames, seed %d, best of %d", motion.num_frames, ctx.spec.seed, ctx.spec.best_of)
    ctx.results.motion = motion


def load_motion_stage(ctx: StageContext) -> None:
    from vlogger_cli.motion.generate import load_motion

    ctx.results.motion = load_motion(ctx.job.path("motion.safetensors"))


MOTION = Stage("motion", run_motion, load_motion_stage, ("motion.safetensors", "motion.png"))
