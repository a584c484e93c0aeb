"""The stages of an edit job (`kind: edit`, `vlogger edit`): a talking video in, the edited video out.

    source -> track -> speech -> motion -> controls -> frames -> export

- source:   probe the video (no video stream / zero frames: a clear error), choose the constant frame rate
            (the job's `fps`, else the container's; variable-rate input is resampled), keep its audio
            (`source_audio.wav`, none when the clip has none).
- track:    per-frame body fit (body/track.py) -> `track/`, the tracked motion `motion_tracked.safetensors`
            (stage-1 format), the squares the edit works in (`framing.json`: one per frame, following the face;
            edit/framing.py) and the source's
            squares at the job's resolution (`source/`, one chunk per WINDOW frames).
- speech:   new speech (`text:` / `audio:`, fitted to the video's duration) or the source's own -> `audio.wav`.
- motion:   the edited motion (edit/motion.py) -> `motion.safetensors`, `motion.png` (+ `motion_generated`).
- controls: per window: the tracked and the edited bodies; the controls of the edited body with the SOURCE
            FRAME as its texture (C^w, and the backward flow edited -> source frame), and the masks
            (edit/masks.py: blend, keep, known) -> `controls/`, `masks/`, `masks.png`.
- frames:   only the edited frames: `renderer: warp` = the source frame warped by the flow; `diffusion` =
            stage 2 as inpainting: known pixels (outside the edit, and the kept lips) held, the edited
            region denoised from the controls and the flow-warped source frame -> `chunks/`.
- export:   every source frame at its own size, the edited square blended in (soft borders), with the
            source's audio (or the new speech) -> `<id>.mp4`, `preview.png` (source above, edit below).
"""

from __future__ import annotations

import json

import numpy as np

from vlogger_cli.frame_store import FrameStore
from vlogger_cli.io import atomic_write_json
from vlogger_cli.pipeline.base import Stage, StageContext
from vlogger_cli.threads import small_op_threads
from vlogger_cli.pipeline.controls import WINDOW, frame_params, render_camera

SOURCE_CHUNKS = "source"
MASK_CHUNKS = "masks"
TRACK_PARTIAL = "track_partial"


def _options(ctx: StageContext):
    from vlogger_cli.edit.options import EditOptions

    return EditOptions.from_spec(ctx.spec)


# ---------------------------------------------------------------------------------------------- source


def run_source(ctx: StageContext) -> None:
    from vlogger_cli.errors import JobError
    from vlogger_cli.media import extract_audio, probe_moving_video

    video = ctx.spec.video
    try:
        info = probe_moving_video(video)  # a still image named .mp4 is refused here
    except JobError as err:
        raise JobError(f"job '{ctx.spec.id}': video {err}") from None
    fps = float(ctx.spec.fps or info.constant_rate)
    if not fps > 0:
        raise JobError(f"job '{ctx.spec.id}': cannot tell the frame rate of {video}; set fps: in the job")
    frames = round(info.duration * fps) if ctx.spec.fps or info.variable_rate else info.num_frames
    first, _last = _options(ctx).frame_range(frames)
    if first >= frames:
        raise JobError(f"job '{ctx.spec.id}': frames {ctx.spec.frames} start after the video's {frames} frames "
                       f"({video}); choose a range within 0:{frames}")
    audio = extract_audio(video, ctx.job.path("source_audio.wav")) if info.has_audio else None
    data = {"video": str(video), "fps": fps, "container_fps": info.fps, "variable_rate": info.variable_rate,
            "width": info.width, "height": info.height, "duration": info.duration, "has_audio": audio is not None}
    atomic_write_json(ctx.job.path("source.json"), data)
    ctx.log.info("source: %s, %dx%d, %.2f s at %.3f fps%s (edited at a constant %.3f fps), audio: %s", video,
                 info.width, info.height, info.duration, info.fps, " (variable rate)" if info.variable_rate else "",
                 fps, "yes" if audio else "none")
    ctx.results.source = data


