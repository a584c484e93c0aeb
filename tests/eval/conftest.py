"""Constructed talking videos with known answers, made from the repo's own pieces (no shared media needed).

The astronaut photo (scikit-image) speaks a sentence of espeak-ng speech: in every frame her lower lip and
jaw are moved down (an image warp, the mouth's inside darkened) by an amount that follows the speech's
loudness in that frame. FaceMesh reads that opening back (checked: 7 px closed, 21 px at the widest), so the
video's lips are in sync with its audio by construction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FPS = 25.0
TEXT = "Hello there, I am talking to you about lip sync today."
MAX_OPENING_PX = 16.0


@pytest.fixture(scope="session")
def speech(tmp_path_factory):
    """(wav path, 16 kHz waveform) of a short espeak-ng sentence."""
    from vlogger_cli.audio.load import load_audio
    from vlogger_cli.audio.tts import synthesize_speech

    wav = synthesize_speech(TEXT, tmp_path_factory.mktemp("speech") / "speech.wav", rate=190)
    return wav, load_audio(wav)


@pytest.fixture(scope="session")
def face_image():
    """(320, 320, 3) uint8 head-and-shoulders crop of the astronaut and its FaceMesh points."""
    import skimage.data

    from vlogger_cli.body.landmarks import detect_face

    image = np.ascontiguousarray(skimage.data.astronaut()[0:320, 80:400])
    return image, detect_face(image)


def open_mouth(image: np.ndarray, points: np.ndarray, opening_px: float) -> np.ndarray:
    """`image` with the lower lip and jaw moved down by `opening_px` pixels and the gap darkened."""
    import cv2

    centre = (points[13, :2] + points[14, :2]) / 2
    width = float(np.linalg.norm(points[61, :2] - points[291, :2]))
    chin = float(points[152, 1])
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    across = np.clip(1 - ((xx - centre[0]) / (0.75 * width)) ** 2, 0, 1) ** 1.5
    down = np.clip(1 - (yy - centre[1]) / ((chin - centre[1]) * 1.6), 0, 1)
    shift = opening_px * across * np.where(yy > centre[1], down, 0)
    out = cv2.remap(image, xx, (yy - shift).astype(np.float32), cv2.INTER_LINEAR)
    cavity = (yy > centre[1]) & (yy < centre[1] + 0.9 * shift) & (np.abs(xx - centre[0]) < 0.45 * width)
    out[cavity] = (out[cavity] * 0.15 + np.array([40, 10, 15]) * 0.85).astype(np.uint8)
    return out


@pytest.fixture(scope="session")
def talking_frames(face_image):
    """talking_frames(waveform) -> one frame per 1/FPS of speech, the mouth open in proportion to that
    frame's loudness."""
    from vlogger_cli.audio.features import compute_features

    def frames(waveform) -> list[np.ndarray]:
        energy_db = 20 * np.log10(compute_features(waveform, FPS).energy + 1e-5)
        level = np.clip((energy_db - (energy_db.max() - 40)) / 40, 0, 1)  # the top 40 dB -> 0..1
        image, points = face_image
        return [open_mouth(image, points, MAX_OPENING_PX * v) for v in level]

    return frames


@pytest.fixture(scope="session")
def make_video(tmp_path_factory):
    """make_video(name, frames, audio_wav | None, crf=18) -> an MP4 at FPS (crf=0: lossless, so repeated
    frames decode identically)."""
    from vlogger_cli.export.mp4 import write_mp4

    folder = tmp_path_factory.mktemp("videos")

    def make(name: str, frames, audio: Path | None, crf: int = 18) -> Path:
        return write_mp4(frames, FPS, folder / f"{name}.mp4", audio_path=audio, crf=crf)

    return make


@pytest.fixture(scope="session")
def talking_video(speech, talking_frames, make_video) -> Path:
    """The astronaut speaking, lips in sync with the audio."""
    wav, waveform = speech
    return make_video("talking", talking_frames(waveform), wav)
