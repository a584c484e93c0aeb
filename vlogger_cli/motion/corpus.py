"""The synthetic motion corpus: speech from libespeak-ng, motion targets derived from its timings.

One clip (`make_clip`):
1. 1-4 generated sentences (a small lexicon per language, or pseudo-words for languages without one)
   spoken by one espeak-ng voice + variant at a random rate (120-260 wpm), pitch and pitch range,
   separated by pauses of 0.15-1.5 s; resampled to 16 kHz.
2. Mouth: phoneme timings -> visemes -> ARKit with coarticulation (visemes.py), times the loudness
   g(t) = clip(rms(t) / rms_p95, 0, 1)^0.7 of the clean speech and a per-clip articulation amplitude,
   so the mouth closes in silence and opens with loudness.
3. Face: blinks (Poisson, 12-27 per minute, plus half of the phrase boundaries), gaze saccades
   (Poisson + phrase boundaries), brow raises on a third of the accents, a slowly varying smile on
   top of the reference expression.
4. Head and body (rotation vectors in the body frame: x = nod/pitch, y = tilt/roll, z = turn/yaw;
   converted to 6D residuals): head nods on accents (loud word onsets), head/neck and spine sway
   whose amount follows the talking envelope, breathing on spine and clavicles, beat gestures of
   the gesturing arm(s) (per clip: none / left / right / both) with an open hand while talking.
5. The audio is augmented after the targets are fixed: gain -12..+6 dB, coloured noise at 25-60 dB
   SNR, a random spectral tilt. The denoiser only ever sees this audio.

Held-out voices (`HELDOUT_VOICES`) never appear in training; the tests speak with them.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.signal import lfilter, resample_poly

from vlogger_cli.motion import behaviour as bh
from vlogger_cli.motion.dataset import compute_features
from vlogger_cli.motion.espeak import synthesize
from vlogger_cli.motion.representation import (
    ARKIT_NAMES, BLINK, EXPRESSION, GAZE, HANDS, MOTION_DIM, POSE, POSE_JOINTS
)
from vlogger_cli.rotations import axis_angle_to_rotation_6d
from vlogger_cli.motion.visemes import mouth_track
from vlogger_cli.types import SAMPLE_RATE

LEXICON = {
    "en": "the a we you they it this that time people world today really never always think know make see "
          "going about little great small house water morning evening story reason question idea simple "
          "important beautiful together because maybe yes no well actually every thing right here there".split(),
    "de": "ich du wir sie das ein eine heute morgen immer nie wirklich denken wissen machen sehen gehen "
          "klein gross Haus Wasser Abend Frage Idee einfach wichtig schön zusammen weil vielleicht ja nein "
          "gut hier dort Zeit Menschen Welt Geschichte".split(),
    "es": "yo tú nosotros ellos el la un una hoy mañana siempre nunca realmente pensar saber hacer ver ir "
          "pequeño grande casa agua noche pregunta idea sencillo importante bonito juntos porque quizás sí no "
          "bien aquí allí tiempo gente mundo historia".split(),
    "fr": "je tu nous ils le la un une aujourd'hui demain toujours jamais vraiment penser savoir faire voir "
          "aller petit grand maison eau soir question idée simple important beau ensemble parce que peut-être "
          "oui non bien ici là temps gens monde histoire".split(),
    "pt": "eu você nós eles o a um uma hoje amanhã sempre nunca realmente pensar saber fazer ver ir pequeno "
          "grande casa água noite pergunta ideia simples importante bonito juntos porque talvez sim não bem "
          "aqui ali tempo pessoas mundo história".split(),
    "nl": "ik jij wij zij de het een vandaag morgen altijd nooit echt denken weten maken zien gaan klein "
          "groot huis water avond vraag idee eenvoudig belangrijk mooi samen omdat misschien ja nee goed "
          "hier daar tijd mensen wereld verhaal".split(),
}
# (espeak voice, lexicon language or None for pseudo-words)
TRAIN_VOICES = (
    ("en-us", "en"), ("en-029", "en"), ("en-us-nyc", "en"), ("gmw/en", "en"), ("en-gb-x-rp", "en"),
    ("de", "de"), ("es", "es"), ("es-419", "es"), ("fr", "fr"), ("pt", "pt"), ("nl", "nl"),
    ("pl", None), ("cs", None), ("fi", None), ("tr", None), ("sw", None), ("id", None), ("hu", None),
    ("sv", None), ("da", None), ("ro", None), ("hr", None),
)
VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+f1", "+f2", "+f3", "+f4", "+croak", "+klatt")
HELDOUT_VOICES = ("it", "en-gb-scotland", "en-us+f5")
SYLLABLE_ONSETS = "b d f g h k l m n p r s t v z ch sh tr pl st br".split()
SYLLABLE_NUCLEI = "a e i o u a e o ai au".split()


def make_sentence(rng: np.random.Generator, language: str | None) -> str:
    n = int(rng.integers(3, 13))
    if language in LEXICON:
        words = [str(w) for w in rng.choice(LEXICON[language], n)]
    else:
        words = [
            "".join(str(rng.choice(SYLLABLE_ONSETS)) + str(rng.choice(SYLLABLE_NUCLEI)) for _ in range(rng.integers(1, 4)))
            for _ in range(n)
        ]
    if n > 6 and rng.random() < 0.5:
        words[int(rng.integers(2, n - 2))] += ","
    return " ".join(words).capitalize() + str(rng.choice([".", ".", "!", "?"]))


def make_clip(rng: np.random.Generator, fps: float = 25.0, voices=TRAIN_VOICES) -> dict:
    """One clip: {"waveform" (S,), "motion" (T, D), "reference" (R,), "meta"}; T = round(S / 16000 * fps)."""
    voice, language = voices[int(rng.integers(len(voices)))]
    voice_name = voice + str(rng.choice(VARIANTS))
    rate, pitch, prange = int(rng.integers(120, 261)), int(rng.integers(15, 86)), int(rng.integers(10, 91))
    # 1. speech, with pauses between sentences
    pieces, phonemes, words = [np.zeros(int(rng.uniform(0.1, 0.8) * SAMPLE_RATE), np.float32)], [], []
    texts = []
    for _ in range(int(rng.integers(1, 5))):
        text = make_sentence(rng, language)
        utt = synthesize(text, voice_name, rate=rate, pitch=pitch, pitch_range=prange)
        offset = sum(len(p) for p in pieces) / SAMPLE_RATE
        pieces.append(resample_poly(utt.pcm, SAMPLE_RATE, utt.sample_rate).astype(np.float32))
        phonemes += [type(p)(p.time + offset, p.phoneme) for p in utt.phonemes]
        words += [w.time + offset for w in utt.words]
        pieces.append(np.zeros(int(rng.uniform(0.15, 1.5) * SAMPLE_RATE), np.float32))
        texts.append(text)
    clean = np.concatenate(pieces)
    duration = len(clean) / SAMPLE_RATE
    rms = compute_features(clean, fps).energy.astype(np.float64)  # the pipeline's framing: frame k = [k, k+1) / fps
    n = len(rms)
    times = (np.arange(n) + 0.5) / fps  # frame centres
    loud = np.clip(rms / (np.percentile(rms[rms > 1e-3], 95) if (rms > 1e-3).any() else 1.0), 0, 1) ** 0.7
    talking = loud > 0.08
    talk_env = bh.envelope(talking, fps, attack=0.3, release=1.2)

    # 2. reference expression and pose (the conditioning the model receives)
    ref_expr = np.zeros(len(ARKIT_NAMES))
    if rng.random() < 0.6:
        for name, hi in (("mouthSmileLeft", 0.4), ("browInnerUp", 0.2), ("eyeSquintLeft", 0.2), ("mouthFrownLeft", 0.15)):
            v = rng.uniform(0, hi)
            ref_expr[ARKIT_NAMES.index(name)] = v
            ref_expr[ARKIT_NAMES.index(name.replace("Left", "Right"))] = v
    ref_pose = rng.normal(0, 0.08, (len(POSE_JOINTS), 3))
    for j, joint in enumerate(POSE_JOINTS):
        if joint.startswith(("shoulder", "elbow")):
            ref_pose[j] += rng.normal(0, 0.25, 3)
    reference = np.concatenate([ref_expr, axis_angle_to_rotation_6d(torch.as_tensor(ref_pose)).reshape(-1).numpy()])

    expr = np.tile(ref_expr, (n, 1))
    idx = {name: i for i, name in enumerate(ARKIT_NAMES)}
    # 3. mouth, scaled by loudness
    amp = rng.uniform(0.8, 1.25)
    expr += mouth_track(phonemes, times, duration) * (amp * loud)[:, None]
    # accents: loud word onsets
    accents = [w for w in words if loud[min(n - 1, int(w * fps)): int((w + 0.25) * fps) + 1].max(initial=0) > 0.6 and rng.random() < 0.6]
    pauses = [s / fps for s, _ in bh.silent_runs(talking, fps, 0.25) if s > 0]
    # blinks, brows, smile
    blink_times = bh.thin(bh.poisson_times(rng, rng.uniform(0.2, 0.45), duration)
                          + [p + 0.1 for p in pauses if rng.random() < 0.5], 0.5)
    blink = np.zeros(n)
    for t0 in blink_times:
        blink = np.maximum(blink, bh.bump(times, t0, 0.08, 0.18) * rng.uniform(0.85, 1.0))
    expr[:, idx["eyeBlinkLeft"]] += blink
    expr[:, idx["eyeBlinkRight"]] += blink
    brow = np.zeros(n)
    for a in accents:
        if rng.random() < 0.35:
            brow += rng.uniform(0.2, 0.6) * bh.bump(times, a, 0.12, 0.5)
    expr[:, idx["browInnerUp"]] += brow
    expr[:, idx["browOuterUpLeft"]] += 0.7 * brow
    expr[:, idx["browOuterUpRight"]] += 0.7 * brow
    smile = np.clip(bh.smooth_noise(rng, n, fps, 4.0, 0.08), 0, None)
    for name, k in (("mouthSmileLeft", 1.0), ("mouthSmileRight", 1.0), ("cheekSquintLeft", 0.5), ("cheekSquintRight", 0.5)):
        expr[:, idx[name]] += k * smile
    # gaze: saccades at random and at phrase boundaries
    switches = sorted(bh.poisson_times(rng, rng.uniform(0.3, 0.7), duration) + [p for p in pauses if rng.random() < 0.5])
    centre = rng.random(len(switches)) < 0.4
    gaze_yaw = bh.step_track(times, switches, list(np.where(centre, 0, rng.normal(0, 0.12, len(switches)))), 0.05, 0.0)
    gaze_pitch = bh.step_track(times, switches, list(np.where(centre, 0, rng.normal(-0.02, 0.06, len(switches)))), 0.05, 0.0)
    for side, sign in (("Left", 1), ("Right", -1)):
        expr[:, idx[f"eyeLookOut{side}"]] += np.clip(sign * gaze_yaw / 0.4, 0, 1)
        expr[:, idx[f"eyeLookIn{side}"]] += np.clip(-sign * gaze_yaw / 0.4, 0, 1)
        expr[:, idx[f"eyeLookUp{side}"]] += np.clip(gaze_pitch / 0.3, 0, 1)
        expr[:, idx[f"eyeLookDown{side}"]] += np.clip(-gaze_pitch / 0.3, 0, 1)

    # 4. head and body rotation vectors (body frame: x nod, y tilt, z turn)
    rot = {j: np.zeros((n, 3)) for j in POSE_JOINTS}
    sway = 0.4 + 0.6 * talk_env
    head = np.stack([bh.smooth_noise(rng, n, fps, 1.5, 0.03), bh.smooth_noise(rng, n, fps, 2.0, 0.03),
                     bh.smooth_noise(rng, n, fps, 2.0, 0.06)], 1) * sway[:, None]
    for a in accents:
        head[:, 0] += rng.uniform(0.02, 0.07) * bh.bump(times, a, 0.12, 0.35)
    rot["neck"], rot["head"] = 0.4 * head, 0.6 * head
    breath = np.sin(2 * np.pi * rng.uniform(0.2, 0.3) * times + rng.uniform(0, 2 * np.pi))
    rot["spine"] = np.stack([bh.smooth_noise(rng, n, fps, 3.0, 0.015) + 0.006 * breath,
                             bh.smooth_noise(rng, n, fps, 3.0, 0.012), bh.smooth_noise(rng, n, fps, 3.0, 0.015)], 1)
    for side, sign in (("l", 1), ("r", -1)):
        rot[f"clavicle_{side}"][:, 1] = sign * (0.01 * breath + bh.smooth_noise(rng, n, fps, 2.0, 0.005))
    style = str(rng.choice(["none", "left", "right", "both"], p=[0.25, 0.2, 0.3, 0.25]))
    hands = np.zeros((n, 6))
    for k, side in enumerate(("l", "r")):
        gesturing = style == "both" or style == {"l": "left", "r": "right"}[side]
        beats = np.zeros(n)
        if gesturing:
            for a in accents:
                if rng.random() < 0.7:
                    beats += rng.uniform(0.5, 1.0) * bh.bump(times, a - 0.05, 0.15, 0.3)
        lift = (talk_env * rng.uniform(0.15, 0.4) if gesturing else 0.0) + 0.15 * beats
        rot[f"elbow_{side}"][:, 0] = -lift - np.abs(bh.smooth_noise(rng, n, fps, 2.0, 0.02))
        rot[f"shoulder_{side}"][:, 0] = -0.35 * lift + bh.smooth_noise(rng, n, fps, 2.5, 0.015)
        rot[f"shoulder_{side}"][:, 1] = (1 if side == "l" else -1) * 0.2 * lift
        rot[f"wrist_{side}"][:, 0] = 0.1 * beats + bh.smooth_noise(rng, n, fps, 1.0, 0.03)
        hands[:, 3 * k] = 0.5 - (0.4 * talk_env + 0.2 * beats if gesturing else 0) + bh.smooth_noise(rng, n, fps, 2.0, 0.05)
        hands[:, 3 * k + 1] = 0.2 + 0.3 * beats
        hands[:, 3 * k + 2] = 0.3 + bh.smooth_noise(rng, n, fps, 2.0, 0.05)

    motion = np.zeros((n, MOTION_DIM), np.float32)
    motion[:, EXPRESSION] = np.clip(expr, 0, 1)
    rotvec = torch.as_tensor(np.stack([rot[j] for j in POSE_JOINTS], 1))  # (T, J, 3)
    motion[:, POSE] = axis_angle_to_rotation_6d(rotvec).reshape(n, -1).numpy()
    motion[:, GAZE] = np.stack([gaze_yaw, gaze_pitch], 1)
    motion[:, BLINK] = blink[:, None]
    motion[:, HANDS] = np.clip(hands, -1, 1)

    # 5. augment the audio the model will hear
    wave = clean * 10 ** (rng.uniform(-12, 6) / 20)
    wave = lfilter([1, -rng.uniform(-0.6, 0.6)], [1], wave)  # spectral tilt
    speech_rms = np.sqrt(np.mean(wave[np.abs(wave) > 1e-4] ** 2)) if (np.abs(wave) > 1e-4).any() else 0.01
    noise = lfilter([1], [1, -rng.uniform(0, 0.95)], rng.normal(0, 1, len(wave)))
    noise *= speech_rms * 10 ** (-rng.uniform(25, 60) / 20) / (noise.std() + 1e-12)
    wave = wave + noise
    wave = (wave / max(1.0, np.abs(wave).max() / 0.99)).astype(np.float32)
    meta = {"voice": voice_name, "language": language or voice, "rate": rate, "pitch": pitch,
            "text": " ".join(texts), "gesture": style, "seconds": round(duration, 3)}
    return {"waveform": wave, "motion": motion, "reference": reference.astype(np.float32), "meta": meta}


def build_corpus(
    out, *, clips: int | None = None, hours: float | None = None, seed: int = 0, fps: float = 25.0,
    val_fraction: float = 0.05, progress=None,
) -> dict:
    """Write a motion dataset (dataset.py format) of `clips` clips or about `hours` hours to `out`.

    Clip i is made from the generator seeded by (seed, i), so the corpus is reproducible and a
    clip already on disk (from an interrupted run with the same seed) is kept, not redone.
    """
    from pathlib import Path

    from vlogger_cli.motion.dataset import write_clip, write_index

    if (clips is None) == (hours is None):
        raise ValueError("give exactly one of clips / hours")
    out = Path(out)
    entries, total, i = [], 0.0, 0
    while (clips is not None and i < clips) or (hours is not None and total < hours * 3600):
        rng = np.random.default_rng([seed, i])
        clip_id = f"clip{i:06d}"
        split = "val" if rng.random() < val_fraction else "train"
        clip = make_clip(rng, fps)
        write_clip(out, clip_id, clip["waveform"], clip["motion"], clip["reference"], fps)
        entries.append({"id": clip_id, "split": split, "frames": int(clip["motion"].shape[0]), **clip["meta"]})
        total += clip["meta"]["seconds"]
        i += 1
        if progress:
            progress(i, total)
    if not any(e["split"] == "val" for e in entries) and len(entries) > 1:
        entries[-1]["split"] = "val"  # always keep one validation clip
    write_index(out, fps, entries, seed=seed, source="synthetic espeak-ng corpus (vlogger_cli.motion.corpus)")
    return {"clips": len(entries), "seconds": total}
