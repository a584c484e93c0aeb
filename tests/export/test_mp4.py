"""write_mp4 / probe_video / read_frames / extract_audio, on small videos really encoded by ffmpeg."""

from __future__ import annotations

import gc
import struct
import weakref
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vlogger_cli.errors import InputError
from vlogger_cli.export import write_mp4
from vlogger_cli.media import extract_audio, probe_video, read_frames

FPS = 25
NUM_FRAMES = 50  # 2 s
HEIGHT, WIDTH = 48, 64


def smooth_frames(num_frames: int = NUM_FRAMES, height: int = HEIGHT, width: int = WIDTH):
    """Moving colour waves: smooth content, so H.264 at crf 18 should keep PSNR well above 30 dB."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(num_frames):
        r = 128 + 90 * np.sin(x / 9 + i / 5)
        g = 128 + 90 * np.cos(y / 7 - i / 4)
        b = 128 + 70 * np.sin((x + y) / 11 + i / 3)
        yield np.stack([r, g, b], axis=-1).astype(np.uint8)


def write_wav(path: Path, seconds: float, sample_rate: int = 16_000, onset: float = 0.0) -> Path:
    """A 440 Hz tone (silence before `onset`)."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) * (t >= onset)
    sf.write(path, wave.astype(np.float32), sample_rate)
    return path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def top_level_boxes(path: Path) -> list[str]:
    data, boxes, offset = path.read_bytes(), [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        boxes.append(kind.decode("latin-1"))
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
        offset += size if size else len(data)
    return boxes


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.fixture(scope="module")
def encoded(tmp_path_factory) -> Path:
    """2 s of 64x48 at 25 fps with a 2.5 s tone (longer than the video, so it is trimmed)."""
    folder = tmp_path_factory.mktemp("encoded")
    return write_mp4(smooth_frames(), FPS, folder / "out.mp4", audio_path=write_wav(folder / "a.wav", 2.5))


def test_write_mp4_is_h264_yuv420p_aac_with_index_first(encoded):
    info = probe_video(encoded)
    assert (info.video_codec, info.pix_fmt, info.audio_codec) == ("h264", "yuv420p", "aac")
    assert (info.width, info.height, info.fps, info.num_frames) == (WIDTH, HEIGHT, FPS, NUM_FRAMES)
    assert info.duration == pytest.approx(NUM_FRAMES / FPS)
    boxes = top_level_boxes(encoded)
    assert boxes.index("moov") < boxes.index("mdat")  # +faststart


def test_decoded_frames_match_input(encoded):
    decoded = list(read_frames(encoded))
    assert len(decoded) == NUM_FRAMES
    assert decoded[0].shape == (HEIGHT, WIDTH, 3) and decoded[0].dtype == np.uint8
    assert min(psnr(a, b) for a, b in zip(smooth_frames(), decoded)) > 30


@pytest.mark.parametrize("audio_seconds", [1.3, 3.1], ids=["audio-shorter", "audio-longer"])
def test_audio_lasts_exactly_as_long_as_the_video(tmp_path, audio_seconds):
    wav = write_wav(tmp_path / "a.wav", audio_seconds)
    info = probe_video(write_mp4(smooth_frames(), FPS, tmp_path / "out.mp4", audio_path=wav))
    assert info.has_audio
    assert abs(info.audio_duration - info.duration) <= 1 / FPS
    assert info.duration == pytest.approx(NUM_FRAMES / FPS)


def test_short_audio_is_padded_with_silence(tmp_path):
    wav = write_wav(tmp_path / "a.wav", 1.0)
    video = write_mp4(smooth_frames(), FPS, tmp_path / "out.mp4", audio_path=wav)
    samples, rate = sf.read(extract_audio(video, tmp_path / "back.wav"))
    assert np.sqrt(np.mean(samples[int(0.1 * rate):int(0.9 * rate)] ** 2)) > 0.1
    assert np.abs(samples[int(1.1 * rate):]).max() < 1e-3


def test_audio_stays_in_sync(tmp_path):
    # The tone starts at 1.0 s; after AAC encoding (priming samples!) and back it must still.
    wav = write_wav(tmp_path / "a.wav", 2.0, onset=1.0)
    video = write_mp4(smooth_frames(), FPS, tmp_path / "out.mp4", audio_path=wav)
    samples, rate = sf.read(extract_audio(video, tmp_path / "back.wav"))
    samples = samples if samples.ndim == 1 else samples.mean(axis=1)
    onset = np.argmax(np.abs(samples) > 0.1) / rate
    assert onset == pytest.approx(1.0, abs=0.5 / FPS)


def test_odd_size_is_padded_to_even_by_repeating_the_edge(tmp_path):
    source = [frame[:47, :63] for frame in smooth_frames(10)]
    video = write_mp4(iter(source), FPS, tmp_path / "odd.mp4")
    info = probe_video(video)
    assert (info.width, info.height) == (64, 48)
    decoded = list(read_frames(video))
    assert min(psnr(a, b[:47, :63]) for a, b in zip(source, decoded)) > 30
    # The added column / row repeat the last ones (black padding would be ~100 levels off).
    for a, b in zip(source, decoded):
        assert np.abs(b[:47, 63].astype(int) - a[:, 62]).mean() < 6
        assert np.abs(b[47, :63].astype(int) - a[46, :]).mean() < 6


def test_without_audio(tmp_path):
    video = write_mp4(smooth_frames(10), FPS, tmp_path / "out.mp4")
    info = probe_video(video)
    assert not info.has_audio and info.audio_codec is None and info.audio_duration is None
    assert (info.video_codec, info.pix_fmt, info.num_frames) == ("h264", "yuv420p", 10)
    boxes = top_level_boxes(video)
    assert boxes.index("moov") < boxes.index("mdat")


def test_frames_are_streamed_not_collected(tmp_path):
    alive: list[weakref.ref] = []

    def frames():
        for i, frame in enumerate(smooth_frames()):
            # By the time frame i is asked for, frames 1 .. i-2 must be gone (frame 0 the writer
            # keeps for its shape): a writer that collected them would keep them alive.
            gc.collect()
            assert not [j for j, ref in enumerate(alive[1:i - 1], start=1) if ref() is not None]
            alive.append(weakref.ref(frame))
            yield frame

    write_mp4(frames(), FPS, tmp_path / "out.mp4")
    assert probe_video(tmp_path / "out.mp4").num_frames == NUM_FRAMES


@pytest.mark.parametrize("with_audio", [False, True], ids=["video-only", "with-audio"])
def test_failure_midway_leaves_no_file(tmp_path, with_audio):
    wav = write_wav(tmp_path / "a.wav", 2.0) if with_audio else None

    def broken():
        yield from smooth_frames(10)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="renderer crashed"):
        write_mp4(broken(), FPS, tmp_path / "out.mp4", audio_path=wav)
    assert leftovers(tmp_path, {"a.wav"}) == []


