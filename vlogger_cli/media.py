"""Ground floor: reading media files with imageio-ffmpeg's bundled ffmpeg (there is no system ffmpeg,
nor ffprobe): `probe_video` (stream facts, exact frame counts and durations by decoding), `read_frames`
(streamed RGB frames, optionally resampled to a constant rate), `extract_audio`.

Used by the tracker, edit, data preparation and eval; writing MP4s is export/mp4.py's. Every ffmpeg call
takes an argument list, never a shell string, and absolute paths (ffmpeg would read `a:b.mp4` as
protocol `a`). Imports nothing from vlogger_cli but errors.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import imageio_ffmpeg
import numpy as np

from vlogger_cli.errors import InputError
from vlogger_cli.io import atomic_path

@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` measured. Counts and durations come from decoding, not from the header."""

    width: int  # decoded frame width in pixels (rotation metadata applied, as `read_frames` yields)
    height: int  # decoded frame height in pixels
    fps: float  # frame rate the container declares (falls back to num_frames / duration)
    num_frames: int  # frames decoded
    duration: float  # seconds from the first frame's start to the last frame's end
    video_codec: str  # ffmpeg's codec name: "h264", "hevc", ...
    pix_fmt: str  # "yuv420p", ...
    has_audio: bool
    audio_codec: str | None  # "aac", ... ; None without audio
    audio_duration: float | None  # seconds of decoded audio samples; None without audio
    audio_sample_rate: int | None = None  # Hz; None without audio
    max_fps: float | None = None  # 1 / the shortest frame duration (the rate that drops no frame)
    variable_rate: bool = False  # frame durations differ by more than 10 % (VFR: phone and screen recordings)

    @property
    def constant_rate(self) -> float:
        """The rate to resample to: the declared rate, or for variable-rate video the highest
        instantaneous rate (rounded to 1/1000 fps), so that no frame is dropped."""
        if self.variable_rate and self.max_fps:
            return round(self.max_fps, 3)
        return self.fps


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


