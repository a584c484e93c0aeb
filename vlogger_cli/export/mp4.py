"""MP4 export and inspection with imageio-ffmpeg's bundled ffmpeg (there is no system ffmpeg, nor ffprobe).

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
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import imageio_ffmpeg
import numpy as np

from vlogger_cli.errors import InputError
from vlogger_cli.io import TMP_MARKER, atomic_path

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
        audio_path = _existing_file(audio_path)
        if _first_stream(_read_header(audio_path), "Audio") is None:
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
            raise RuntimeError(f"ffmpeg failed writing {path} (exit {proc.returncode}): {_last_line(log.read())}")
    return num_frames, float("%.02f" % fps)  # moviepy passes `-r` with two decimals


def _mux_audio(video_only: Path, audio_path: Path, duration: float, out: Path) -> None:
    # apad makes the audio endless, `-t` cuts both streams at the video's end: exact to the sample
    # whichever of the two is longer. The video stream is copied, not re-encoded.
    _run_ffmpeg(
        ["-y", "-i", _abs(video_only), "-i", _abs(audio_path),
         "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
         "-c:a", AUDIO_CODEC, "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_SAMPLE_RATE), "-af", "apad",
         "-t", f"{duration:.6f}", "-movflags", "+faststart", _abs(out)],
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


# ---------------------------------------------------------------------------------------------- read


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Measure a video file: stream facts from ffmpeg's header, counts and durations by decoding.

    Decoding every frame costs about what playing it would (0.3 s for 7 s of 700x700 on one core),
    and is what makes `num_frames` and `audio_duration` exact. InputError for a missing, unreadable
    or video-less file.
    """
    path = _existing_file(path)
    streams = _read_header(path)
    video = _first_stream(streams, "Video")
    if video is None:
        raise InputError(f"{path}: has no video stream; pass a video file (MP4, MOV, ...)")
    audio = _first_stream(streams, "Audio")

    cmd = ["-i", _abs(path), "-map", f"0:{video.index}"]
    if audio is not None:
        cmd += ["-map", f"0:{audio.index}"]
    # framecrc prints one line per decoded frame: "stream, dts, pts, duration, size, crc", times
    # in the "#tb" unit. passthrough: every decoded frame, none duplicated or dropped.
    def decode_error(msg: str) -> InputError:
        if "received no packets" in msg:  # a stream is declared but holds no (decodable) frame
            return InputError(f"{path}: its video stream has no frames; pass a video with at least one frame")
        return InputError(f"{path}: could not be decoded ({msg}); re-export it as MP4 (H.264) and try again")

    out = _run_ffmpeg(cmd + ["-fps_mode", "passthrough", "-f", "framecrc", "-"], error=decode_error)
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


def read_frames(path: str | os.PathLike, *, fps: float | None = None) -> Iterator[np.ndarray]:
    """Yield the frames of a video as (H, W, 3) uint8 RGB arrays, streaming.

    fps: resample to this constant rate (ffmpeg's `fps` filter: frames are dropped or repeated,
         each output frame is the input frame shown at its time); None keeps every frame.
    """
    path = _existing_file(path)
    output_params = ["-vf", f"fps={Fraction(fps).limit_denominator(1_000_000)}"] if fps else []
    frames = imageio_ffmpeg.read_frames(_abs(path), output_params=output_params)
    try:
        try:
            meta = next(frames)
        except (OSError, RuntimeError, StopIteration) as err:
            raise InputError(f"{path}: could not be read as video ({_last_line(str(err))}); "
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
    video_path, out_wav = _existing_file(video_path), Path(out_wav)
    audio = _first_stream(_read_header(video_path), "Audio")
    if audio is None:
        return None
    with atomic_path(out_wav) as tmp:
        _run_ffmpeg(["-y", "-i", _abs(video_path), "-map", f"0:{audio.index}", "-vn",
                     "-c:a", "pcm_s16le", "-f", "wav", _abs(tmp)],
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


def _read_header(path: Path) -> list[_Stream]:
    """The streams ffmpeg lists for `path` (`ffmpeg -i path` with no output: the header only)."""
    text = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", _abs(path)],
                          capture_output=True, text=True, errors="replace").stderr
    if "Input #0" not in text:
        raise InputError(f"{path}: not a readable media file ({_last_line(text)}); "
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


def _first_stream(streams: list[_Stream], kind: str) -> _Stream | None:
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


def _run_ffmpeg(args: list[str], *, error) -> str:
    """Run ffmpeg with `args`; return its stdout. On failure raise `error(last line of its log)`."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", *args],
                          capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        raise error(_last_line(proc.stderr) or f"exit status {proc.returncode}")
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


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found; check the path")
    return path


def _abs(path: Path) -> str:
    return os.fspath(Path(path).absolute())