def test_failure_keeps_the_existing_target(tmp_path):
    target = write_mp4(smooth_frames(5), FPS, tmp_path / "out.mp4")
    before = target.read_bytes()
    frames = [*smooth_frames(5), np.zeros((HEIGHT, WIDTH + 2, 3), np.uint8)]  # size changes: a bug
    with pytest.raises(ValueError, match="frame 5"):
        write_mp4(frames, FPS, target)
    assert target.read_bytes() == before
    assert leftovers(tmp_path, {"out.mp4"}) == []


@pytest.mark.parametrize(
    "frames, message",
    [
        ([], "no frames"),
        ([np.zeros((HEIGHT, WIDTH, 3), np.float32)], "float32"),
        ([np.zeros((HEIGHT, WIDTH), np.uint8)], "expected"),
    ],
    ids=["empty", "float", "grey"],
)
def test_invalid_frames_are_a_bug(tmp_path, frames, message):
    with pytest.raises(ValueError, match=message):
        write_mp4(frames, FPS, tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == []


def test_unusable_audio_is_a_user_error(tmp_path):
    text = tmp_path / "speech.wav"
    text.write_text("not audio\n")
    for audio in (text, tmp_path / "missing.wav"):
        with pytest.raises(InputError, match=str(audio.name)):
            write_mp4(smooth_frames(5), FPS, tmp_path / "out.mp4", audio_path=audio)
    assert not (tmp_path / "out.mp4").exists()


def test_probe_rejects_non_videos(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    wav = write_wav(tmp_path / "speech.wav", 0.5)
    for path, message in ((text, "not a readable media file"), (wav, "no video stream"),
                          (tmp_path / "missing.mp4", "not found")):
        with pytest.raises(InputError, match=message) as err:
            probe_video(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError):
        next(read_frames(text))


def test_read_frames_resamples_to_a_constant_rate(encoded):
    half = list(read_frames(encoded, fps=FPS / 2))
    double = list(read_frames(encoded, fps=FPS * 2))
    assert len(half) == NUM_FRAMES // 2
    assert len(double) == NUM_FRAMES * 2
    source = list(smooth_frames())
    assert psnr(half[3], source[6]) > 30  # frame k of the half rate is frame 2k


def test_extract_audio(encoded, tmp_path):
    wav = extract_audio(encoded, tmp_path / "speech.wav")
    samples, rate = sf.read(wav)
    assert len(samples) / rate == pytest.approx(NUM_FRAMES / FPS, abs=1 / FPS)
    silent = write_mp4(smooth_frames(5), FPS, tmp_path / "silent.mp4")
    assert extract_audio(silent, tmp_path / "none.wav") is None
    assert not (tmp_path / "none.wav").exists()


def test_probe_real_video(testdata):
    path = testdata / "videos" / "videoretalking_face_4.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    info = probe_video(path)
    assert (info.width, info.height, info.fps, info.num_frames) == (700, 700, 30, 199)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert abs(info.audio_duration - info.duration) < 0.1