# ---------------------------------------------------------------------------------------------- read


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Measure a video file: stream facts from ffmpeg's header, counts and durations by decoding.

    Decoding every frame costs about what playing it would (0.3 s for 7 s of 700x700 on one core),
    and is what makes `num_frames` and `audio_duration` exact. InputError for a missing, unreadable
    or video-less file.
    """
    path = existing_file(path)
    streams = read_header(path)
    video = first_stream(streams, "Video")
    if video is None:
        raise InputError(f"{path}: has no video stream; pass a video file (MP4, MOV, ...)")
    audio = first_stream(streams, "Audio")

    cmd = ["-i", abs_path(path), "-map", f"0:{video.index}"]
    if audio is not None:
        cmd += ["-map", f"0:{audio.index}"]
    # framecrc prints one line per decoded frame: "stream, dts, pts, duration, size, crc", times
    # in the "#tb" unit. passthrough: every decoded frame, none duplicated or dropped.
    def decode_error(msg: str) -> InputError:
        if "received no packets" in msg:  # a stream is declared but holds no (decodable) frame
            return InputError(f"{path}: its video stream has no frames; pass a video with at least one frame")
        return InputError(f"{path}: could not be decoded ({msg}); re-export it as MP4 (H.264) and try again")

    out = run_ffmpeg(cmd + ["-fps_mode", "passthrough", "-f", "framecrc", "-"], error=decode_error)
    timing = _parse_framecrc(out)
    if 0 not in timing.count:
        raise InputError(f"{path}: its video stream has no frames; pass a video with at least one frame")
    width, height = timing.dimensions or video.size
    num_frames, duration = timing.count[0], timing.duration(0)
    fps = video.fps or (num_frames / duration if duration > 0 else 0.0)
    durations = timing.frame_durations.get(0, [])
    # the last frame's duration is often the muxer's guess: judge by the others
    steps = [d for d in (durations[:-1] if len(durations) > 1 else durations) if d > 0]
    max_fps = float(1 / (min(steps) * timing.time_base[0])) if steps else None
    variable = len(steps) > 1 and max(steps) > 1.1 * min(steps)
    return VideoInfo(
        width=width, height=height, fps=fps, num_frames=num_frames, duration=duration,
        video_codec=video.codec, pix_fmt=video.pix_fmt,
        has_audio=audio is not None,
        audio_codec=audio.codec if audio else None,
        audio_duration=timing.duration(1) if audio else None,
        audio_sample_rate=timing.sample_rate if audio else None,
        max_fps=max_fps, variable_rate=variable,
    )


def probe_moving_video(path: str | os.PathLike) -> VideoInfo:
    """`probe_video` where motion is expected (an edit, training data): a still image, or a file holding a
    single frame, is an InputError naming it (ffmpeg reads a PNG or JPEG as a one-frame video whatever its name)."""
    info = probe_video(path)
    if info.num_frames < 2:
        image = info.video_codec in ("png", "mjpeg", "bmp", "webp", "tiff", "gif", "jpeg2000")
        raise InputError(f"{path}: {'is a still image' if image else 'holds a single frame'} "
                         f"({info.video_codec}, {info.width}x{info.height}), not a video; pass a video file "
                         "(MP4, MOV, ...) with at least two frames")
    return info


def read_frames(path: str | os.PathLike, *, fps: float | None = None) -> Iterator[np.ndarray]:
    """Yield the frames of a video as (H, W, 3) uint8 RGB arrays, streaming.

    fps: resample to this constant rate (ffmpeg's `fps` filter: frames are dropped or repeated,
         each output frame is the input frame shown at its time); None keeps every frame.
    """
    path = existing_file(path)
    output_params = ["-vf", f"fps={Fraction(fps).limit_denominator(1_000_000)}"] if fps else []
    frames = imageio_ffmpeg.read_frames(abs_path(path), output_params=output_params)
    try:
        try:
            meta = next(frames)
        except (OSError, RuntimeError, StopIteration) as err:
            raise InputError(f"{path}: could not be read as video ({last_line(str(err))}); "
                             "pass an MP4, MOV or other video file") from None
        width, height = meta["size"]
        for buffer in frames:
            # bytearray: a writable copy, so callers may draw on the frames.
            yield np.frombuffer(bytearray(buffer), np.uint8).reshape(height, width, 3)
    finally:
        frames.close()  # stops ffmpeg when the caller stops early


def extract_audio(video_path: str | os.PathLike, out_wav: str | os.PathLike) -> Path | None:
    """Write the first audio stream of a video to a 16-bit WAV (its own rate and channels), atomically.

    Returns `out_wav`, or None when the video has no audio (nothing is written).
    """
    video_path, out_wav = existing_file(video_path), Path(out_wav)
    audio = first_stream(read_header(video_path), "Audio")
    if audio is None:
        return None
    with atomic_path(out_wav) as tmp:
        run_ffmpeg(["-y", "-i", abs_path(video_path), "-map", f"0:{audio.index}", "-vn",
                     "-c:a", "pcm_s16le", "-f", "wav", abs_path(tmp)],
                    error=lambda msg: InputError(f"{video_path}: its audio could not be decoded ({msg}); "
                                                 "re-export the video with AAC audio"))
    return out_wav


# ---------------------------------------------------------------------------------------------- ffmpeg


@dataclass(frozen=True)
class _Stream:
    index: int  # N in "Stream #0:N"
    kind: str  # "Video", "Audio", ...
    codec: str
    pix_fmt: str
    size: tuple[int, int]
    fps: float


_STREAM_LINE = re.compile(r"^\s*Stream #0:(\d+)\S*: (\w+): (.*)$", re.MULTILINE)


def read_header(path: Path) -> list[_Stream]:
    """The streams ffmpeg lists for `path` (`ffmpeg -i path` with no output: the header only)."""
    text = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", abs_path(path)],
                          capture_output=True, text=True, errors="replace").stderr
    if "Input #0" not in text:
        raise InputError(f"{path}: not a readable media file ({last_line(text)}); "
                         "check the file is complete and in a format ffmpeg reads")
    streams = []
    for match in _STREAM_LINE.finditer(text):
        index, kind, rest = int(match.group(1)), match.group(2), match.group(3)
        if "(attached pic)" in rest:  # cover art in a music file is not a video
            continue
        fields = _split_top_level(rest)
        size = next((tuple(map(int, m.groups())) for f in fields if (m := re.match(r"(\d+)x(\d+)", f))), (0, 0))
        fps = next((_ffmpeg_number(f[:-4]) for f in fields if f.endswith(" fps")), None)
        if fps is None:
            fps = next((_ffmpeg_number(f[:-4]) for f in fields if f.endswith(" tbr")), 0.0)
        pix_fmt = fields[1].split("(")[0].strip() if kind == "Video" and len(fields) > 1 else ""
        streams.append(_Stream(index, kind, fields[0].split()[0], pix_fmt, size, fps))
    return streams


def first_stream(streams: list[_Stream], kind: str) -> _Stream | None:
    return next((s for s in streams if s.kind == kind), None)


@dataclass
class _Timing:
    count: dict[int, int]
    start: dict[int, int]
    end: dict[int, int]
    time_base: dict[int, Fraction]
    dimensions: tuple[int, int] | None
    sample_rate: int | None
    frame_durations: dict[int, list[int]] = field(default_factory=dict)  # per video frame (stream 0)

    def duration(self, stream: int) -> float:
        if stream not in self.count:
            return 0.0
        return float((self.end[stream] - self.start[stream]) * self.time_base[stream])


def _parse_framecrc(text: str) -> _Timing:
    timing = _Timing({}, {}, {}, {}, None, None)
    for line in text.splitlines():
        if line.startswith("#tb "):
            stream, value = line[4:].split(":", 1)
            timing.time_base[int(stream)] = Fraction(value.strip())
        elif line.startswith("#dimensions 0:"):
            timing.dimensions = tuple(int(v) for v in line.split(":", 1)[1].strip().split("x"))
        elif line.startswith("#sample_rate 1:"):
            timing.sample_rate = int(line.split(":", 1)[1])
        elif line and not line.startswith("#"):
            stream, _dts, pts, duration = (int(v) for v in line.split(",")[:4])
            timing.count[stream] = timing.count.get(stream, 0) + 1
            timing.start[stream] = min(pts, timing.start.get(stream, pts))
            timing.end[stream] = max(pts + duration, timing.end.get(stream, pts + duration))
            if stream == 0:
                timing.frame_durations.setdefault(0, []).append(duration)
    return timing


def run_ffmpeg(args: list[str], *, error) -> str:
    """Run ffmpeg with `args`; return its stdout. On failure raise `error(last line of its log)`."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", *args],
                          capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        raise error(last_line(proc.stderr) or f"exit status {proc.returncode}")
    return proc.stdout


def _split_top_level(text: str) -> list[str]:
    """Split ffmpeg's stream description on commas outside parentheses: "yuv420p(tv, bt709)" is one."""
    fields, depth, current = [], 0, ""
    for char in text:
        depth += (char in "([") - (char in ")]")
        if char == "," and depth == 0:
            fields.append(current.strip())
            current = ""
        else:
            current += char
    return [*fields, current.strip()]


def _ffmpeg_number(text: str) -> float:
    text = text.strip()
    return float(text[:-1]) * 1000 if text.endswith("k") else float(text)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found; check the path")
    return path


def abs_path(path: Path) -> str:
    return os.fspath(Path(path).absolute())
