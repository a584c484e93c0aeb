"""synthesize_speech: real espeak-ng speech, the requested voice and rate honoured and verified."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import soundfile as sf
from pyttsx3.drivers.espeak import EspeakDriver
from pyttsx3.engine import Engine

from vlogger_cli.audio import tts
from vlogger_cli.audio.features import compute_features
from vlogger_cli.audio.load import load_audio
from vlogger_cli.audio.tts import list_voices, resolve_voice, synthesize_speech
from vlogger_cli.errors import JobError

TEXT = "The quick brown fox jumps over the lazy dog while the sun shines over the quiet hills."


def seconds(path) -> float:
    return sf.info(path).duration


def spectrum(path) -> np.ndarray:
    """Long-term average log-mel spectrum of the voiced frames: a voice's timbre."""
    features = compute_features(load_audio(path), 25)
    return features.mel[features.energy > 0.01].mean(axis=0)


def only_file_in(folder):
    return sorted(p.name for p in folder.iterdir())


def test_writes_real_speech_atomically(tmp_path):
    out = synthesize_speech(TEXT, tmp_path / "speech.wav")

    assert out == tmp_path / "speech.wav"
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.subtype) == (22_050, 1, "PCM_16")
    assert 3.0 < info.duration < 8.0  # 16 words at 170 wpm ~ 5.7 s
    waveform = load_audio(out)  # the pipeline accepts it: not silent, not too short
    assert np.max(np.abs(waveform)) > 0.3
    assert only_file_in(tmp_path) == ["speech.wav"]  # no temporary left behind


def test_rate_is_honoured(tmp_path):
    slow = seconds(synthesize_speech(TEXT, tmp_path / "slow.wav", rate=120))
    fast = seconds(synthesize_speech(TEXT, tmp_path / "fast.wav", rate=260))

    assert slow / fast == pytest.approx(260 / 120, rel=0.15)


def test_voice_is_honoured_and_language_codes_resolve(tmp_path):
    american = spectrum(synthesize_speech(TEXT, tmp_path / "us.wav", voice="gmw/en-us"))
    american_by_code = spectrum(synthesize_speech(TEXT, tmp_path / "us2.wav", voice="en-us"))
    french = spectrum(synthesize_speech(TEXT, tmp_path / "fr.wav", voice="roa/fr"))

    def distance(a, b):
        return float(np.sqrt(np.mean((a - b) ** 2)))

    assert distance(american, american_by_code) < 0.5  # same voice (espeak varies a little run to run)
    assert distance(american, french) > 1.0  # a different voice, clearly


@pytest.mark.parametrize(
    ("asked", "identifier"),
    [("gmw/en-us", "gmw/en-us"), ("EN-US", "gmw/en-us"), ("de", "gmw/de"), ("German", "gmw/de"), ("zh", "sit/cmn")],
)
def test_resolve_voice(asked, identifier):
    assert resolve_voice(asked) == identifier


def test_list_voices():
    voices = list_voices()
    assert {"gmw/en-us", "gmw/de", "roa/fr"} <= set(voices)
    assert len(voices) > 50 and len(set(voices)) == len(voices)
    assert all(v == v.lower() and " " not in v for v in voices)  # identifiers, e.g. "gmw/en-us", "ko"
    assert not any(v.startswith("mb/") for v in voices)  # mbrola voices need software we lack


def test_unknown_voice(tmp_path):
    with pytest.raises(JobError) as excinfo:
        synthesize_speech(TEXT, tmp_path / "x.wav", voice="klingon/tlh")
    message = str(excinfo.value)
    assert "\n" not in message and "klingon/tlh" in message and "espeak-ng --voices" in message
    assert only_file_in(tmp_path) == []


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text(tmp_path, text):
    with pytest.raises(JobError, match="empty"):
        synthesize_speech(text, tmp_path / "x.wav")


def test_text_with_nothing_to_speak(tmp_path):
    with pytest.raises(JobError, match="nothing to speak"):
        synthesize_speech("... ,,, ...", tmp_path / "x.wav")
    assert only_file_in(tmp_path) == []


