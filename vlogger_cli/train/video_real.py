"""Stage-2 training data from real talking video (`vlogger train video-data --videos PATH...`).

VLOGGER §3.2 "Training": every frame of a real clip gets its fitted body -> controls (C^d, C^m, C^w warped
from a reference frame of the *same* video at another time, + its mask, the dense flow); the target is the
real frame. Per video: track it (body/track.py through the per-video track cache, resumable), plan its clips
(train/video_real_plan.py: usable frames, shot cuts, squares, seeded reference frames), crop the real frames
to each clip's square as targets and render the clip's controls from the tracked body (`clip_controls`, the
one code path the held-out check video/real_check.py also renders with).

Output: the video dataset format (train/video_data.py; weights/README.md "Video dataset"), read unchanged by
`vlogger train video|sr`, plus:

    DIR/clips/<id>/clip.json   the clip's provenance (video, frames, times, reference frame and its seed, square);
                               written last, so a clip folder without it is unfinished and is built again
    DIR/videos/<id>.json       a finished video: its report and its clips (a resumed build skips the video)
    DIR/manifest.json          every clip with its source video, time range and split; the per-video reports
    DIR/build.json             the build options (resuming with other options is refused)

index.json and manifest.json are rewritten after every video (`"complete": false` until the last), so a killed
build leaves a usable dataset and the same command continues it. Held-out videos (train/video_real_plan.py
`choose_holdout`) get the split "val": `vlogger train` validates on them and never trains on them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vlogger_cli.errors import InputError, ManifestError, VloggerError
from vlogger_cli.io import atomic_write_json
from vlogger_cli.train.video_real_plan import ClipPlan, choose_holdout, plan_video, thumbnail

VIDEO_SUFFIXES = (".avi", ".m4v", ".mkv", ".mov", ".mp4", ".webm")
MANIFEST_FORMAT = "vlogger-real-video-manifest"


def find_videos(paths) -> list[Path]:
    """Files as given, folders expanded to the video files (VIDEO_SUFFIXES) under them, in order, once each."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not inside:
                raise InputError(f"--videos {path}: the folder holds no video files ({', '.join(VIDEO_SUFFIXES)})")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"--videos {path}: no such file or folder; check the path")
    seen, unique = set(), []
    for path in found:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append(path)
    return unique


def tracked_vertices(model, track, motion, first: int, last: int) -> np.ndarray:
    """(T, V, 3) the tracked body of frames first..last: the motion's joints and expression (blinks measured on
    the lids) applied to the motion's reference fit, with each frame's own translation, hands and eyes."""
    import torch

    from vlogger_cli.pipeline.controls import frame_params

    sl = slice(first, last + 1)
    ref_fit = track.fit(motion.meta["reference_index"])
    params = frame_params(ref_fit, motion, first, last, transl=track.transl[sl], hand_pose=track.hand_pose[sl],
                          pose=track.pose[sl])
    with torch.no_grad():
        return model(params).vertices.numpy()


def clip_controls(model, track, plan: ClipPlan, reference_image: np.ndarray, size: int):
    """ControlFrames of the clip's frames at size x size in its square: the tracked body of each frame, textured
    by `reference_image` (the reference frame cropped to the square) on the reference frame's tracked body."""
    from vlogger_cli.motion.tracked import track_to_motion
    from vlogger_cli.pipeline.controls import render_camera
    from vlogger_cli.threads import small_op_threads
    from vlogger_cli.train.video_recipe import _controls

    motion = track_to_motion(track, plan.reference)
    camera = render_camera(track.fit(plan.reference), plan.framing, size)
    with small_op_threads():
        vertices = tracked_vertices(model, track, motion, plan.first, plan.last)
        reference = tracked_vertices(model, track, motion, plan.reference, plan.reference)[0]
        return _controls(model, camera, reference_image, reference, vertices)


def crop_frames(video: Path, fps: float, wanted: dict, size: int) -> dict:
    """{frame: crop}: frame t of the video (read at `fps`, as the track was) cropped to `wanted[t]` (a Framing)
    at size x size, as the render pipeline crops a portrait (body/framing.crop_reference)."""
    from vlogger_cli.body.framing import crop_reference
    from vlogger_cli.media import read_frames

    out, last = {}, max(wanted, default=-1)
    for t, frame in enumerate(read_frames(video, fps=fps)):
        if t > last:
            break
        if t in wanted:
            out[t] = crop_reference(frame, wanted[t], size)
    return out


