"""Edit jobs' "frames" and "export" stages (pipeline/edit.py has the overview).

frames: only the edited frames [A, B) are rendered (an edit of 2 s in a 10-minute video costs 2 s), into
`chunks/` as render jobs do: `renderer: warp` -> chunks/warp/ (the source square warped by the flow to the
edited body), `renderer: diffusion` -> chunks/base/, chunks/sr256/, ... (stage 2 with known pixels: the
flow-warped source outside the edited region and on the kept lips; each window a resume point).
export: the source video streamed frame by frame, the edited square brought to the footage's size with the
footage's own fine detail where the edit kept its content (edit/detail.py), blended in by the soft mask.
"""

from __future__ import annotations

import json

import numpy as np

from vlogger_cli.errors import JobError
from vlogger_cli.frame_store import FrameStore
from vlogger_cli.io import atomic_write_json
from vlogger_cli.pipeline.base import Stage, StageContext
from vlogger_cli.pipeline.controls import WINDOW
from vlogger_cli.pipeline.edit import _options


EDIT_CRF = 12
"""libx264 quality of edited videos: higher than renders' 18, because most of an edited picture is the
source's own pixels and an edit should not visibly re-compress them (measured on the astronaut test clip:
lips PSNR against the source 34.8 dB at crf 18, see tests/pipeline/test_edit.py)."""


class _Offset:
    """The job's control store seen from frame `first` on (stage 2 renders the edited range only)."""

    def __init__(self, store, first: int):
        self.store, self.first = store, first

    def load(self, start: int, stop: int):
        return self.store.load(self.first + start, self.first + stop)


def textures(ctx: StageContext, start: int, stop: int) -> np.ndarray:
    """(T, R, R, 3) uint8 the source squares that texture frames [start, stop): each frame's own, or for
    `--eyes open` on shut eyes the open-eyed donor frame's (pipeline/edit.py `texture_donors`); for
    `--eyes closed` without a blink to borrow, with the lids closed in 2-D (edit/lids.py)."""
    from vlogger_cli.pipeline.edit import job_texture_donors, lid_closing

    donors, lids = job_texture_donors(ctx)[start:stop], lid_closing(ctx)
    sources = ctx.results.source_frames
    if np.array_equal(donors, np.arange(start, stop)):
        squares = sources.frames(start, stop)
    else:
        squares = np.stack([sources.frame(int(d)) for d in donors])
    return np.stack([lids.square(start + k, s) for k, s in enumerate(squares)])


def warped_sources(ctx: StageContext, start: int, stop: int) -> np.ndarray:
    """(T, R, R, 3) uint8 the source squares [start, stop) warped to the edited bodies (the flow)."""
    from vlogger_cli.controls.warp import warp_portrait

    controls = ctx.results.controls.load(start, stop)
    return np.stack([warp_portrait(t, f, c) for t, f, c in zip(textures(ctx, start, stop), controls.flow,
                                                                controls.cavity)])


def run_edit_frames(ctx: StageContext) -> None:
    options, n = _options(ctx), ctx.results.track.num_frames
    first, last = options.frame_range(n)
    if last <= first:
        raise JobError(f"job '{ctx.spec.id}': frames {ctx.spec.frames} lie outside the video's {n} frames; "
                       f"choose a range within 0:{n}")
    if ctx.spec.renderer == "warp":
        chunks = FrameStore(ctx.job.path("chunks/warp"))  # frame 0 of the store is video frame `first`
        for index, start in enumerate(range(first, last, WINDOW)):
            stop = min(start + WINDOW, last)
            if not chunks.has(index):
                chunks.write(index, warped_sources(ctx, start, stop), num_frames=last - first, window=WINDOW)
        folder = "chunks/warp"
    else:
        folder = _render_diffusion(ctx, first, last)
    atomic_write_json(ctx.job.path("frames.json"), {"renderer": ctx.spec.renderer, "folder": folder,
                                                    "first": first, "last": last, "frames": n})