@pytest.mark.parametrize("rate", [79, 451, 170.5, True, "fast"])
def test_rate_out_of_range(tmp_path, rate):
    with pytest.raises(JobError, match="80-450"):
        synthesize_speech(TEXT, tmp_path / "x.wav", rate=rate)


def test_missing_espeak_names_the_apt_package(tmp_path, monkeypatch):
    monkeypatch.setattr(tts.shutil, "which", lambda name: None)
    with pytest.raises(JobError, match=r"apt-get install espeak-ng"):
        synthesize_speech(TEXT, tmp_path / "x.wav")
    with pytest.raises(JobError, match=r"apt-get install espeak-ng"):
        list_voices()


@pytest.fixture
def in_process(monkeypatch):
    """Synthesise in this process (normally a child process per utterance), so tests can instrument
    the engine."""
    monkeypatch.setattr(tts, "_synthesize_with_pyttsx3", tts._synthesize_in_process)


@pytest.mark.parametrize(
    ("sabotaged", "expected"),
    [("rate", "rate was not applied"), ("voice", "was used instead of 'gmw/en-us'")],
)
def test_an_ignored_setting_is_detected(tmp_path, monkeypatch, sabotaged, expected, in_process):
    # Reproduce the failure the check exists for: the engine silently uses other settings.
    original = EspeakDriver.setProperty

    def broken(name, value):
        if name == sabotaged:
            value = 300 if name == "rate" else "roa/fr"
        return original(name, value)

    monkeypatch.setattr(EspeakDriver, "setProperty", staticmethod(broken))
    with pytest.raises(JobError, match=expected) as excinfo:
        synthesize_speech(TEXT, tmp_path / "x.wav", voice="gmw/en-us", rate=120)
    assert "\n" not in str(excinfo.value)
    assert only_file_in(tmp_path) == []  # a rejected synthesis never reaches out_path


def test_engine_is_never_cancelled_and_never_needs_a_retry(tmp_path, monkeypatch, in_process):
    # Regression for the pyttsx3 race: runAndWait calls espeak_Cancel when espeak's queue is still
    # busy, which drops the queued rate (and can zero the volume). Before the fix Cancel fired in
    # about half the calls and ~1-5 % of outputs had the wrong rate; now it must never fire.
    # Includes the trigger ENVIRONMENT.md reports: listing voices through pyttsx3 first.
    from pyttsx3.drivers import _espeak

    cancels, problems = [], []
    original_cancel, original_check = _espeak.Cancel, tts._check
    monkeypatch.setattr(_espeak, "Cancel", lambda: (cancels.append(1), original_cancel())[1])
    monkeypatch.setattr(tts, "_check", lambda *args: problems.append(original_check(*args)) or problems[-1])
    for i in range(12):
        if i % 4 == 0:
            Engine("espeak").getProperty("voices")
        synthesize_speech("Short test sentence number one.", tmp_path / "x.wav", rate=(100, 300)[i % 2])
    assert cancels == []
    assert problems == [""] * 12


def test_concurrent_calls_keep_their_own_settings(tmp_path):
    results, errors = {}, []

    def speak(rate):
        try:
            results[rate] = seconds(synthesize_speech(TEXT, tmp_path / f"{rate}.wav", rate=rate))
        except Exception as err:  # surfaced by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=speak, args=(rate,)) for rate in (110, 330)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert results[110] / results[330] == pytest.approx(3.0, rel=0.15)


def test_speech_does_not_depend_on_what_the_process_said_before(tmp_path):
    # espeak-ng carries state between utterances in one process; every utterance runs in a fresh one.
    first = synthesize_speech(TEXT, tmp_path / "a.wav", voice="gmw/en-us", rate=170).read_bytes()
    synthesize_speech("Guten Tag, wie geht es dir heute?", tmp_path / "b.wav", voice="de", rate=130)
    again = synthesize_speech(TEXT, tmp_path / "c.wav", voice="gmw/en-us", rate=170).read_bytes()
    assert first == again