def load_source(ctx: StageContext) -> None:
    ctx.results.source = json.loads(ctx.job.path("source.json").read_text())


# ---------------------------------------------------------------------------------------------- track


def run_track(ctx: StageContext) -> None:
    from PIL import Image

    from vlogger_cli.body.track import save_track
    from vlogger_cli.body.track_cache import cached_track
    from vlogger_cli.edit.framing import crop_square, edit_framings
    from vlogger_cli.errors import JobError
    from vlogger_cli.media import read_frames
    from vlogger_cli.io import atomic_path
    from vlogger_cli.motion.generate import save_motion
    from vlogger_cli.motion.tracked import track_to_motion

    spec, src = ctx.spec, ctx.results.source
    try:  # resume points every 50 frames: a killed run resumes the tracking of a long video where it was
        track, reused = cached_track(spec.video, src["fps"], checkpoint_dir=ctx.job.path(TRACK_PARTIAL), log=ctx.log)
    except JobError as err:
        raise JobError(f"job '{spec.id}': {err}") from None
    if reused:
        ctx.log.info("track: reused the track of this video from the cache")
    save_track(ctx.job.path("track"), track)
    reference_index = int(np.argmax(~track.lost))
    save_motion(ctx.job.path("motion_tracked.safetensors"), track_to_motion(track, reference_index))
    errors = track.relative_errors
    ctx.log.info("track: %d frames, %d without a face, face error %.2f %% (max %.2f %%) in %.1f s", track.num_frames,
                 len(track.lost_frames), 100 * np.nanmean(errors), 100 * np.nanmax(errors), track.info["seconds"])

    framings = edit_framings(track, whole_head=_options(ctx).head != "source")
    size, n = spec.resolution, track.num_frames
    chunks, buffer, start = FrameStore(ctx.job.path(SOURCE_CHUNKS)), [], 0
    for i, frame in enumerate(read_frames(spec.video, fps=src["fps"])):
        if i >= n:
            break
        buffer.append(crop_square(frame, framings[i], size))
        if len(buffer) == WINDOW or i == n - 1:
            chunks.write(start // WINDOW, np.stack(buffer), num_frames=n, window=WINDOW)
            start, buffer = i + 1, []
    if start < n:
        raise JobError(f"job '{spec.id}': {spec.video} gave {start} frames on a second read, {n} on the first")
    reference = chunks.frame(reference_index)
    with atomic_path(ctx.job.path("reference.png")) as tmp:
        Image.fromarray(reference).save(tmp, format="PNG")
    # framing.json last: it marks the stage complete
    atomic_write_json(ctx.job.path("framing.json"), {"left": [f.left for f in framings], "top": [f.top for f in framings],
                                                     "side": framings[0].side, "size": size,
                                                     "reference_index": reference_index, "frames": n})


def load_track_stage(ctx: StageContext) -> None:
    from PIL import Image

    from vlogger_cli.body.track import load_track
    from vlogger_cli.motion.generate import load_motion
    from vlogger_cli.body.framing import Framing

    data = json.loads(ctx.job.path("framing.json").read_text())
    with Image.open(ctx.job.path("reference.png")) as img:
        reference = np.asarray(img.convert("RGB"))
    track = load_track(ctx.job.path("track"))
    results = ctx.results
    results.track, results.reference, results.reference_index = track, reference, data["reference_index"]
    results.tracked = load_motion(ctx.job.path("motion_tracked.safetensors"))
    results.framings = [Framing(x, y, data["side"]) for x, y in zip(data["left"], data["top"])]
    results.source_frames = FrameStore(ctx.job.path(SOURCE_CHUNKS))


# ---------------------------------------------------------------------------------------------- speech


_ANY_LENGTH = {"min_seconds": 0.0, "max_seconds": 48 * 3600.0}
"""A source video's sound is taken at any length (new speech keeps the job's limits)."""


def run_edit_speech(ctx: StageContext) -> None:
    """audio.wav: the new speech fitted to the video's length (silence after it, or cut), else the source's."""
    from vlogger_cli.audio import load_audio, write_wav
    from vlogger_cli.audio.load import SAMPLE_RATE
    from vlogger_cli.io import TMP_MARKER

    spec, src = ctx.spec, ctx.results.source
    n = ctx.results.track.num_frames
    samples = int(round(n / src["fps"] * SAMPLE_RATE))
    if spec.text is not None or spec.audio is not None:
        if spec.text is not None:
            from vlogger_cli.audio import synthesize_speech

            tts_path = ctx.job.path(".tts" + TMP_MARKER + ".wav")
            try:
                synthesize_speech(spec.text, tts_path, voice=spec.voice, rate=spec.rate)
                waveform = load_audio(tts_path, max_seconds=spec.max_audio_seconds)
            finally:
                tts_path.unlink(missing_ok=True)
        else:
            waveform = load_audio(spec.audio, max_seconds=spec.max_audio_seconds)
        if len(waveform) > samples:
            ctx.log.warning("speech: %.2f s of new speech is longer than the %.2f s video; cut at its end",
                            len(waveform) / SAMPLE_RATE, samples / SAMPLE_RATE)
        waveform = np.pad(waveform[:samples], (0, max(0, samples - len(waveform))))
        write_wav(ctx.job.path("audio.wav"), waveform)
        info = {"audio": "audio.wav", "mp4_audio": "audio.wav", "new_speech": True}
    elif src["has_audio"]:
        # the source's own sound is passed through whatever it holds (a short or silent track is not an
        # error); speech features are made from it where it has any
        from vlogger_cli.errors import InputError

        try:
            write_wav(ctx.job.path("audio.wav"), load_audio(ctx.job.path("source_audio.wav"), **_ANY_LENGTH))
            audio = "audio.wav"
        except InputError as err:
            ctx.log.warning("speech: no speech features from the source's sound (%s); edits that need speech "
                            "use silence", err)
            audio = None
        info = {"audio": audio, "mp4_audio": "source_audio.wav", "new_speech": False}
    else:
        info = {"audio": None, "mp4_audio": None, "new_speech": False}
    atomic_write_json(ctx.job.path("speech.json"), info)


def load_edit_speech(ctx: StageContext) -> None:
    from vlogger_cli.audio import compute_features, load_audio
    from vlogger_cli.audio.load import SAMPLE_RATE

    info = json.loads(ctx.job.path("speech.json").read_text())
    fps, n = ctx.results.source["fps"], ctx.results.track.num_frames
    if info["audio"]:
        waveform = load_audio(ctx.job.path(info["audio"]), **_ANY_LENGTH)
    else:  # a silent clip: the motion model still needs features (silence) for --head generate
        waveform = np.zeros(int(round(n / fps * SAMPLE_RATE)), np.float32)
    need = int(np.ceil((n + 0.5) / fps * SAMPLE_RATE))
    waveform = np.pad(waveform, (0, max(0, need - len(waveform))))
    ctx.results.features, ctx.results.speech = compute_features(waveform, fps), info


# ---------------------------------------------------------------------------------------------- motion


def run_edit_motion(ctx: StageContext) -> None:
    from vlogger_cli.edit.motion import edit_motion, needs_generated
    from vlogger_cli.motion.generate import generate_motion, plot_motion, save_motion
    from vlogger_cli.motion.axes import reference_of

    options, tracked, track = _options(ctx), ctx.results.tracked, ctx.results.track
    generated = None
    if needs_generated(options):
        reference = reference_of(track.fit(ctx.results.reference_index))
        generated = generate_motion(ctx.results.features, reference, seed=ctx.spec.seed,
                                    best_of=ctx.spec.best_of, device=ctx.torch_device())
        save_motion(ctx.job.path("motion_generated.safetensors"), generated)
    edited = edit_motion(tracked, options, generated)
    save_motion(ctx.job.path("motion.safetensors"), edited)
    plot_motion(edited, ctx.results.features, ctx.job.path("motion.png"))
    ctx.log.info("motion: %s", edited.meta["edit"])


def load_edit_motion(ctx: StageContext) -> None:
    from vlogger_cli.motion.generate import load_motion

    ctx.results.motion = load_motion(ctx.job.path("motion.safetensors"))


# ---------------------------------------------------------------------------------------------- controls


def run_edit_controls(ctx: StageContext) -> None:
    with small_op_threads():
        _render_edit_controls(ctx)


def _render_edit_controls(ctx: StageContext) -> None:
    import torch

    from vlogger_cli.body.anny_model import anny_body
    from vlogger_cli.controls.texture import reference_texture, visibility_scale
    from vlogger_cli.controls.raster import FaceRasterizer
    from vlogger_cli.controls.render import ControlFrames, ControlRenderer, PositionBox
    from vlogger_cli.controls.store import ControlStore
    from vlogger_cli.edit.masks import frame_masks, redraw_parts
    from vlogger_cli.edit.motion import edit_weights, with_lids_of

    options, track, framings = _options(ctx), ctx.results.track, ctx.results.framings
    tracked, edited, sources = ctx.results.tracked, ctx.results.motion, ctx.results.source_frames
    n, ref = track.num_frames, ctx.results.reference_index
    model = anny_body()
    ref_fit = track.fit(ref)
    cameras = [render_camera(ref_fit, f, ctx.spec.resolution) for f in framings]  # each frame's crop
    camera = cameras[ref]
    weights = edit_weights(options, n, tracked.fps)
    # still / generated heads: the body stays where it was in the reference frame
    transl = track.transl if options.head == "source" else np.repeat(track.transl[ref:ref + 1], n, axis=0)
    redraw = redraw_parts(options)
    donors, lids = job_texture_donors(ctx), lid_closing(ctx)
    lidded = with_lids_of(tracked, edited) if lids.cover.any() else None  # the body of a 2-D closed square
    store, masks = ControlStore(ctx.job.path("controls")), FrameStore(ctx.job.path(MASK_CHUNKS))

    def vertices(motion, first, last, translation):
        sl = slice(first, last + 1)
        params = frame_params(ref_fit, motion, first, last, transl=translation[sl], hand_pose=track.hand_pose[sl],
                              pose=track.pose[sl])
        with torch.no_grad():
            return model(params).vertices.numpy()

    window = {"first": 0, "crops": []}  # the source squares of the window being rendered

    def texture(frame: int, frame_vertices):
        """Frame `frame`'s square as the texture of its tracked body (seen by that frame's crop camera)."""
        visibility.set_camera(cameras[frame].scaled(camera.width * scale, camera.height * scale))
        lo = window["first"]
        square = (window["crops"][frame - lo] if 0 <= frame - lo < len(window["crops"])
                  else sources.frame(frame))
        return reference_texture(lids.square(frame, square), cameras[frame], frame_vertices, model.faces,
                                 rasterizer=visibility)

    with torch.no_grad():
        box = PositionBox.around(camera, model(ref_fit.params()).vertices[0].numpy())
    scale = visibility_scale(camera)
    with ControlRenderer.for_model(model, camera, None, box=box) as renderer, \
            FaceRasterizer(model.faces, camera.scaled(camera.width * scale, camera.height * scale)) as visibility:
        for first in range(0, n, WINDOW):
            last = min(first + WINDOW, n) - 1
            if store.has(first, last) and masks.has(first // WINDOW):
                continue  # finished by an earlier, interrupted run
            v_src, v_edit = vertices(tracked, first, last, track.transl), vertices(edited, first, last, transl)
            v_lids = vertices(lidded, first, last, track.transl) if lids.cover[first:last + 1].any() else None
            window.update(first=first, crops=sources.frames(first, last + 1))
            maps, layers = [], []
            for k in range(last + 1 - first):
                t = first + k
                renderer.set_camera(cameras[t])
                renderer.reference = None
                src_parts = renderer.render_frame(v_src[k])["parts"]
                if weights[t] > 0:  # untouched frames need no texture: zero flow, the source as is
                    renderer.reference = texture(t, v_src[k])
                frame = renderer.render_frame(v_edit[k])
                moved = frame["flow"]  # where the edit moves the surface (within frame t): the mask's input
                d = int(donors[t])
                if weights[t] > 0 and d != t:  # textured by an open-eyed frame: the flow points into it
                    renderer.reference = texture(d, vertices(tracked, d, d, track.transl)[0])
                    frame = renderer.render_frame(v_edit[k])
                elif lids.cover[t] > 0:  # its own square with the lids closed in 2-D: a body with closed lids
                    renderer.reference = texture(t, v_lids[k])
                    frame = renderer.render_frame(v_edit[k])
                m = frame_masks(src_parts, frame["parts"], moved, frame["mask"], redraw_parts=redraw,
                                keep_lips=options.keep_lips, head_moves=options.head != "source",
                                weight=float(weights[t]), also=lids.region(t))
                maps.append(frame)
                layers.append(np.stack([np.round(m["blend"] * 255), m["keep"] * 255, m["known"] * 255], -1))
            renderer.reference = None
            masks.write(first // WINDOW, np.asarray(layers, dtype=np.uint8), num_frames=n, window=WINDOW)
            store.write(first, ControlFrames(**{f: np.stack([m[f] for m in maps]) for f in ControlFrames.FIELDS}))
            ctx.log.info("controls: frames %d-%d", first, last)
    _mask_preview(ctx, masks, sources, weights)


OPEN_EYES = 0.2
SHUT_EYES = 0.8
"""Lid closure (Track.eye_closure, 0 open .. 1 shut) below / above which a frame's eyes count as open / shut."""


def job_texture_donors(ctx: StageContext) -> np.ndarray:
    """The job's `texture_donors`, worked out once per run (the controls and frames stages ask per window)."""
    if ctx.results.texture_donors is None:
        ctx.results.texture_donors = texture_donors(ctx.results.track, _options(ctx))
    return ctx.results.texture_donors


def texture_donors(track, options) -> np.ndarray:
    """(T,) the source frame whose pixels texture each frame's edited body: the frame itself, except that
    `--eyes open` textures frames with shut eyes (blinks) by the nearest frame with open eyes, and `--eyes
    closed` textures frames with open eyes by the nearest frame with shut ones (a blink of the video), when
    there is one: real eyes and real lids, moved by the mesh flow onto the edited body, look better than
    stretching the lid's few visible pixels. (Such a frame's flow points into its donor; the frames stage
    warps the donor's square accordingly; the masks use the frame's own motion.)"""
    n = track.num_frames
    donors = np.arange(n)
    if options.eyes == "source":
        return donors
    closure = track.eye_closure()
    if options.eyes == "open":
        good, needy = closure.max(axis=1) < OPEN_EYES, closure.max(axis=1) >= OPEN_EYES
    else:
        good, needy = closure.min(axis=1) >= SHUT_EYES, closure.min(axis=1) < SHUT_EYES
    good_frames = np.flatnonzero(good & ~track.lost)
    if len(good_frames) == 0:
        return donors
    nearest = good_frames[np.abs(good_frames[None, :] - np.arange(n)[:, None]).argmin(axis=1)]
    donors[needy] = nearest[needy]
    return donors


class LidClosing:
    """`--eyes closed` on frames with no blink of the video to texture them: the source squares with the eyes
    closed in 2-D (edit/lids.py), the same lids at the job's resolution and at the footage's."""

    def __init__(self, ctx: StageContext):
        from vlogger_cli.edit.lids import eye_outlines
        from vlogger_cli.edit.motion import edit_weights

        track, options = ctx.results.track, _options(ctx)
        donors = job_texture_donors(ctx)
        weights = edit_weights(options, track.num_frames, ctx.results.tracked.fps)
        self.cover = np.where(donors == np.arange(track.num_frames), weights, 0.0) if options.eyes == "closed" \
            else np.zeros(track.num_frames, np.float32)
        self.outlines = eye_outlines(track.landmarks["face"], track.lost) if self.cover.any() else None
        self.framings, self.sources, self.size = ctx.results.framings, ctx.results.source_frames, ctx.spec.resolution
        self._bands: dict[int, list] = {}  # per frame: each stage asks for a frame's lids more than once

    def _at(self, t: int, size: int):
        from vlogger_cli.edit.lids import in_square, lid_bands

        if t not in self._bands:  # the lids' bands are measured on the job's square, used at every size
            self._bands[t] = lid_bands(self.sources.frame(t), in_square(self.outlines[t], self.framings[t], self.size))
        return in_square(self.outlines[t], self.framings[t], size), self._bands[t], size / self.size

    def square(self, t: int, square: np.ndarray) -> np.ndarray:
        """Frame t's source square (any size, the job's framing) with its lids closed by the frame's cover."""
        from vlogger_cli.edit.lids import close_lids

        if self.cover[t] <= 0:
            return square
        outlines, bands, scale = self._at(t, square.shape[0])
        return close_lids(square, outlines, float(self.cover[t]), bands, scale)

    def region(self, t: int) -> np.ndarray | None:
        """(R, R) bool the pixels of frame t's square the closing moves (None: none)."""
        from vlogger_cli.edit.lids import lid_source_rows

        if self.cover[t] <= 0:
            return None
        outlines, bands, scale = self._at(t, self.size)
        return lid_source_rows(outlines, float(self.cover[t]), self.size, bands, scale)[1]


def lid_closing(ctx: StageContext) -> LidClosing:
    """The job's LidClosing, made once per run (the controls, frames and export stages ask per frame)."""
    if ctx.results.lid_closing is None:
        ctx.results.lid_closing = LidClosing(ctx)
    return ctx.results.lid_closing


def _mask_preview(ctx: StageContext, masks, sources, weights) -> None:
    """masks.png: three edited frames, regenerated region red (by blend weight), kept pixels green."""
    from vlogger_cli.edit.masks import mask_overlay
    from vlogger_cli.export.preview import contact_sheet

    edited = np.flatnonzero(weights > 0)
    picks = sorted({int(edited[0]), int(edited[len(edited) // 2]), int(edited[-1])}) if len(edited) else [0]
    images = []
    for t in picks:
        layer = masks.frame(t)
        images.append(mask_overlay(sources.frame(t), layer[..., 0] / 255.0, layer[..., 1] > 127))
    contact_sheet(images, len(images), ctx.job.path("masks.png"), titles=[f"#{t}" for t in picks])


def load_edit_controls(ctx: StageContext) -> None:
    from vlogger_cli.controls.store import ControlStore

    ctx.results.controls = ControlStore(ctx.job.path("controls"))
    ctx.results.masks = FrameStore(ctx.job.path(MASK_CHUNKS))


EDIT_SOURCE = Stage("source", run_source, load_source, ("source.json",))
EDIT_TRACK = Stage("track", run_track, load_track_stage, ("track/track.json", "motion_tracked.safetensors",
                                                          "reference.png", "framing.json"))
EDIT_SPEECH = Stage("speech", run_edit_speech, load_edit_speech, ("speech.json",))
EDIT_MOTION = Stage("motion", run_edit_motion, load_edit_motion, ("motion.safetensors", "motion.png"))
EDIT_CONTROLS = Stage("controls", run_edit_controls, load_edit_controls, ("masks.png",),
                      resumes=("controls", MASK_CHUNKS))