def _clip_targets(video: Path, fps: float, plans: list[ClipPlan], size: int):
    """Yield (plan, (T, S, S, 3) uint8 targets) for disjoint `plans` in frame order, streaming the video once."""
    from vlogger_cli.body.framing import crop_reference
    from vlogger_cli.media import read_frames

    plans = sorted(plans, key=lambda p: p.first)
    k, buffer = 0, []
    for t, frame in enumerate(read_frames(video, fps=fps)):
        if k == len(plans):
            break
        plan = plans[k]
        if plan.first <= t <= plan.last:
            buffer.append(crop_reference(frame, plan.framing, size))
        if t == plan.last:
            yield plan, np.stack(buffer)
            k, buffer = k + 1, []
    if k < len(plans):
        raise InputError(f"{video}: ended at frame {t} on a second read; re-encode the video")


def _check_options(out: Path, options: dict) -> None:
    path = out / "build.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved != options:
            raise InputError(f"{out} was built with {saved}; resume it with the same --fps/--frames/--size/--seed/--max-seconds, "
                             "or choose another --out")
    elif (out / "index.json").is_file():
        raise InputError(f"{out} holds another dataset (no build.json); choose another --out")
    else:
        atomic_write_json(path, options)


def _build_video(video: Path, vid: str, out: Path, model, options: dict, log) -> dict:
    """Track, plan and write the unfinished clips of one video; returns its summary (videos/<id>.json)."""
    from vlogger_cli.body.track_cache import cached_track
    from vlogger_cli.io import file_sha256
    from vlogger_cli.media import read_frames
    from vlogger_cli.train.video_data import write_clip

    fps, size = options["fps"], options["size"]
    seconds = options.get("max_seconds")  # only the start of a long clip: variety per CPU-minute (--max-seconds)
    track, reused = cached_track(video, fps, max_frames=None if seconds is None else max(1, round(seconds * fps)))
    thumbs = []
    for frame in read_frames(video, fps=fps):
        if len(thumbs) == track.num_frames:
            break
        thumbs.append(thumbnail(frame))
    plans, counts = plan_video(track, np.stack(thumbs), frames=options["frames"], size=size, seed=options["seed"],
                               key=int(file_sha256(video)[:12], 16))
    ids = {p.first: f"{vid}-{p.first:06d}" for p in plans}
    todo = [p for p in plans if not (out / "clips" / ids[p.first] / "clip.json").is_file()]
    if todo:
        # a clip's square is its reference frame's portrait framing: clips sharing a reference share the crop
        references = crop_frames(video, fps, {p.reference: p.framing for p in todo}, size)
        for plan, targets in _clip_targets(video, fps, todo, size):
            reference = references[plan.reference]
            controls = clip_controls(model, track, plan, reference, size)
            write_clip(out, ids[plan.first], targets, reference, controls)
            atomic_write_json(out / "clips" / ids[plan.first] / "clip.json", {
                "id": ids[plan.first], "video": str(video), "video_id": vid, "fps": fps, "frames": plan.num_frames,
                "first_frame": plan.first, "last_frame": plan.last, "start_s": round(plan.first / fps, 3),
                "end_s": round((plan.last + 1) / fps, 3), "reference_frame": plan.reference,
                "reference_s": round(plan.reference / fps, 3), "reference_seed": list(plan.seed),
                "framing": plan.framing.to_dict()})
    seconds = float(track.info.get("seconds", np.nan))
    summary = {"video": str(video), "id": vid, "counts": counts, "clips": [ids[p.first] for p in plans],
               "built": len(todo), "resumed": len(plans) - len(todo), "track_reused": reused,
               "track_s_per_frame": round(seconds / max(1, track.num_frames), 3),
               "face_error": round(float(np.nanmean(track.relative_errors)), 5),
               "image_size": list(track.image_size)}
    atomic_write_json(out / "videos" / f"{vid}.json", summary)
    return summary


