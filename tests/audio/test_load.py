"""load_audio / write_wav: every accepted format decodes to the same 16 kHz mono speech; bad input fails cleanly."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from vlogger_cli.audio import load as load_module
from vlogger_cli.audio.load import load_audio, write_wav
from vlogger_cli.errors import InputError
from vlogger_cli.types import SAMPLE_RATE


def dominant_hz(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
    return float(np.fft.rfftfreq(len(waveform), 1 / sample_rate)[np.argmax(spectrum)])


def envelope(waveform: np.ndarray, hop: int = 320) -> np.ndarray:
    """20 ms RMS envelope at 16 kHz, to compare decodings of the same speech."""
    n = len(waveform) // hop
    return np.sqrt(np.mean(waveform[: n * hop].reshape(n, hop) ** 2, axis=1))


def assert_same_speech(a: np.ndarray, b: np.ndarray, *, max_shift_s: float = 0.08) -> None:
    """Equal length (codec padding aside) and the same loudness envelope."""
    assert abs(len(a) - len(b)) <= max_shift_s * SAMPLE_RATE
    ea, eb = envelope(a), envelope(b)
    n = min(len(ea), len(eb))
    # Codecs add a little delay: take the best correlation over a few 20 ms lags.
    best = max(np.corrcoef(ea[lag:n], eb[: n - lag])[0, 1] for lag in range(0, 4))
    best = max(best, *(np.corrcoef(ea[: n - lag], eb[lag:n])[0, 1] for lag in range(1, 4)))
    assert best > 0.95


def assert_one_line_error(excinfo, path) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    assert str(path) in message
    return message


# --- formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_every_bit_depth_scales_to_unit_range(tmp_path, tone, subtype):
    path = tmp_path / f"tone_{subtype}.wav"
    sf.write(path, tone(1.0, 22_050, freq=440, amp=0.5), 22_050, subtype=subtype)

    waveform = load_audio(path)

    assert waveform.dtype == np.float32 and waveform.ndim == 1
    assert len(waveform) == SAMPLE_RATE  # 1 s at 16 kHz
    assert np.max(np.abs(waveform)) == pytest.approx(0.5, abs=0.02)  # 8-bit is coarse
    assert dominant_hz(waveform) == pytest.approx(440, abs=2)


@pytest.mark.parametrize("rate", [8_000, 16_000, 44_100, 48_000, 96_000])
def test_any_sample_rate_is_resampled_without_changing_pitch(tmp_path, tone, rate):
    path = tmp_path / f"tone_{rate}.wav"
    sf.write(path, tone(1.5, rate, freq=1_000, amp=0.5), rate)

    waveform = load_audio(path)

    assert len(waveform) == int(1.5 * SAMPLE_RATE)
    assert dominant_hz(waveform) == pytest.approx(1_000, abs=2)
    # A good resampler keeps the level (soxr HQ ripple is far below 1 %).
    assert np.sqrt(np.mean(waveform[1000:-1000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_channels_are_averaged(tmp_path, tone):
    # Six channels, speech-like content on the first only: the mono mix is one sixth as loud.
    data = np.zeros((16_000, 6), dtype=np.float32)
    data[:, 0] = tone(1.0, 16_000, amp=0.6)
    sf.write(tmp_path / "surround.wav", data, 16_000)

    waveform = load_audio(tmp_path / "surround.wav")

    assert np.max(np.abs(waveform)) == pytest.approx(0.1, abs=0.002)


def test_24bit_48k_stereo(tmp_path, speech_wav):
    speech, rate = sf.read(speech_wav, dtype="float32")
    import soxr

    speech48 = soxr.resample(speech, rate, 48_000)
    stereo = np.stack([speech48, 0.5 * speech48], axis=1)  # 0.75 x speech after averaging
    path = tmp_path / "speech_24bit_48k_stereo.wav"
    sf.write(path, stereo, 48_000, subtype="PCM_24")

    waveform = load_audio(path)
    reference = load_audio(speech_wav)

    assert_same_speech(waveform, reference, max_shift_s=0.001)
    assert np.max(np.abs(waveform)) == pytest.approx(0.75 * np.max(np.abs(reference)), rel=0.03)


@pytest.mark.parametrize(
    ("suffix", "codec_args"),
    [
        ("flac", ()),
        ("ogg", ("-c:a", "libvorbis", "-q:a", "4")),
        ("mp3", ("-c:a", "libmp3lame", "-b:a", "96k")),
        ("m4a", ("-c:a", "aac", "-b:a", "96k")),
        ("aac", ("-c:a", "aac", "-b:a", "96k", "-f", "adts")),
    ],
)
def test_compressed_formats_decode_to_the_same_speech(tmp_path, speech_wav, ffmpeg, suffix, codec_args):
    encoded = ffmpeg(speech_wav, tmp_path / f"speech.{suffix}", *codec_args)

    assert_same_speech(load_audio(encoded), load_audio(speech_wav))


@pytest.mark.parametrize(
    ("real_format", "codec_args", "lying_name"),
    [
        ("m4a", ("-c:a", "aac", "-f", "ipod"), "speech.wav"),  # libsndfile cannot: ffmpeg path
        ("mp3", ("-c:a", "libmp3lame", "-f", "mp3"), "speech.wav"),
        ("wav", ("-c:a", "pcm_s16le", "-f", "wav"), "speech.mp3"),
        ("ogg", ("-c:a", "libvorbis", "-f", "ogg"), "speech.m4a"),
    ],
)
def test_extension_that_lies_is_ignored(tmp_path, speech_wav, ffmpeg, real_format, codec_args, lying_name):
    lying = ffmpeg(speech_wav, tmp_path / lying_name, *codec_args)

    assert_same_speech(load_audio(lying), load_audio(speech_wav))


def test_ffmpeg_fallback_matches_soundfile(tmp_path, speech_wav, monkeypatch):
    # Same stereo 44.1 kHz file decoded both ways: downmix and resampling must agree.
    speech, rate = sf.read(speech_wav, dtype="float32")
    import soxr

    stereo = np.stack([soxr.resample(speech, rate, 44_100)] * 2, axis=1) * np.array([1.0, 0.6], np.float32)
    sf.write(tmp_path / "stereo.wav", stereo, 44_100)
    via_soundfile = load_audio(tmp_path / "stereo.wav")

    def refuse(*args, **kwargs):
        raise sf.LibsndfileError(0, prefix="forced: ")

    monkeypatch.setattr(load_module, "_read_soundfile", refuse)
    via_ffmpeg = load_audio(tmp_path / "stereo.wav")

    assert len(via_ffmpeg) == pytest.approx(len(via_soundfile), abs=2)
    n = min(len(via_ffmpeg), len(via_soundfile))
    assert np.max(np.abs(via_ffmpeg[:n] - via_soundfile[:n])) < 0.01


def test_float_above_full_scale_is_scaled_not_clipped(tmp_path, tone):
    sf.write(tmp_path / "hot.wav", tone(1.0, 16_000, amp=2.0), 16_000, subtype="FLOAT")

    waveform = load_audio(tmp_path / "hot.wav")

    assert np.max(np.abs(waveform)) == pytest.approx(1.0, abs=1e-6)
    # Still a sine (clipping would flatten the tops: crest factor sqrt(2) -> 1).
    assert np.max(np.abs(waveform)) / np.sqrt(np.mean(waveform**2)) == pytest.approx(np.sqrt(2), rel=0.01)


# --- real recordings ----------------------------------------------------------------------------


def test_real_24bit_48k_stereo_file(testdata):
    path = testdata / "audio" / "sadtalker_deyu.wav"
    if not path.exists():
        pytest.skip(f"{path} not present")
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (48_000, 2, "PCM_24")

    waveform = load_audio(path)

    assert len(waveform) == pytest.approx(info.duration * SAMPLE_RATE, abs=2)
    assert 0.05 < np.max(np.abs(waveform)) <= 1.0
    assert np.mean(envelope(waveform) > 0.01) > 0.3  # mostly speech, not silence


def test_real_44k_file_same_through_both_decoders(testdata, monkeypatch):
    path = testdata / "audio" / "iplap_audio2.wav"
    if not path.exists():
        pytest.skip(f"{path} not present")
    assert sf.info(path).samplerate == 44_100

    via_soundfile = load_audio(path)
    monkeypatch.setattr(load_module, "_read_soundfile", lambda *a: (_ for _ in ()).throw(sf.SoundFileError()))
    via_ffmpeg = load_audio(path)

    assert len(via_soundfile) == pytest.approx(sf.info(path).duration * SAMPLE_RATE, abs=2)
    n = min(len(via_ffmpeg), len(via_soundfile))
    assert np.max(np.abs(via_ffmpeg[:n] - via_soundfile[:n])) < 0.02


# --- bad input ----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(InputError) as excinfo:
        load_audio(path)
    assert "does not exist" in assert_one_line_error(excinfo, path)


def test_directory_and_empty_file(tmp_path):
    with pytest.raises(InputError, match="not a file"):
        load_audio(tmp_path)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_audio(tmp_path / "empty.wav")


def test_unreadable_file(tmp_path, tone, monkeypatch):
    path = tmp_path / "locked.wav"
    sf.write(path, tone(1.0, 16_000), 16_000)

    def denied(*args, **kwargs):  # chmod 000 does not stop root, so deny the way the OS would
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(load_module, "open", denied, raising=False)
    with pytest.raises(InputError) as excinfo:
        load_audio(path)
    message = assert_one_line_error(excinfo, path)
    assert "Permission denied" in message and "permissions" in message


def test_text_file_renamed_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are my speaking notes, not audio\n" * 50)
    with pytest.raises(InputError) as excinfo:
        load_audio(path)
    assert "not a readable audio file" in assert_one_line_error(excinfo, path)


def test_truncated_garbage_after_a_wav_header(tmp_path, tone):
    good = tmp_path / "good.wav"
    sf.write(good, tone(1.0, 16_000), 16_000)
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF\xff\xff\xff\xffWAVEjunk" + os.urandom(2000))
    with pytest.raises(InputError) as excinfo:
        load_audio(path)
    assert_one_line_error(excinfo, path)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("portrait.wav", ("-f", "lavfi", "-i", "color=c=red:s=32x32", "-frames:v", "1", "-f", "mjpeg")),
        ("clip.mp4", ("-f", "lavfi", "-i", "testsrc=s=32x32:d=1", "-c:v", "libx264", "-an")),
    ],
)
def test_image_or_silent_video_has_no_audio_stream(tmp_path, ffmpeg, name, args):
    path = ffmpeg(None, tmp_path / name, *args)
    with pytest.raises(InputError) as excinfo:
        load_audio(path)
    assert "no audio stream" in assert_one_line_error(excinfo, path)


@pytest.mark.parametrize("peak_dbfs", [None, -60.0])
def test_silent_file(tmp_path, peak_dbfs):
    samples = np.zeros(32_000, dtype=np.float32)
    if peak_dbfs is not None:
        noise = np.random.default_rng(0).uniform(-1, 1, 32_000).astype(np.float32)
        samples = noise * np.float32(10 ** (peak_dbfs / 20))
    path = tmp_path / "silent.wav"
    sf.write(path, samples, 16_000, subtype="FLOAT")
    with pytest.raises(InputError) as excinfo:
        load_audio(path)
    assert "silent" in assert_one_line_error(excinfo, path)


def test_quiet_but_not_silent_loads(tmp_path, tone):
    sf.write(tmp_path / "quiet.wav", tone(1.0, 16_000, amp=10 ** (-40 / 20)), 16_000)
    assert np.max(np.abs(load_audio(tmp_path / "quiet.wav"))) == pytest.approx(0.01, rel=0.02)


def test_too_short(tmp_path, tone):
    sf.write(tmp_path / "blip.wav", tone(0.3, 16_000), 16_000)
    with pytest.raises(InputError) as excinfo:
        load_audio(tmp_path / "blip.wav")
    message = assert_one_line_error(excinfo, tmp_path / "blip.wav")
    assert "0.30 s" in message and "0.5 s minimum" in message
    assert len(load_audio(tmp_path / "blip.wav", min_seconds=0.25)) == 4_800


@pytest.mark.parametrize("suffix", ["wav", "m4a"])  # soundfile path and ffmpeg path
def test_too_long_names_length_limit_and_fix(tmp_path, tone, ffmpeg, suffix):
    path = tmp_path / "long.wav"
    sf.write(path, tone(3.0, 16_000), 16_000)
    if suffix == "m4a":
        path = ffmpeg(path, tmp_path / "long.m4a", "-c:a", "aac")
    with pytest.raises(InputError) as excinfo:
        load_audio(path, max_seconds=2.0)
    message = assert_one_line_error(excinfo, path)
    assert "3.0 s long" in message and "2 s limit" in message
    assert "split" in message and "max_audio_seconds" in message
    assert len(load_audio(path, max_seconds=4.0)) == pytest.approx(3 * SAMPLE_RATE, abs=0.05 * SAMPLE_RATE)


def test_nan_samples(tmp_path, tone):
    samples = tone(1.0, 16_000)
    samples[100] = np.nan
    sf.write(tmp_path / "nan.wav", samples, 16_000, subtype="FLOAT")
    with pytest.raises(InputError, match="NaN"):
        load_audio(tmp_path / "nan.wav")


# --- write_wav ----------------------------------------------------------------------------------


def test_write_wav_round_trip_is_16bit_pcm(tmp_path, tone):
    samples = tone(1.0, 16_000, amp=0.7)
    path = write_wav(tmp_path / "out" / "speech.wav", samples)

    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype, info.format) == (16_000, 1, "PCM_16", "WAV")
    assert np.max(np.abs(load_audio(path) - samples)) < 2 / 32768
    assert sorted(p.name for p in path.parent.iterdir()) == ["speech.wav"]  # no temporary left


def test_write_wav_clips_instead_of_wrapping(tmp_path):
    path = write_wav(tmp_path / "hot.wav", np.array([0.5, 1.5, -1.5] * 8000, dtype=np.float32))
    data, _ = sf.read(path, dtype="float32")
    assert data[1] == pytest.approx(1.0, abs=1e-4) and data[2] == pytest.approx(-1.0, abs=1e-4)


def test_write_wav_failure_leaves_existing_file(tmp_path, tone):
    path = write_wav(tmp_path / "speech.wav", tone(1.0, 16_000))
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_wav(path, np.array([0.0, np.nan], dtype=np.float32))
    with pytest.raises(ValueError):
        write_wav(path, np.zeros((2, 2, 2), dtype=np.float32))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["speech.wav"]
