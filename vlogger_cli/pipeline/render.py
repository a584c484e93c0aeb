"""Stages "frames" and "export": controls -> video frames, window by window, then the MP4.

`renderer: diffusion` (default; VLOGGER stage 2): the temporal ControlNet cascade in weights/video/
(+ weights/sr/<R>/), windows chained by temporal outpainting (`overlap`, `steps` from the job), each
finished window saved under chunks/<stage>/ with the sampler state, so a killed run resumes at the
window in flight and makes the same video.
`renderer: warp` (fast preview, no diffusion): the framed portrait warped along each frame's dense
reference->frame flow, saved per window under chunks/warp/.
Both leave a `FrameSource` that the export stage streams into the MP4, one window in memory at a time.
"""

from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np

from vlogger_cli.errors import JobError
from vlogger_cli.pipeline.base import Stage, StageContext
from vlogger_cli.pipeline.controls import WINDOW


class FrameSource(Protocol):
    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> np.ndarray: ...
    def __iter__(self) -> Iterator[np.ndarray]: ...


class StoredFrames:
    """The finished frames of a job (warp or the cascade's last stage) in its frame store, by frame number."""

    def __init__(self, folder, num_frames: int):
        from vlogger_cli.frame_store import FrameStore

        self.store, self.num_frames = FrameStore(folder), num_frames

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, index: int) -> np.ndarray:
        return self.store.frame(range(self.num_frames)[index])

    def __iter__(self) -> Iterator[np.ndarray]:
        count = 0
        for frame in self.store.iter_frames():
            if count == self.num_frames:
                return
            yield frame
            count += 1
        if count < self.num_frames:
            raise ValueError(f"{self.store.folder}: only {count} of {self.num_frames} frames are on disk")


def _warp_folder(ctx: StageContext):
    return ctx.job.path("chunks/warp")


def render_warp(ctx: StageContext) -> None:
    from vlogger_cli.controls.warp import warp_portrait
    from vlogger_cli.frame_store import FrameStore

    store, reference = ctx.results.controls, ctx.results.reference
    chunks = FrameStore(_warp_folder(ctx))
    total = ctx.results.motion.num_frames
    for index, first in enumerate(range(0, total, WINDOW)):
        last = min(first + WINDOW, total) - 1
        if not chunks.has(index):
            controls = store.load(first, last + 1)
            chunks.write(index, warp_portrait(reference, controls.flow, controls.cavity), num_frames=total,
                         window=WINDOW)


def render_diffusion(ctx: StageContext) -> str:
    """Run the cascade; returns the folder of the last stage's windows."""
    import torch

    from vlogger_cli.pipeline.inference import job_cascade
    from vlogger_cli.video.render import render_cascade, stage_name

    spec, device = ctx.spec, ctx.torch_device()
    models = job_cascade(ctx, device)
    with torch.inference_mode():
        render_cascade(models, ctx.results.controls, ctx.results.reference, ctx.results.motion.num_frames,
                       ctx.job.path("chunks"), seed=spec.seed, key=ctx.config_hash, on_window=_window_logger(ctx),
                       **_sampling(ctx, device))
    return _mouth_stage(ctx, f"chunks/{stage_name(models[-1], len(models) - 1)}", device)


def _mouth_stage(ctx: StageContext, folder: str, device: str) -> str:
    """Run the weights' mouth stage (video/mouth.py) on the cascade's frames in `folder`; returns the folder of
    the finished frames (`folder` itself when the weights have no mouth stage)."""
    from vlogger_cli.pipeline.inference import job_mouth
    from vlogger_cli.video.chunks import window_store
    from vlogger_cli.video.render import MOUTH_STAGE, render_mouth

    refiner = job_mouth(device)
    if refiner is None:
        return folder
    render_mouth(refiner, window_store(ctx.job.path(folder)), ctx.results.controls, ctx.results.motion.num_frames,
                 ctx.job.path(f"chunks/{MOUTH_STAGE}"), portrait=ctx.results.reference)
    ctx.log.info("frames: mouth stage done")
    return f"chunks/{MOUTH_STAGE}"


def _sampling(ctx: StageContext, device: str) -> dict:
    """The job's outpainting settings (render_cascade keyword arguments)."""
    return dict(steps=ctx.spec.steps, overlap=ctx.spec.overlap, device=device, autocast=ctx.inference.autocast)


