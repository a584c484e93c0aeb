"""Phonemes -> visemes -> ARKit mouth coefficients, with coarticulation (synthetic corpus labels).

1. Every IPA phoneme espeak-ng reports is reduced to its first base letter (stress ˈˌ, length ː and
   combining diacritics dropped; "tʃ" -> "t" is then overridden by the affricate table) and mapped to
   one of 14 viseme classes (`PHONEME_VISEME`, close to the MPEG-4 / Oculus viseme sets).
2. Each viseme has an ARKit target (`VISEME_TARGETS`), a dominance strength α and a decay rate θ.
3. Coarticulation (Cohen & Massaro 1993): phoneme i, centred at c_i, has dominance
   D_i(t) = α_i · exp(−θ_i · |t − c_i|); the mouth at time t is Σ D_i T_i / Σ D_i. Vowels spread
   further (small θ) than bilabials, which are strong and short so the lips really close.
4. The corpus scales the result by the loudness (`corpus.py`), so silence closes the mouth.
"""

from __future__ import annotations

import unicodedata

import numpy as np

from vlogger_cli.motion.espeak import PhonemeEvent
from vlogger_cli.motion.representation import ARKIT_NAMES

# viseme: ({ARKit name: value}, dominance α, decay θ in 1/s)
VISEME_TARGETS: dict[str, tuple[dict[str, float], float, float]] = {
    "sil": ({}, 1.0, 14.0),
    "PP": ({"mouthClose": 0.5, "mouthPressLeft": 0.4, "mouthPressRight": 0.4, "jawOpen": 0.02}, 3.0, 30.0),
    "FF": ({"mouthRollLower": 0.5, "mouthUpperUpLeft": 0.2, "mouthUpperUpRight": 0.2, "jawOpen": 0.06}, 2.0, 28.0),
    "TH": ({"tongueOut": 0.25, "jawOpen": 0.15}, 1.2, 25.0),
    "DD": ({"jawOpen": 0.16, "mouthStretchLeft": 0.1, "mouthStretchRight": 0.1}, 0.8, 25.0),
    "kk": ({"jawOpen": 0.22, "mouthShrugUpper": 0.1}, 0.7, 25.0),
    "CH": ({"mouthFunnel": 0.45, "mouthPucker": 0.2, "jawOpen": 0.12}, 1.5, 25.0),
    "SS": ({"jawOpen": 0.07, "mouthStretchLeft": 0.3, "mouthStretchRight": 0.3}, 1.2, 28.0),
    "RR": ({"mouthFunnel": 0.25, "mouthPucker": 0.15, "jawOpen": 0.14}, 0.8, 22.0),
    "aa": ({"jawOpen": 0.75, "mouthLowerDownLeft": 0.3, "mouthLowerDownRight": 0.3}, 1.0, 12.0),
    "E": ({"jawOpen": 0.45, "mouthStretchLeft": 0.2, "mouthStretchRight": 0.2,
           "mouthLowerDownLeft": 0.15, "mouthLowerDownRight": 0.15}, 1.0, 12.0),
    "ih": ({"jawOpen": 0.25, "mouthSmileLeft": 0.25, "mouthSmileRight": 0.25,
            "mouthStretchLeft": 0.3, "mouthStretchRight": 0.3}, 1.0, 14.0),
    "oh": ({"jawOpen": 0.5, "mouthFunnel": 0.5, "mouthPucker": 0.3}, 1.0, 12.0),
    "ou": ({"jawOpen": 0.22, "mouthPucker": 0.7, "mouthFunnel": 0.3}, 1.2, 12.0),
}

_GROUPS = {
    "PP": "pbmɓɱ", "FF": "fvʋɸβ", "TH": "θð", "DD": "tdnlɾɬɗɳɭʈɖʎ", "kk": "kgŋxhçχɣɡqɢʔɦħʕcɟɲ",
    "CH": "ʃʒɕʑ", "SS": "sz", "RR": "rɹʁɻʀ",
    "aa": "aɑɐæʌɒɶ", "E": "eɛəɜɚɘɝ", "ih": "iɪyjɨʏ", "oh": "oɔɵœø", "ou": "uʊwʉɯɤ",
}
PHONEME_VISEME: dict[str, str] = {ch: vis for vis, chars in _GROUPS.items() for ch in chars}
AFFRICATES = {"tʃ": "CH", "dʒ": "CH", "ts": "SS", "dz": "SS", "tɕ": "CH", "dʑ": "CH"}
MOUTH_CHANNELS = tuple(sorted({k for targets, _, _ in VISEME_TARGETS.values() for k in targets}))


def viseme_of(phoneme: str) -> str | None:
    """Viseme class of an espeak-ng IPA phoneme; None for markers such as "(en)"; "sil" for pauses."""
    if phoneme.startswith("("):
        return None
    base = "".join(c for c in unicodedata.normalize("NFD", phoneme) if not unicodedata.combining(c))
    base = base.replace("ˈ", "").replace("ˌ", "").replace("ː", "").replace("ˑ", "").strip()
    if not base:
        return "sil"
    for prefix, vis in AFFRICATES.items():
        if base.startswith(prefix):
            return vis
    return PHONEME_VISEME.get(base[0], "DD")  # unknown consonants: a neutral, slightly open mouth


def mouth_track(phonemes: list[PhonemeEvent], times: np.ndarray, end_time: float) -> np.ndarray:
    """(T, 52) ARKit mouth coefficients at `times` (s) from timed phonemes, with coarticulation."""
    keys: list[tuple[float, str]] = []  # (centre, viseme)
    events = [(p.time, viseme_of(p.phoneme)) for p in phonemes]
    events = [(t, v) for t, v in events if v is not None]
    for i, (start, vis) in enumerate(events):
        stop = events[i + 1][0] if i + 1 < len(events) else end_time
        if vis == "sil" and stop - start > 0.12:  # long pause: hold a closed mouth over its whole length
            keys.extend((t, "sil") for t in np.arange(start + 0.04, stop, 0.08))
        else:
            keys.append(((start + stop) / 2, vis))
    out = np.zeros((len(times), len(ARKIT_NAMES)), np.float32)
    if not keys:
        return out
    centres = np.array([c for c, _ in keys])
    alpha = np.array([VISEME_TARGETS[v][1] for _, v in keys])
    theta = np.array([VISEME_TARGETS[v][2] for _, v in keys])
    targets = np.zeros((len(keys), len(ARKIT_NAMES)), np.float32)
    for k, (_, vis) in enumerate(keys):
        for name, value in VISEME_TARGETS[vis][0].items():
            targets[k, ARKIT_NAMES.index(name)] = value
    dom = alpha[None] * np.exp(-theta[None] * np.abs(times[:, None] - centres[None]))  # (T, K)
    dom += 1e-6  # far from every key: neutral, not 0/0
    return (dom @ targets / dom.sum(1, keepdims=True)).astype(np.float32)
