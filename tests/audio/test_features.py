"""compute_features: one row per video frame at any fps, aligned to the frame's time interval."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest

from vlogger_cli.audio.features import TOP_DB, compute_features, frame_count
from vlogger_cli.audio.load import load_audio
from vlogger_cli.types import SAMPLE_RATE, AudioFeatures

FPS_VALUES = [24, 25, 30, 29.97, 23.976, 60, 12.5]


@pytest.mark.parametrize("fps", FPS_VALUES)
@pytest.mark.parametrize("num_samples", [16_000, 16_321, 160_007, 8_000 * 3 + 1])
def test_exactly_one_row_per_video_frame(tone, fps, num_samples):
    waveform = tone(num_samples / SAMPLE_RATE, SAMPLE_RATE)

    features = compute_features(waveform, fps, n_mels=40)

    expected = round(num_samples / SAMPLE_RATE * fps)
    assert frame_count(num_samples, fps) == expected
    assert features.mel.shape == (expected, 40) and features.energy.shape == (expected,)
    assert features.num_frames == expected
    assert features.mel.dtype == np.float32 and features.energy.dtype == np.float32
    assert features.fps == fps and features.waveform.shape == (num_samples,)
    assert isinstance(features, AudioFeatures)


def burst_signal(onsets: list[float], seconds: float, *, burst: float = 0.3) -> np.ndarray:
    """Silence with 1 kHz bursts starting exactly at each onset (seconds)."""
    waveform = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
    t = np.arange(int(burst * SAMPLE_RATE)) / SAMPLE_RATE
    for onset in onsets:
        start = math.ceil(onset * SAMPLE_RATE)
        waveform[start : start + len(t)] = 0.5 * np.sin(2 * np.pi * 1_000 * t)
    return waveform


@pytest.mark.parametrize("fps", [24, 25, 29.97, 30])
def test_tone_burst_lights_the_row_of_its_onset_without_drift(fps):
    # Onsets mid-frame (dark row before) and late in a frame (still lit), early and after ~1 minute:
    # an integer hop (533 samples at 30 fps) would be ~1 frame off by 59 s.
    onsets = [(k + phase) / fps for k, phase in [(12, 0.5), (40, 0.9), (int(35 * fps), 0.5), (int(59 * fps), 0.9)]]
    features = compute_features(burst_signal(onsets, 61.0), fps)
    tone_bin = int(np.argmin(np.abs(librosa.mel_frequencies(n_mels=80, fmin=20, fmax=8000) - 1_000)))
    floor = features.mel.min()

    for onset in onsets:
        row = math.floor(onset * fps)
        assert features.energy[row] > 0.01, f"energy row {row} dark for onset {onset:.4f} s at {fps} fps"
        assert features.energy[row - 1] == 0.0, f"energy leaks into row {row - 1} at {fps} fps"
        assert features.mel[row, tone_bin] > floor + 30, f"mel row {row} dark at {fps} fps"
        # Rows before the onset see none of the burst (even through the 25 ms analysis window).
        assert features.mel[row - 2, tone_bin] == pytest.approx(floor, abs=1.0)
        if (onset * fps) % 1 >= 0.5:  # >= 16 ms into the frame: past the window's reach
            assert features.mel[row - 1, tone_bin] == pytest.approx(floor, abs=1.0)


def test_energy_is_rms_per_frame(tone):
    features = compute_features(tone(2.0, SAMPLE_RATE, freq=440, amp=0.8), 25)
    np.testing.assert_allclose(features.energy, 0.8 / np.sqrt(2), rtol=0.01)


def test_mel_peak_is_at_the_tone_frequency_and_range_is_80_db(tone):
    features = compute_features(tone(1.0, SAMPLE_RATE, freq=2_000, amp=0.5), 25, n_mels=80)

    centres = librosa.mel_frequencies(n_mels=80, fmin=20, fmax=8000)
    peak_hz = centres[np.argmax(features.mel.mean(axis=0))]
    assert peak_hz == pytest.approx(2_000, rel=0.05)
    assert features.mel.max() - features.mel.min() <= TOP_DB + 1e-3
    assert features.mel.max() - features.mel.min() > 40  # the clip did not flatten everything


def test_digital_silence_is_finite(tone):
    features = compute_features(np.zeros(16_000, dtype=np.float32), 25)
    assert np.all(np.isfinite(features.mel)) and np.all(features.energy == 0)


def test_frame_rate_above_the_mel_hop_still_fills_every_row(tone):
    features = compute_features(tone(1.0, SAMPLE_RATE, freq=500), 240)
    assert features.mel.shape[0] == 240
    # A steady tone: every row (including those without their own 10 ms frame) is at the peak level.
    assert np.ptp(features.mel[2:-2].max(axis=1)) < 1.0


def test_real_speech_envelope_follows_words(speech_wav):
    waveform = load_audio(speech_wav)
    features = compute_features(waveform, 25)

    assert features.num_frames == round(len(waveform) / SAMPLE_RATE * 25)
    loud = features.energy > 0.1 * features.energy.max()
    assert 0.3 < loud.mean() < 0.98  # speech with pauses, not a constant
    # Energy and mel loudness agree frame by frame.
    mel_loudness = features.mel.max(axis=1)
    assert np.corrcoef(mel_loudness, 20 * np.log10(features.energy + 1e-5))[0, 1] > 0.8


@pytest.mark.parametrize("fps", [0, -25, float("nan"), float("inf")])
def test_bad_fps_is_a_bug(tone, fps):
    with pytest.raises(ValueError):
        compute_features(tone(1.0, SAMPLE_RATE), fps)


def test_bad_waveform_is_a_bug():
    with pytest.raises(ValueError):
        compute_features(np.zeros((100, 2), dtype=np.float32), 25)
    with pytest.raises(ValueError):
        compute_features(np.zeros(0, dtype=np.float32), 25)