def _window_logger(ctx: StageContext):
    def on_window(stage: str, state) -> None:
        ctx.log.info("frames: %s window %d (frames %d-%d)", stage, state.index, state.new_start, state.end - 1)

    return on_window


def run_frames(ctx: StageContext) -> None:
    if ctx.spec.renderer == "warp":
        render_warp(ctx)
        folder = "chunks/warp"
    else:
        folder = render_diffusion(ctx)
    _frames_done(ctx, folder)


def _frames_done(ctx: StageContext, folder: str) -> None:
    from vlogger_cli.io import atomic_write_json

    # frames.json names where the finished frames are; written last, it marks the stage complete.
    atomic_write_json(ctx.job.path("frames.json"), {"renderer": ctx.spec.renderer, "folder": folder,
                                                    "frames": ctx.results.motion.num_frames})


def run_frames_group(ctxs: list[StageContext]) -> list[BaseException | None]:
    """The frames stage of several jobs (`render --batch-windows`): the diffusion jobs on one cascade render
    together, window k of each in one denoiser batch (video/batching.py; a job's own windows stay sequential:
    each outpaints the one before, SR included); warp jobs render one by one. Per job: None, or its error."""
    import torch

    from vlogger_cli.pipeline.inference import job_cascade
    from vlogger_cli.video.render import CascadeJob, render_cascades, stage_name

    errors: list[BaseException | None] = [None] * len(ctxs)
    cascades: dict[tuple, list[int]] = {}
    for i, ctx in enumerate(ctxs):
        if ctx.spec.renderer == "diffusion":
            cascades.setdefault((ctx.spec.resolution, ctx.torch_device()), []).append(i)
            continue
        try:
            run_frames(ctx)
        except Exception as err:  # noqa: BLE001 - this job fails, the others go on
            errors[i] = err
    for (_, device), members in cascades.items():
        models = None
        for i in members:  # the first job that finds the weights loads them for all (the message names each job)
            try:
                models = models or job_cascade(ctxs[i], device)
            except JobError as err:
                errors[i] = err
        if models is None:
            continue
        members = [i for i in members if errors[i] is None]
        jobs = [CascadeJob(ctx.results.controls, ctx.results.reference, ctx.results.motion.num_frames,
                           ctx.job.path("chunks"), seed=ctx.spec.seed, key=ctx.config_hash,
                           on_window=_window_logger(ctx), options=_sampling(ctx, device))
                for ctx in (ctxs[i] for i in members)]

        def log(line: str, members=members) -> None:
            for i in members:
                ctxs[i].log.info("frames: %s", line)

        with torch.inference_mode():
            failed = render_cascades(models, jobs, batch=ctxs[members[0]].inference.batch_windows, log=log)
        folder = f"chunks/{stage_name(models[-1], len(models) - 1)}"
        for i, err in zip(members, failed):
            try:
                if err is None:
                    _frames_done(ctxs[i], _mouth_stage(ctxs[i], folder, device))
            except Exception as exc:  # noqa: BLE001 - e.g. a full disk under this job
                err = exc
            errors[i] = err
    return errors


def load_frames_stage(ctx: StageContext) -> None:
    import json

    info = json.loads(ctx.job.path("frames.json").read_text())
    ctx.results.frames = StoredFrames(ctx.job.path(info["folder"]), info["frames"])


def run_export(ctx: StageContext) -> None:
    from vlogger_cli.export import write_mp4, write_preview

    frames: FrameSource = ctx.results.frames
    out = ctx.job.path(f"{ctx.spec.id}.mp4")
    write_mp4(iter(frames), ctx.spec.fps, out, audio_path=ctx.job.path("audio.wav"))
    write_preview(frames, ctx.job.path("preview.png"), fps=ctx.spec.fps)
    ctx.log.info("export: %s (%d frames)", out, len(frames))


def _nothing_to_load(ctx: StageContext) -> None:
    pass


FRAMES = Stage("frames", run_frames, load_frames_stage, ("frames.json",), run_group=run_frames_group,
               resumes=("chunks",))
EXPORT = Stage("export", run_export, _nothing_to_load, ("preview.png",))