def report_line(name: str, summary: dict, split: str, frames: int) -> str:
    c = summary["counts"]
    held = " (held out)" if split == "val" else ""
    track = "cached" if summary["track_reused"] else "tracked now"
    again = f", {summary['resumed']} built before" if summary.get("resumed") else ""
    return (f"{name}: {c['frames']} frames -> {len(summary['clips'])} clips of {frames} [{split}{held}]{again}; "
            f"skipped {c['lost']} lost, {c['cut']} at cuts, {c['small_face']} small face, "
            f"{c['no_reference']} without reference, {c['short']} left over; "
            f"tracking {summary['track_s_per_frame']} s/frame ({track})")


def build_real_dataset(videos, out, *, fps: float = 25.0, frames: int = 16, size: int = 256, seed: int = 0,
                       holdout: list[str] | None = None, holdout_fraction: float = 0.0,
                       max_seconds: float | None = None,
                       log: Callable[[str], None] = print) -> dict:
    """Build (or continue) the real-video dataset in `out` (module docstring). The inputs are checked first: a
    still image or a one-frame file, an unknown --holdout name, other options than the folder was built with
    are a ManifestError before anything is built. A video that fails later (no
    face) is reported and skipped; the others are built. Returns {"clips", "frames", "videos", "failed",
    "holdout"}."""
    import torch

    from vlogger_cli.media import probe_moving_video
    from vlogger_cli.motion.prepare import clip_id

    out = Path(out)
    options = {"fps": float(fps), "frames": int(frames), "size": int(size), "seed": int(seed)}
    if max_seconds is not None:  # recorded only when set: folders built before the option resume unchanged
        options["max_seconds"] = float(max_seconds)
    try:  # the whole command line is checked before anything is built
        videos = find_videos(videos)
        for video in videos:
            probe_moving_video(video)
        held = choose_holdout([v.name for v in videos], holdout, holdout_fraction, seed)
        out.mkdir(parents=True, exist_ok=True)
        _check_options(out, options)
    except InputError as err:
        raise ManifestError(str(err)) from None
    torch.set_num_threads(1)  # anny forwards and rasterisation: many small ops (vlogger_cli/threads.py)
    model, videos_done, records, failed = None, [], [], []
    for video in videos:
        vid = clip_id(video)
        split = "val" if video.name in held else "train"
        marker = out / "videos" / f"{vid}.json"
        try:
            if marker.is_file():
                summary = {**json.loads(marker.read_text()), "resumed": -1}
            else:
                if model is None:
                    from vlogger_cli.body.anny_model import anny_body

                    model = anny_body()
                summary = _build_video(video, vid, out, model, options, log)
        except (VloggerError, OSError) as err:
            failed.append((str(video), str(err)))
            log(f"{video.name}: failed: {err}")
            continue
        log(report_line(video.name, summary, split, frames) if summary["resumed"] >= 0
            else f"{video.name}: done before ({len(summary['clips'])} clips, {split})")
        videos_done.append({**{k: v for k, v in summary.items() if k not in ("resumed", "built")}, "split": split})
        records += [{**json.loads((out / "clips" / cid / "clip.json").read_text()), "split": split}
                    for cid in summary["clips"]]
        _write_lists(out, options, videos_done, records, held, complete=False)
    _write_lists(out, options, videos_done, records, held, complete=True)
    return {"clips": len(records), "frames": sum(r["frames"] for r in records), "videos": len(videos_done),
            "failed": failed, "holdout": sorted(held)}


def _write_lists(out: Path, options: dict, videos: list[dict], records: list[dict], held: set, *,
                 complete: bool) -> None:
    """manifest.json, then index.json (the dataset's entry point) last."""
    from vlogger_cli.train.video_data import write_index

    atomic_write_json(out / "manifest.json", {"format": MANIFEST_FORMAT, "options": options, "complete": complete,
                                              "holdout": sorted(held), "videos": videos, "clips": records})
    entries = [{"id": r["id"], "split": r["split"], "frames": r["frames"], "video": Path(r["video"]).name,
                "start_s": r["start_s"], "end_s": r["end_s"], "reference_frame": r["reference_frame"]}
               for r in records]
    write_index(out, fps=options["fps"], size=options["size"], clips=entries, complete=complete,
                source="real video (vlogger train video-data --videos)", holdout=sorted(held), seed=options["seed"])
