"""MP4 export with imageio-ffmpeg's bundled ffmpeg (reading videos is `vlogger_cli/media.py`'s).

Writing streams: frames go one at a time into moviepy's `FFMPEG_VideoWriter` (an ffmpeg process fed
raw RGB on stdin), so a long video assembled window by window is never held in memory.

With audio, writing takes two passes: the frames stream into a video-only file, then a second ffmpeg
call copies that video stream (no re-encode) next to the speech, padded with silence or trimmed to
exactly `num_frames / fps`. The frame count of a generator is only known at its end, and ffmpeg's
one-pass alternative (`-af apad -shortest`) was measured off by more than a frame (1.2 frames at
60 fps; once the whole audio tail when the audio was longer). The second pass costs about what
`+faststart` costs anyway: rewriting the file once.

Every ffmpeg call takes an argument list, never a shell string, and absolute paths (ffmpeg would read
`a:b.mp4` as protocol `a`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from vlogger_cli.errors import InputError
from vlogger_cli.io import TMP_MARKER, atomic_path
from vlogger_cli.media import abs_path, existing_file, first_stream, last_line, read_header, run_ffmpeg

AUDIO_CODEC = "aac"
AUDIO_SAMPLE_RATE = 48_000
"""Output audio is resampled to 48 kHz, the video standard: every player takes it, and its AAC
packets (1024 samples, 21 ms) are finer than one video frame."""
AUDIO_BITRATE = "192k"

# Colour: RGB -> YUV with the BT.709 matrix, limited range, and the stream says so. An untagged
# stream leaves the matrix to the player's guess (BT.601 for SD, BT.709 for HD), which shifts skin
# tones. ffmpeg takes the matrix and range from the encoder options; primaries and transfer only
# stick when set on the frames (`setparams`).
_COLOUR_PARAMS = ["-colorspace", "bt709", "-color_range", "tv",
                  "-vf", "setparams=color_primaries=bt709:color_trc=bt709"]


# ---------------------------------------------------------------------------------------------- write


def write_mp4(
    frames: Iterable[np.ndarray],
    fps: float,
    out_path: str | os.PathLike,
    *,
    audio_path: str | os.PathLike | None = None,
    crf: int = 18,
    preset: str = "medium",
) -> Path:
    """Encode (H, W, 3) uint8 RGB frames to an H.264 / AAC MP4 at `out_path`, atomically.

    frames:     any iterable, consumed once and streamed; every frame must match the first's shape.
    fps:        frames per second (moviepy's writer passes it to ffmpeg rounded to 0.01).
    audio_path: speech in any format ffmpeg reads; re-encoded to AAC 48 kHz, padded with silence or
                trimmed so that it lasts exactly as long as the video.
    crf:        libx264 constant rate factor (0 lossless ... 51 worst; 18 is visually lossless).

    yuv420p needs even sizes: an odd width or height gets one more column / row, a copy of the last
    one (no scaling, which would blur every pixel, and no black line). Returns `out_path`.
    """
    out_path = Path(out_path)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"no frames to write to {out_path}")
    _check_frame(first, None, 0)
    if audio_path is not None:
        audio_path = existing_file(audio_path)
        if first_stream(read_header(audio_path), "Audio") is None:
            raise InputError(f"{audio_path}: has no audio stream; pass a speech file (WAV, MP3, ...)")

    frames = itertools.chain([first], frames)
    with atomic_path(out_path) as tmp:
        if audio_path is None:
            _encode_video(frames, fps, tmp, crf=crf, preset=preset, faststart=True)
        else:
            with _scratch_file(out_path, ".video.mp4") as video_only:
                num_frames, written_fps = _encode_video(frames, fps, video_only, crf=crf, preset=preset,
                                                        faststart=False)
                _mux_audio(video_only, audio_path, num_frames / written_fps, tmp)
    return out_path


def _encode_video(frames: Iterator[np.ndarray], fps: float, path: Path, *, crf: int, preset: str,
                  faststart: bool) -> tuple[int, float]:
    """Stream `frames` into a video-only H.264 file; return (frames written, fps as ffmpeg got it)."""
    from moviepy.video.io.ffmpeg_writer import FFMPEG_VideoWriter  # slow import, only when writing

    first = next(frames)
    height, width = first.shape[:2]
    params = ["-crf", str(crf), "-pix_fmt", "yuv420p", *_COLOUR_PARAMS]
    if faststart:
        params += ["-movflags", "+faststart"]  # the index first, so a browser plays while downloading
    # moviepy's writer does not check ffmpeg's exit status and closes its stderr pipe before
    # waiting, so ffmpeg's log goes to a file we read on failure (text mode: moviepy reads it as str).
    # It also appends `-pix_fmt yuva420p`, which libx264 refuses; ffmpeg falls back to yuv420p.
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as log:
        writer = FFMPEG_VideoWriter(
            str(path), (width + width % 2, height + height % 2), fps,
            codec="libx264", preset=preset, logfile=log, ffmpeg_params=params,
        )
        proc = writer.proc
        num_frames = 0
        try:
            for frame in itertools.chain([first], frames):
                _check_frame(frame, first.shape, num_frames)
                writer.write_frame(_pad_to_even(frame))
                num_frames += 1
        except BaseException:
            proc.kill()  # no point finishing a file that is about to be deleted
            with contextlib.suppress(OSError):
                writer.close()
            raise
        writer.close()
        if proc.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"ffmpeg failed writing {path} (exit {proc.returncode}): {last_line(log.read())}")
    return num_frames, float("%.02f" % fps)  # moviepy passes `-r` with two decimals


def _mux_audio(video_only: Path, audio_path: Path, duration: float, out: Path) -> None:
    # apad makes the audio endless, `-t` cuts both streams at the video's end: exact to the sample
    # whichever of the two is longer. The video stream is copied, not re-encoded.
    run_ffmpeg(
        ["-y", "-i", abs_path(video_only), "-i", abs_path(audio_path),
         "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
         "-c:a", AUDIO_CODEC, "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_SAMPLE_RATE), "-af", "apad",
         "-t", f"{duration:.6f}", "-movflags", "+faststart", abs_path(out)],
        error=lambda msg: InputError(f"{audio_path}: could not add this audio to the video ({msg}); "
                                     "convert it to WAV and try again"),
    )


def _check_frame(frame: np.ndarray, shape: tuple[int, ...] | None, index: int) -> None:
    """A frame that is not (H, W, 3) uint8 like the first one is a bug upstream: ValueError."""
    ok = isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    if ok and shape is not None:
        ok = frame.shape == shape
    if not ok:
        got = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
        want = f"{shape} uint8 like frame 0" if shape is not None else "(H, W, 3) uint8"
        raise ValueError(f"frame {index} is {got}; expected {want}")


def _pad_to_even(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return frame
    return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


@contextlib.contextmanager
def _scratch_file(target: Path, suffix: str) -> Iterator[Path]:
    """A temporary file next to `target` (same disk, recognisably ours), removed in every case."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TMP_MARKER + suffix)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
