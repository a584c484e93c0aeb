"""Stage "frames": controls -> video frames, window by window, each window a chunk on disk.

`renderer: warp` (fast preview, no diffusion): the framed portrait warped by the dense
reference->frame flow of each frame. `renderer: diffusion` (stage 2, temporal ControlNet) needs
the stage-2 weights; until they ship, a diffusion job fails with a one-line error saying so.
"""

from __future__ import annotations

from vlogger_cli.errors import JobError
from vlogger_cli.pipeline.base import Stage, StageContext
from vlogger_cli.pipeline.controls import WINDOW


def run_frames(ctx: StageContext) -> None:
    from vlogger_cli.controls.warp import warp_portrait
    from vlogger_cli.jobs.chunks import FrameChunks

    if ctx.spec.renderer != "warp":
        raise JobError(
            f"job '{ctx.spec.id}': renderer '{ctx.spec.renderer}' needs the stage-2 video weights, which this "
            "version does not ship yet; set renderer: warp (fast preview) in the manifest"
        )
    store, reference = ctx.results["controls"], ctx.results["reference"]
    chunks = FrameChunks(ctx.job.path("chunks"))
    total = ctx.results["motion"].num_frames
    for first in range(0, total, WINDOW):
        last = min(first + WINDOW, total) - 1
        if chunks.has(first, last):
            continue
        flow = store.load(first, last + 1).flow
        chunks.write(first, warp_portrait(reference, flow))
    ctx.results["chunks"] = chunks


def load_frames_stage(ctx: StageContext) -> None:
    from vlogger_cli.jobs.chunks import FrameChunks

    ctx.results["chunks"] = FrameChunks(ctx.job.path("chunks"))


def run_export(ctx: StageContext) -> None:
    from vlogger_cli.export import write_mp4, write_preview
    from vlogger_cli.jobs.chunks import LazyFrames

    chunks, total = ctx.results["chunks"], ctx.results["motion"].num_frames
    out = ctx.job.path(f"{ctx.spec.id}.mp4")
    write_mp4(chunks.iter_frames(total), ctx.spec.fps, out, audio_path=ctx.job.path("audio.wav"))
    write_preview(LazyFrames(chunks, total), ctx.job.path("preview.png"), fps=ctx.spec.fps)
    ctx.log.info("export: %s (%d frames)", out, total)


def _nothing_to_load(ctx: StageContext) -> None:
    pass


FRAMES = Stage("frames", run_frames, load_frames_stage, ("chunks",))
EXPORT = Stage("export", run_export, _nothing_to_load, ("preview.png",))