def _render_diffusion(ctx: StageContext, first: int, last: int) -> str:
    import torch

    from vlogger_cli.pipeline.inference import job_cascade, job_mouth
    from vlogger_cli.video.chunks import window_store
    from vlogger_cli.video.render import MOUTH_STAGE, render_cascade, render_mouth, stage_name

    spec, device = ctx.spec, ctx.torch_device()
    models = job_cascade(ctx, device, suggestion="or set renderer: warp")
    masks = ctx.results.masks

    def portraits(s: int, e: int) -> np.ndarray:
        return textures(ctx, first + s, first + e)

    def known(s: int, e: int):
        return warped_sources(ctx, first + s, first + e), masks.frames(first + s, first + e)[..., 2] > 127

    def on_window(stage: str, state) -> None:
        ctx.log.info("frames: %s window %d (frames %d-%d)", stage, state.index, first + state.new_start,
                     first + state.end - 1)

    with torch.inference_mode():
        render_cascade(models, _Offset(ctx.results.controls, first), ctx.results.reference, last - first,
                       ctx.job.path("chunks"), seed=spec.seed, key=ctx.config_hash, steps=spec.steps,
                       overlap=spec.overlap, device=device, autocast=ctx.inference.autocast, on_window=on_window,
                       portraits=portraits, known=known)
    folder = f"chunks/{stage_name(models[-1], len(models) - 1)}"
    refiner = job_mouth(device)
    if refiner is None:
        return folder
    # the mouth stage (video/mouth.py): each frame's own source square warped, the kept pixels kept
    render_mouth(refiner, window_store(ctx.job.path(folder)), _Offset(ctx.results.controls, first), last - first,
                 ctx.job.path(f"chunks/{MOUTH_STAGE}"), warped=lambda s, e: warped_sources(ctx, first + s, first + e),
                 known=known)
    return f"chunks/{MOUTH_STAGE}"


class EditedFrames:
    """Edited squares by video frame number (for frames in the edited range)."""

    def __init__(self, ctx: StageContext, info: dict):
        self.first, self.last = info["first"], info["last"]
        folder = ctx.job.path(info["folder"])
        store = FrameStore(folder)  # frame 0 of the store is video frame `first`, for warp and diffusion alike
        self._read = lambda s, e: store.frames(s - self.first, e - self.first)

    def window(self, start: int, stop: int) -> np.ndarray:
        return self._read(start, stop)


def load_edit_frames(ctx: StageContext) -> None:
    info = json.loads(ctx.job.path("frames.json").read_text())
    ctx.results.frames = EditedFrames(ctx, info)


def run_edit_export(ctx: StageContext) -> None:
    from vlogger_cli.edit.detail import full_resolution_square
    from vlogger_cli.edit.framing import paste_back
    from vlogger_cli.export import write_mp4
    from vlogger_cli.pipeline.edit import lid_closing
    from vlogger_cli.media import read_frames
    from vlogger_cli.export.preview import contact_sheet, preview_indices

    src, speech = ctx.results.source, ctx.results.speech
    frames, masks, framings = ctx.results.frames, ctx.results.masks, ctx.results.framings
    n, lids = ctx.results.track.num_frames, lid_closing(ctx)
    # the preview shows the edited stretch (its first / middle / last frames)
    picks = {frames.first + i for i in preview_indices(frames.last - frames.first)}
    shown: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def edited_video():
        cache: dict = {}
        for t, frame in enumerate(read_frames(ctx.spec.video, fps=src["fps"])):
            if t >= n:
                break
            out = frame
            if frames.first <= t < frames.last:
                start = frames.first + (t - frames.first) // WINDOW * WINDOW
                if cache.get("start") != start:  # one window of edited squares and masks in memory
                    stop = min(start + WINDOW, frames.last)
                    cache = {"start": start, "squares": frames.window(start, stop),
                             "blend": masks.frames(start, stop)[..., 0].astype(np.float32) / 255.0,
                             "flow": ctx.results.controls.load(start, stop).flow}
                blend = cache["blend"][t - start]
                if blend.any():  # the edited square at the footage's size, with its detail (edit/detail.py)
                    f = framings[t]
                    source = frame[int(f.top):int(f.top) + int(f.side), int(f.left):int(f.left) + int(f.side)]
                    source = lids.square(t, source)  # --eyes closed: the same lids at the footage's size
                    square = full_resolution_square(cache["squares"][t - start], source, cache["flow"][t - start])
                    out = paste_back(frame, square, blend, f)
            if t in picks:
                shown[t] = (frame, out)
            yield out

    out_path = ctx.job.path(f"{ctx.spec.id}.mp4")
    audio = ctx.job.path(speech["mp4_audio"]) if speech["mp4_audio"] else None
    write_mp4(edited_video(), src["fps"], out_path, audio_path=audio, crf=EDIT_CRF)
    order = sorted(shown)
    contact_sheet([shown[t][0] for t in order] + [shown[t][1] for t in order], len(order),
                  ctx.job.path("preview.png"), titles=[f"source #{t}" for t in order] + [f"edited #{t}" for t in order])
    ctx.log.info("export: %s (%d frames, audio: %s)", out_path, n, speech["mp4_audio"] or "none")


def _nothing_to_load(ctx: StageContext) -> None:
    pass


EDIT_FRAMES = Stage("frames", run_edit_frames, load_edit_frames, ("frames.json",), resumes=("chunks",))
EDIT_EXPORT = Stage("export", run_edit_export, _nothing_to_load, ("preview.png",))
