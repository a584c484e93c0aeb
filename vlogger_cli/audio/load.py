"""Read any speech recording into the pipeline's waveform: float32, 16 kHz, mono, in [-1, 1].

Decoding is by content, never by extension: soundfile (libsndfile: WAV of any depth, FLAC, OGG,
MP3, AIFF, ...) is tried first because it is fast and exact; whatever it cannot open (m4a/aac,
video containers, exotic codecs) goes to the ffmpeg binary that imageio-ffmpeg ships.

Every problem with the file itself is one `InputError` line that names the file and the fix.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from vlogger_cli.errors import InputError, JobError
from vlogger_cli.io import atomic_path
from vlogger_cli.types import SAMPLE_RATE

SILENCE_PEAK_DBFS = -50.0
"""A file whose loudest sample is below this is treated as silent (-50 dBFS ~ 0.3 % of full scale).

Real speech peaks around -20..-1 dBFS; even a quiet phone recording stays above -40. Below -50 the
"speech" is indistinguishable from the noise floor of a 16-bit recording, and the motion stage
would animate nothing, so failing early with a clear message is kinder than a frozen video."""

FFMPEG_TIMEOUT_S = 300.0
"""Decoding 10 minutes of compressed audio takes a few seconds; this only stops a hung decoder."""

_DURATION_RE = re.compile(r"Duration:\s*(\d+):(\d\d):(\d\d(?:\.\d+)?)")


def load_audio(
    path: str | os.PathLike, *, min_seconds: float = 0.5, max_seconds: float = 600.0
) -> np.ndarray:
    """Decode `path` into a (S,) float32 waveform at `SAMPLE_RATE` Hz, mono, in [-1, 1].

    Channels are averaged. Resampling uses soxr at "HQ" quality (the same as librosa's default).
    Float files that exceed full scale are scaled down to a peak of 1.0, never clipped.
    Raises `InputError` for a missing/unreadable/corrupt/non-audio file, a file without an audio
    stream, a silent file (peak < `SILENCE_PEAK_DBFS`), or one shorter than `min_seconds` or
    longer than `max_seconds`.
    """
    if not 0 <= min_seconds < max_seconds:
        raise ValueError(f"need 0 <= min_seconds < max_seconds, got {min_seconds}, {max_seconds}")
    path = Path(path)
    _check_readable(path)

    try:
        waveform, sample_rate, header_seconds = _read_soundfile(path, max_seconds)
    except sf.SoundFileError:
        # Not a format libsndfile knows (or a lying extension it cannot see through): let ffmpeg
        # probe the content.
        waveform, sample_rate, header_seconds = _read_ffmpeg(path, max_seconds)

    duration = waveform.shape[0] / sample_rate
    if duration > max_seconds:
        length = max(duration, header_seconds or 0.0)
        # Decoding stopped just past the limit, so without a header length we only know a bound.
        said = f"{length:.1f} s long" if header_seconds else f"longer than {length:.1f} s"
        raise InputError(
            f"audio {path} is {said}, over the {max_seconds:g} s limit: split it into shorter "
            f"clips or raise max_audio_seconds in the manifest"
        )
    if duration < min_seconds:
        raise InputError(
            f"audio {path} is {duration:.2f} s long, shorter than the {min_seconds:g} s minimum: "
            f"give a longer speech recording"
        )
    if not np.all(np.isfinite(waveform)):
        raise InputError(f"audio {path} contains NaN or infinite samples: re-export or re-record it")

    if sample_rate != SAMPLE_RATE:
        waveform = _resample(waveform, sample_rate, SAMPLE_RATE)

    peak = float(np.max(np.abs(waveform))) if waveform.size else 0.0
    peak_db = 20.0 * np.log10(peak) if peak > 0 else -np.inf
    if peak_db < SILENCE_PEAK_DBFS:
        raise InputError(
            f"audio {path} is silent (peak {peak_db:.1f} dBFS, below {SILENCE_PEAK_DBFS:g} dBFS): "
            f"check that it is the right file and that the recording has sound"
        )
    if peak > 1.0:
        # Float WAVs may carry headroom above 1.0 and resampling can overshoot a full-scale file
        # slightly; scaling keeps the waveform's shape where clipping would distort it.
        waveform = waveform / peak
    return np.ascontiguousarray(waveform, dtype=np.float32)


def write_wav(path: str | os.PathLike, waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write `waveform` ((S,) mono or (S, C)) as 16-bit PCM WAV, atomically. Returns the path.

    Samples are clipped to [-1, 1] here rather than left to the float-to-int conversion, whose
    clipping is a per-handle libsndfile option (without it out-of-range floats wrap around to
    the opposite sign: a loud click instead of mild distortion).
    """
    data = np.asarray(waveform, dtype=np.float32)
    if data.ndim not in (1, 2) or data.shape[0] == 0:
        raise ValueError(f"write_wav needs a non-empty (S,) or (S, C) array, got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise ValueError("write_wav got NaN or infinite samples")
    path = Path(path)
    with atomic_path(path, suffix=".wav") as tmp:
        sf.write(tmp, np.clip(data, -1.0, 1.0), int(sample_rate), subtype="PCM_16", format="WAV")
    return path


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise InputError(f"audio {path} does not exist: check the path in the manifest")
    if not path.is_file():
        raise InputError(f"audio {path} is not a file: point the manifest at an audio file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(1)
    except OSError as err:
        raise InputError(f"audio {path} cannot be read ({err.strerror}): check its permissions") from err
    if not head:
        raise InputError(f"audio {path} is an empty file: re-export or re-record it")


def _read_soundfile(path: Path, max_seconds: float) -> tuple[np.ndarray, int, float | None]:
    """Decode with libsndfile. Returns (mono waveform at the file's rate, rate, header length in s)."""
    info = sf.info(str(path))
    header_seconds = info.frames / info.samplerate if info.frames > 0 else None
    # Read one second past the limit at most: enough to know it is too long without decoding
    # (and holding in memory) a whole multi-hour file.
    limit = int((max_seconds + 1.0) * info.samplerate)
    data, sample_rate = sf.read(str(path), frames=limit, dtype="float32", always_2d=True)
    return data.mean(axis=1), int(sample_rate), header_seconds


def _read_ffmpeg(path: Path, max_seconds: float) -> tuple[np.ndarray, int, float | None]:
    """Decode the first audio stream with ffmpeg to a 16 kHz float32 WAV on stdout.

    Channels are kept and averaged here rather than with ffmpeg's `-ac 1`, whose downmix matrix
    is not an average (stereo comes out as (L + R) / sqrt 2): both decoders must give the same
    waveform for the same file. The WAV header (rather than raw f32le) carries the channel count.
    """
    exe = _ffmpeg_exe()
    cmd = [
        exe, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info",
        # "file:" stops ffmpeg reading a name like "concat:..." or "-x" as a protocol or option.
        "-i", f"file:{path.resolve()}",
        "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-t", f"{max_seconds + 1.0:.3f}",  # same bound as the soundfile path
        "-af", f"aresample={SAMPLE_RATE}:resampler=soxr",  # soxr HQ, as on the soundfile path
        "-f", "wav", "-acodec", "pcm_f32le", "pipe:1",
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as err:
        raise InputError(
            f"audio {path} took over {FFMPEG_TIMEOUT_S:g} s to decode: convert it to WAV or FLAC first"
        ) from err
    log = proc.stderr.decode("utf-8", errors="replace")
    if proc.returncode != 0:
        if "matches no streams" in log or "does not contain any stream" in log:
            raise InputError(
                f"audio {path} has no audio stream: give a file that contains the speech audio"
            )
        reason = _last_line(log) or f"ffmpeg exit code {proc.returncode}"
        raise InputError(
            f"audio {path} is not a readable audio file ({reason}): check that it is not "
            f"corrupt or convert it to WAV/FLAC/MP3"
        )
    match = _DURATION_RE.search(log)
    header_seconds = None
    if match:
        hours, minutes, seconds = match.groups()
        header_seconds = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    # The header's sizes are placeholders (ffmpeg cannot seek back in a pipe); libsndfile reads
    # up to the end of the data instead.
    data, sample_rate = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    return data.mean(axis=1), int(sample_rate), header_seconds


def _ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg  # imported late: only files libsndfile cannot read need it
    except ImportError as err:
        raise JobError(
            "ffmpeg is needed to decode this audio format: pip install imageio-ffmpeg"
        ) from err
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as err:
        raise JobError(
            f"imageio-ffmpeg found no ffmpeg binary ({err}): reinstall imageio-ffmpeg"
        ) from err


def _resample(waveform: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    import soxr  # librosa's own backend; imported directly to avoid importing librosa here

    return soxr.resample(waveform, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def _last_line(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return lines[-1] if lines else ""
