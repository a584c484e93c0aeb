"""Lip-sync quality of the demo weights on speech they never heard (issue 4, "Done when")."""

import numpy as np
import pytest

from vlogger_cli.motion.generate import generate_motion
from vlogger_cli.motion.quality import lip_sync_report, pearson, silence_mask
from vlogger_cli.motion.weights import default_weights_dir

needs_weights = pytest.mark.skipif(not (default_weights_dir() / "config.json").is_file(), reason="no demo motion weights")


def test_silence_mask_finds_long_pauses_only():
    energy = np.ones(100)
    energy[20:25] = 1e-4  # 0.2 s: too short
    energy[50:70] = 1e-4  # 0.8 s
    mask = silence_mask(energy, 25.0)
    assert mask[50:70].all() and not mask[20:25].any() and mask.sum() == 20
    assert pearson(np.arange(5), 2 * np.arange(5) + 1) == pytest.approx(1.0)


def _check(features, label):
    motion = generate_motion(features, None, seed=0)
    report = lip_sync_report(motion.channel("jawOpen"), features.energy, features.fps)
    print(label, report)
    assert report["pearson"] >= 0.5, (label, report)
    if report["silence_frames"]:
        assert report["jaw_in_silence_max"] < 0.1, (label, report)
    return report


@needs_weights
@pytest.mark.parametrize("voice,text", [
    ("it", "Buongiorno a tutti. Oggi parliamo di una storia molto semplice, e poi andiamo a casa."),
    ("en-gb-scotland", "The weather was lovely this morning. We walked along the river, and then we had lunch."),
])
def test_held_out_espeak_voices(voice, text):
    from vlogger_cli.audio import compute_features
    from vlogger_cli.motion.corpus import HELDOUT_VOICES
    from vlogger_cli.motion.espeak import synthesize
    from scipy.signal import resample_poly

    assert voice in HELDOUT_VOICES
    parts = []
    for sentence in text.split(". "):
        utt = synthesize(sentence, voice, rate=165)
        parts += [resample_poly(utt.pcm, 16000, utt.sample_rate), np.zeros(12000)]
    wave = np.concatenate([np.zeros(8000)] + parts).astype(np.float32)
    wave += np.random.default_rng(0).normal(0, 1e-3, len(wave)).astype(np.float32)
    report = _check(compute_features(wave, 25.0), voice)
    assert report["silence_frames"] > 10


@needs_weights
@pytest.mark.parametrize("name", ["iplap_audio2.wav", "sadtalker_deyu.wav"])
def test_real_recordings(testdata, name):
    from vlogger_cli.audio import compute_features, load_audio

    _check(compute_features(load_audio(testdata / "audio" / name), 25.0), name)
