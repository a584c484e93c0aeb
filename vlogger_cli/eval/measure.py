"""Measure one talking video: every metric group of `vlogger eval` from one pass over its frames.

The frames are read once (streamed; a variable-frame-rate file at the constant rate that drops no
frame). Per frame: the FaceMesh points (`faces.FaceTracker`), the dlib face descriptor, the sharpness of
the sampled face crops, and, with a reference video, the comparison with the reference's frame. Then
the groups that need the whole series: identity, lip sync (against the speech), motion.

The speech is `audio` when given (e.g. a render's `audio.wav`), else the video's own audio track.
What cannot be measured is n/a with a reason (no portrait, no audio, cpbd absent); a video in which no
frame shows a face is an `InputError` naming the file.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from vlogger_cli.errors import InputError
from vlogger_cli.eval import identity, lip_sync, motion
from vlogger_cli.eval.faces import FaceTracker
from vlogger_cli.eval.file_facts import file_facts
from vlogger_cli.eval.reference import ReferenceMeter
from vlogger_cli.eval.sharpness import SharpnessMeter, sample_frames

FORMAT_VERSION = 1
MAX_AUDIO_S = 3600.0


def evaluate_video(video: str | Path, *, portrait: str | Path | None = None, audio: str | Path | None = None,
                   reference_video: str | Path | None = None, controls: tuple = (),
                   identity_frames: int | None = None, progress: bool = False) -> dict:
    """All metric groups of `video` as one JSON-ready dict (see report.METRICS), with per-frame series
    under "per_frame". `controls`: paths of unrelated speech recordings for the lip-sync specificity.
    `identity_frames`: measure identity on this many frames evenly spread (the descriptor costs ~0.08 s a
    frame) instead of on every frame."""
    from vlogger_cli.media import probe_video, read_frames

    video = Path(video)
    info = probe_video(video)
    fps = info.constant_rate
    embedder = identity.FaceEmbedder()
    portrait_descriptor = _portrait_descriptor(Path(portrait), embedder) if portrait is not None else None

    tracker, sharpness = FaceTracker(), SharpnessMeter(info.num_frames)
    identity_at = sample_frames(info.num_frames, identity_frames) if identity_frames else range(info.num_frames)
    reference = ReferenceMeter() if reference_video is not None else None
    ref_frames = read_frames(reference_video, fps=fps) if reference_video is not None else None
    ref_tracker = FaceTracker()
    points, descriptors = [], []
    frames = read_frames(video, fps=fps if info.variable_rate else None)
    for index, frame in enumerate(_progress(frames, info.num_frames, video.name, progress)):
        face = tracker(frame)
        points.append(face)
        found = bool(np.isfinite(face).all())
        measured = found and index in identity_at
        descriptors.append(embedder(frame, face) if measured else np.full(128, np.nan, np.float32))
        sharpness.add(index, frame, face)
        if ref_frames is not None:
            ref_frame = next(ref_frames, None)
            if ref_frame is None:
                ref_frames = None  # the reference is shorter: compare the frames both have
            else:
                reference.add(frame, face, ref_frame, ref_tracker(ref_frame))
    points = np.stack(points)
    if not np.isfinite(points).all(axis=(1, 2)).any():
        raise InputError(f"{video}: no face found in any of its {len(points)} frames; "
                         "vlogger eval measures videos of a talking face")

    result: dict = {"format_version": FORMAT_VERSION, "video": str(video),
                    "portrait": str(portrait) if portrait is not None else None,
                    "audio": str(audio) if audio is not None else ("the video's audio track" if info.has_audio else None),
                    "reference_video": str(reference_video) if reference_video is not None else None,
                    "file": file_facts(info)}
    per_frame: dict = {}
    result["identity"], series = identity.identity_metrics(np.stack(descriptors), portrait_descriptor)
    per_frame.update(series)
    result["sharpness"] = sharpness.metrics()
    bands, band_hz, reason = _speech(video, audio, info, fps, len(points))
    mouth = lip_sync.mouth_opening(points)
    control_bands = [(Path(c).name, _control_bands(Path(c), fps)) for c in controls]
    result["lip_sync"], series = lip_sync.lip_sync_metrics(mouth, bands, fps, control_bands, no_audio_reason=reason)
    per_frame.update(series)
    if bands is not None:
        per_frame["loudness"] = lip_sync.loudness(bands, band_hz)
    result["motion"], series = motion.motion_metrics(points, fps)
    per_frame.update(series)
    if reference is not None:
        result["reference"], series = reference.metrics()
        per_frame.update(series)
    result["per_frame"] = per_frame
    return result


def _portrait_descriptor(path: Path, embedder: identity.FaceEmbedder) -> np.ndarray:
    from vlogger_cli.body.landmarks import detect_face
    from vlogger_cli.body.portrait import load_portrait

    image = load_portrait(path)
    face = detect_face(image)
    if face is None:
        raise InputError(f"{path}: no face found in the portrait; pass a photo that shows the face")
    return embedder(image, face)


def _load_audio(path: Path) -> np.ndarray:
    from vlogger_cli.audio.load import load_audio

    return load_audio(path, max_seconds=MAX_AUDIO_S)


def _control_bands(path: Path, fps: float) -> np.ndarray:
    from vlogger_cli.audio.features import frame_count

    waveform = _load_audio(path)
    return lip_sync.speech_bands(waveform, fps, frame_count(len(waveform), fps))[0]


def _speech(video: Path, audio: str | Path | None, info, fps: float, num_frames: int):
    """(bands, band_hz, None) of the speech to judge the lips against, or (None, None, reason)."""
    from vlogger_cli.media import extract_audio

    try:
        if audio is not None:
            waveform = _load_audio(Path(audio))
        elif not info.has_audio:
            return None, None, "the video has no audio track: pass --audio SPEECH"
        else:
            with tempfile.TemporaryDirectory(prefix="vlogger-eval-") as tmp:
                waveform = _load_audio(extract_audio(video, Path(tmp) / "audio.wav"))
    except InputError as err:  # silent or unreadable speech: the other groups still stand
        return None, None, str(err)
    bands, band_hz = lip_sync.speech_bands(waveform, fps, num_frames)
    return bands, band_hz, None


def _progress(frames, total: int, name: str, enabled: bool):
    if not enabled:
        return frames
    from tqdm import tqdm

    return tqdm(frames, total=total, desc=f"eval {name}", unit="frame", leave=False, file=sys.stderr)
