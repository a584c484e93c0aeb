"""Tracks cached per video: tracking is the costly part of an edit (~0.35 s per frame), and the same clip is
often edited several ways or also prepared as training data. `<cache>/tracks/<key>/` holds a finished track,
keyed by the video's content, the rate and TRACK_CACHE_VERSION (bump it when body/track.py's method changes
its results). Used by `vlogger edit` (pipeline/edit.py) and `vlogger train prepare-videos` (motion/prepare.py).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

TRACK_CACHE_VERSION = 1


def track_cache(video, fps: float, max_frames: int | None = None) -> Path:
    """The cache entry of the whole video, or of its first `max_frames` frames (an entry of its own)."""
    from vlogger_cli.io import file_sha256
    from vlogger_cli.paths import cache_dir

    first = f"-first{int(max_frames)}" if max_frames is not None else ""
    return cache_dir() / "tracks" / f"{file_sha256(video)[:20]}-{fps:.3f}fps{first}-v{TRACK_CACHE_VERSION}"


def _load(folder: Path, log):
    from vlogger_cli.body.track import TRACK_JSON, load_track

    if (folder / TRACK_JSON).is_file():
        try:
            return load_track(folder)
        except Exception as err:  # noqa: BLE001 - a damaged cache entry is re-made, never trusted
            if log:
                log.warning("track: cached track in %s unreadable (%s); tracking again", folder, err)
    return None


def cached_track(video, fps: float, *, max_frames: int | None = None, checkpoint_dir: Path | None = None,
                 log: logging.Logger | None = None):
    """(the video's track, whether it came from the cache). A missing or unreadable cache entry is tracked
    again (with resume points in `checkpoint_dir`, default `<cache entry>.partial`, removed once done) and
    stored; a cache that cannot be written only costs the next use of this video its time. max_frames: only
    the first frames are wanted; a cached track of the whole video serves them too (tracking is causal up
    to the final smoothing, which only looks a few frames ahead)."""
    from vlogger_cli.body.track import save_track, track_video

    if max_frames is not None:
        whole = _load(track_cache(video, fps), log)
        if whole is not None:
            return whole.head(max_frames), True
    folder = track_cache(video, fps, max_frames)
    if checkpoint_dir is None:
        checkpoint_dir = folder.with_name(folder.name + ".partial")
    track = _load(folder, log)
    if track is not None:
        return track, True
    track = track_video(video, fps=fps, max_frames=max_frames, checkpoint_dir=checkpoint_dir)
    if max_frames is not None and track.num_frames < max_frames:
        folder = track_cache(video, fps)  # shorter than the cap: the whole video, for every later use
    try:
        save_track(folder, track)
    except OSError as err:
        if log:
            log.warning("track: not cached (%s)", err)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)  # the finished track replaces its resume points
    return track, False
