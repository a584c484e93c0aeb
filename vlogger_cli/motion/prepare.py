"""Stage-1 training data from real talking videos: track each video, keep its motion and its speech.

`vlogger train prepare-videos VIDEO... --out DIR` writes the motion dataset format of dataset.py (the one the
synthetic corpus writes and `vlogger train motion` reads): per video one clip, `clips/<id>.wav` (the
video's speech, 16 kHz mono) and `clips/<id>.motion.safetensors` (the tracked motion, `motion.tracked.track_to_motion`,
relative to the first frame with a face, and that frame's fit as the reference).

Incremental and resumable: the index is rewritten after every clip, videos already in it are skipped, so
a long list can be stopped and run again, or extended later. A video without sound is skipped (motion
training needs the speech), a video without a face is reported; neither stops the others.
The same tracker as `vlogger edit` (body/track.py), with the same track cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from vlogger_cli.errors import VloggerError

VAL_EVERY = 10
"""Every clip whose id hashes to 0 mod VAL_EVERY goes to the validation split (stable as the set grows)."""


def clip_id(video: Path) -> str:
    """A stable, unique id: the file name's stem and a hash of its content."""
    from vlogger_cli.io import file_sha256

    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in video.stem)[:40] or "clip"
    return f"{stem}-{file_sha256(video)[:10]}"


def _split(cid: str) -> str:
    return "val" if int(hashlib.sha256(cid.encode()).hexdigest(), 16) % VAL_EVERY == 0 else "train"


def prepare_video(video: Path, fps: float, max_seconds: float | None = None) -> tuple:
    """(motion (T, 127), reference (118,), waveform (S,) 16 kHz, info) of one tracked video."""
    import numpy as np

    from vlogger_cli.audio import load_audio
    from vlogger_cli.audio.load import SAMPLE_RATE
    from vlogger_cli.body.track_cache import cached_track
    from vlogger_cli.errors import InputError
    from vlogger_cli.media import probe_video
    from vlogger_cli.motion.generate import reference_vector
    from vlogger_cli.motion.axes import reference_of
    from vlogger_cli.motion.tracked import track_to_motion

    info = probe_video(video)
    if not info.has_audio:
        raise InputError(f"{video}: has no sound; motion training needs the speech — skipped")
    first = None if max_seconds is None else max(1, round(max_seconds * fps))  # the same capped tracks as video-data
    track, _reused = cached_track(video, fps, max_frames=first)  # resume points of a long video's tracking next to the cache
    ref = int(np.argmax(~track.lost))
    motion = track_to_motion(track, ref)
    waveform = load_audio(video)
    samples = int(round(track.num_frames / fps * SAMPLE_RATE))
    waveform = np.pad(waveform[:samples], (0, max(0, samples - len(waveform))))
    reference = reference_vector(reference_of(track.fit(ref)))
    meta = {"source": str(video), "lost_frames": len(track.lost_frames),
            "face_error": round(float(np.nanmean(track.relative_errors)), 5)}
    return motion.values, reference, waveform, meta


def prepare_videos(videos: list[Path], out: Path, *, fps: float = 25.0, max_seconds: float | None = None,
                   progress: Callable[[str, str], None] | None = None) -> dict:
    """Add `videos` (their first `max_seconds` only, when given) to the dataset in `out` (created if needed). Returns {"added", "skipped", "failed": [(video, error)]}."""
    from vlogger_cli.motion.dataset import read_index, write_clip, write_index

    out = Path(out)
    entries: list[dict] = []
    if (out / "index.json").is_file():
        index = read_index(out)
        if float(index["fps"]) != fps:
            raise VloggerError(f"{out} holds clips at {index['fps']} fps; prepare at that rate (--fps) or use another --out")
        entries = list(index["clips"])
    done = {e["id"] for e in entries}
    report = {"added": 0, "skipped": 0, "failed": []}
    for video in videos:
        video = Path(video)
        try:
            cid = clip_id(video)
            if cid in done:
                report["skipped"] += 1
                if progress:
                    progress(str(video), "already in the dataset")
                continue
            motion, reference, waveform, meta = prepare_video(video, fps, max_seconds)
        except (VloggerError, OSError) as err:
            report["failed"].append((str(video), str(err)))
            if progress:
                progress(str(video), f"failed: {err}")
            continue
        write_clip(out, cid, waveform, motion, reference, fps)
        entries.append({"id": cid, "split": _split(cid), "frames": int(len(motion)), **meta})
        if len(entries) > 1 and not any(e["split"] == "val" for e in entries):
            entries[0]["split"] = "val"  # training validates on at least one clip (as the synthetic corpus)
        done.add(cid)
        # the index last (after the clip's files): a stopped run leaves a consistent dataset
        write_index(out, fps, entries, source="tracked videos (vlogger train prepare-videos)")
        report["added"] += 1
        if progress:
            progress(str(video), f"{len(motion)} frames ({entries[-1]['split']})")
    return report
