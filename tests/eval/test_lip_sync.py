"""Lip sync: known delays come back as offsets, shuffled or foreign speech loses to the matched speech."""

from __future__ import annotations

import numpy as np
import pytest

from vlogger_cli.eval import lip_sync
from vlogger_cli.eval.faces import FaceTracker

FPS = 25.0  # the constructed videos' rate (conftest.py)


def _measure(video, waveform, controls=()):
    """The lip_sync group of `video` against `waveform` (the real chain: decode, FaceMesh, speech bands)."""
    from vlogger_cli.media import read_frames

    tracker = FaceTracker()
    points = np.stack([tracker(frame) for frame in read_frames(video)])
    bands, _ = lip_sync.speech_bands(waveform, FPS, len(points))
    return lip_sync.lip_sync_metrics(lip_sync.mouth_opening(points), bands, FPS, list(controls))[0]


@pytest.fixture(scope="module")
def synced(talking_video, speech):
    return _measure(talking_video, speech[1])


def test_best_lag_on_signals_with_a_known_delay(speech):
    # The mouth follows the speech 5 frames (200 ms at 25 fps) before it is heard: lag +5.
    bands, _ = lip_sync.speech_bands(speech[1], FPS, 80)
    level = bands.mean(axis=1)
    mouth = np.concatenate([level[5:], np.full(5, level.min())])
    group, _ = lip_sync.lip_sync_metrics(mouth, bands, FPS)
    assert group["lag_frames"] == pytest.approx(5, abs=0.5)
    assert group["offset_ms"] == pytest.approx(200, abs=20)
    assert group["score"] > 0.9 and np.argmax(group["lag_scores"]) == 5 + 12  # lags -12 .. +12 at 25 fps


def test_parabola_refines_between_frames():
    scores = np.array([0.0, 0.5, 0.9, 0.7, 0.1])  # peak between lag 0 and +1, nearer 0
    lag, peak = lip_sync.best_lag(scores)
    assert 0 < lag < 0.5 and peak == 0.9


def test_synced_video_is_in_sync_and_beats_its_controls(synced):
    assert abs(synced["offset_ms"]) <= 1000 / FPS  # within one frame
    assert synced["score"] > 0.5
    assert synced["controls"] >= 4 and synced["specificity"] == 1.0 and synced["margin"] > 0


def test_audio_delayed_200ms_reports_the_offset_within_one_frame(speech, talking_frames, make_video, tmp_path, synced):
    from vlogger_cli.audio.load import write_wav

    wav, waveform = speech
    delayed = np.concatenate([np.zeros(int(0.2 * 16000), np.float32), waveform])
    video = make_video("delayed", talking_frames(waveform), write_wav(tmp_path / "delayed.wav", delayed))
    group = _measure(video, delayed[: len(waveform)])
    assert group["offset_ms"] == pytest.approx(200, abs=1000 / FPS)
    assert group["offset_ms"] - synced["offset_ms"] == pytest.approx(200, abs=1000 / FPS)


def test_shuffled_frames_lose_to_the_original(speech, talking_frames, make_video, synced):
    wav, waveform = speech
    frames = talking_frames(waveform)
    order = np.random.default_rng(0).permutation(len(frames))
    group = _measure(make_video("shuffled", [frames[i] for i in order], wav), waveform)
    assert group["score"] < synced["score"] - 0.3
    assert group["margin"] < synced["margin"]


def test_other_speech_as_control_scores_below(talking_video, speech, tmp_path):
    from vlogger_cli.audio.load import load_audio
    from vlogger_cli.audio.tts import synthesize_speech

    other = load_audio(synthesize_speech("Seven green boxes were carried over the bridge.", tmp_path / "o.wav"))
    bands, _ = lip_sync.speech_bands(other, FPS, len(other) * int(FPS) // 16000)
    group = _measure(talking_video, speech[1], controls=[("other", bands)])
    assert group["control_scores"]["other"] < group["score"]


def test_no_speech_is_not_available():
    group, _ = lip_sync.lip_sync_metrics(np.ones(100), None, FPS, no_audio_reason="no audio track")
    assert group["score"] is None and group["reasons"]["score"] == "no audio track"
