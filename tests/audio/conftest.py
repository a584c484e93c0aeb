"""Audio test fixtures: synthetic tones, one real TTS recording per session, and an ffmpeg encoder."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from vlogger_cli.audio.tts import synthesize_speech

SPEECH_TEXT = "The quick brown fox jumps over the lazy dog while the sun shines over the quiet hills."


def make_tone(seconds: float, sample_rate: int, *, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    """(S,) float32 sine."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="session")
def tone():
    """tone(seconds, sample_rate, freq=440, amp=0.5) -> (S,) float32 sine."""
    return make_tone


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> Path:
    """A real espeak-ng recording (22,050 Hz mono WAV) made by our own TTS module."""
    return synthesize_speech(SPEECH_TEXT, tmp_path_factory.mktemp("tts") / "speech.wav", rate=170)


@pytest.fixture(scope="session")
def ffmpeg():
    """encode(src, dst, *codec_args): run the imageio-ffmpeg binary with an argument list."""
    import imageio_ffmpeg

    exe = imageio_ffmpeg.get_ffmpeg_exe()

    def encode(src: Path | None, dst: Path, *args: str) -> Path:
        inputs = ["-i", str(src)] if src is not None else []
        cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *inputs, *args, str(dst)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        return dst

    return encode
