"""Lip sync: do the lips move with *this* speech, and how far apart are sound and picture?

No package here ships SyncNet's weights (the paper's LSE-C/LSE-D), so the measure is built from what
is at hand: the mouth opening from FaceMesh and the speech's spectrum.

1. mouth opening per frame: the mean of five vertical inner-lip distances, divided by the distance of
   the outer eye corners (so it does not change with the face's size in the picture).
2. speech per frame: `audio.features.compute_features`' log-mel at the video's frame rate, pooled to
   BANDS bands.
3. score at lag L: how well the mouth opening is *predicted* from the speech L frames later, by a ridge
   regression (one weight per band) fitted on 4/5 of the video and tested on the other 1/5, five times:
   the correlation between the held-out predictions and the measured opening (Pearson r). Held out, so
   unrelated speech scores ~0 however many bands there are, and the regression learns how this face's
   mouth follows this voice's spectrum. (Measured on the corpus, first 20 s of each clip against 6 other
   clips' speech: this score picks the clip's own speech 84 % of the time, a plain correlation of opening
   and 300-3000 Hz loudness 85 %, the same with ±2 frames of spectral context 79 %.)
4. best lag: the lag in ±MAX_LAG_S with the highest score, refined between frames by a parabola
   through the peak; `offset_ms` > 0 means the sound comes after the lips.
5. specificity: the same best score for *controls*, speech that does not belong to the video. The
   controls shipped with every measurement are the video's own speech shifted in time (circularly) by
   CONTROL_SHIFTS amounts spread between 1 s and the clip's length minus 1 s: the same voice, loudness
   and rhythm, out of step with the lips. `--control FILE` adds recordings of other speech (looped or cut
   to the video's length). The matched speech should beat every control: `specificity` is the fraction
   it beats, `margin` its lead over the best control.
"""

from __future__ import annotations

import numpy as np

from vlogger_cli.eval.group import not_available

MOUTH_PAIRS = ((82, 87), (13, 14), (312, 317), (81, 178), (311, 402))
"""FaceMesh inner-lip point pairs (upper, lower) across the mouth: left, middle, right."""
EYE_CORNERS = (33, 263)
BANDS = 20
MAX_LAG_S = 0.5
FOLDS = 5
RIDGE = 0.1
"""Ridge strength per training frame on standardised bands: small enough to follow 20 bands, large enough
that a 4 s clip (80 training frames) does not fit noise."""
CONTROL_SHIFTS = 8
MIN_SECONDS = 2.0
"""Shorter videos give too few frames per fold for a held-out score."""
SPEECH_BAND_HZ = (300.0, 3000.0)
"""Bands summed into the loudness curve of the plot (where speech has its energy)."""


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """(T,) mouth opening in units of the outer-eye-corner distance from (T, 478, 2|3) points; NaN without
    a face."""
    pts = np.asarray(points, dtype=np.float64)[..., :2]
    gaps = [np.linalg.norm(pts[:, a] - pts[:, b], axis=-1) for a, b in MOUTH_PAIRS]
    eyes = np.linalg.norm(pts[:, EYE_CORNERS[0]] - pts[:, EYE_CORNERS[1]], axis=-1)
    return np.mean(gaps, axis=0) / eyes


def speech_bands(waveform: np.ndarray, fps: float, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """((num_frames, BANDS) log band power, (BANDS,) band centre frequencies in Hz) of 16 kHz speech at the
    video's frame rate; cut, or padded with the quietest frame, to `num_frames`."""
    import librosa

    from vlogger_cli.audio.features import MEL_FMAX, MEL_FMIN, compute_features

    features = compute_features(waveform, fps)
    mel_db = features.mel  # (T, 80) dB
    n_mels = mel_db.shape[1]
    power = 10.0 ** (mel_db / 10.0)
    groups = np.array_split(np.arange(n_mels), BANDS)
    bands = np.stack([np.log(power[:, g].mean(axis=1) + 1e-10) for g in groups], axis=1)
    centres = librosa.mel_frequencies(n_mels=n_mels, fmin=MEL_FMIN, fmax=MEL_FMAX)
    band_hz = np.array([centres[g].mean() for g in groups])
    if len(bands) < num_frames:
        quiet = bands[np.argmin(bands.sum(axis=1))]
        bands = np.concatenate([bands, np.repeat(quiet[None], num_frames - len(bands), axis=0)])
    return bands[:num_frames], band_hz


def loudness(bands: np.ndarray, band_hz: np.ndarray) -> np.ndarray:
    """(T,) speech-band loudness in dB from `speech_bands`' output (for plots)."""
    keep = (band_hz >= SPEECH_BAND_HZ[0]) & (band_hz <= SPEECH_BAND_HZ[1])
    return 10.0 * np.log10(np.exp(bands[:, keep]).sum(axis=1) + 1e-10)


def held_out_score(mouth: np.ndarray, bands: np.ndarray, folds: int = FOLDS) -> float:
    """Pearson r between `mouth` (T,) and its ridge prediction from `bands` (T, B), each fold predicted by
    a model fitted on the other folds (contiguous folds: neighbouring frames are alike)."""
    num = len(mouth)
    predicted = np.empty(num)
    for held in np.array_split(np.arange(num), folds):
        train = np.ones(num, bool)
        train[held] = False
        mean, std = bands[train].mean(axis=0), bands[train].std(axis=0) + 1e-6
        x = (bands[train] - mean) / std
        y = mouth[train] - mouth[train].mean()
        weights = np.linalg.solve(x.T @ x + RIDGE * train.sum() * np.eye(x.shape[1]), x.T @ y)
        predicted[held] = (bands[held] - mean) / std @ weights + mouth[train].mean()
    if predicted.std() < 1e-12 or mouth.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(predicted, mouth)[0, 1])


def lag_scores(mouth: np.ndarray, bands: np.ndarray, max_lag: int) -> np.ndarray:
    """(2 max_lag + 1,) held-out scores of the speech shifted by -max_lag .. +max_lag frames (lag L pairs
    frame t with the speech of frame t + L; the ends repeat the first / last speech frame). Frames without
    a face are left out."""
    face = np.isfinite(mouth)
    index = np.arange(len(mouth))
    scores = []
    for lag in range(-max_lag, max_lag + 1):
        shifted = bands[np.clip(index + lag, 0, len(bands) - 1)]
        scores.append(held_out_score(mouth[face], shifted[face]))
    return np.asarray(scores)


def best_lag(scores: np.ndarray) -> tuple[float, float]:
    """(lag in frames, refined between frames by a parabola through the peak; the peak score)."""
    peak = int(np.argmax(scores))
    max_lag = (len(scores) - 1) // 2
    lag = float(peak - max_lag)
    if 0 < peak < len(scores) - 1:
        left, mid, right = scores[peak - 1], scores[peak], scores[peak + 1]
        curvature = left - 2 * mid + right
        if curvature < 0:
            lag += float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
    return lag, float(scores[peak])


def shifted_controls(bands: np.ndarray, fps: float, count: int = CONTROL_SHIFTS) -> list[tuple[str, np.ndarray]]:
    """The shipped controls: `bands` rolled in time by `count` amounts between 1 s and the length - 1 s."""
    num = len(bands)
    lo, hi = int(round(fps)), num - int(round(fps))
    if hi < lo:
        return []
    shifts = sorted({int(s) for s in np.linspace(lo, hi, count).round()})
    return [(f"own speech shifted {s / fps:.1f} s", np.roll(bands, s, axis=0)) for s in shifts]


def fit_length(bands: np.ndarray, num_frames: int) -> np.ndarray:
    """`bands` looped or cut to `num_frames` rows (a control recording of another length)."""
    repeats = int(np.ceil(num_frames / len(bands)))
    return np.tile(bands, (repeats, 1))[:num_frames]


def lip_sync_metrics(mouth: np.ndarray, bands: np.ndarray | None, fps: float,
                     controls: list[tuple[str, np.ndarray]] | None = None, *,
                     no_audio_reason: str = "no speech") -> tuple[dict, dict]:
    """The lip_sync group and its series from the mouth opening (T,) and the matched speech's bands (T, B)
    (None: no speech; every metric is then n/a with `no_audio_reason`). `controls` adds named (T', B)
    band arrays of unrelated speech to the shipped shifted controls."""
    keys = ("score", "offset_ms", "lag_frames", "score_at_zero", "control_best", "specificity", "margin")
    group: dict = {"reasons": {}, "controls": 0}
    series = {"mouth_opening": mouth}
    face_frames = int(np.isfinite(mouth).sum())
    if bands is None:
        return not_available(group, keys, no_audio_reason), series
    if face_frames < MIN_SECONDS * fps:
        return not_available(group, keys, f"needs {MIN_SECONDS:g} s of frames with a face"), series
    max_lag = int(round(MAX_LAG_S * fps))
    scores = lag_scores(mouth, bands, max_lag)
    lag, score = best_lag(scores)
    group.update(score=score, lag_frames=lag, offset_ms=1000.0 * lag / fps, score_at_zero=float(scores[max_lag]),
                 lag_scores=[float(s) for s in scores])  # lags -max_lag .. +max_lag

    all_controls = shifted_controls(bands, fps) + [(name, fit_length(b, len(mouth))) for name, b in controls or []]
    group["controls"] = len(all_controls)
    if not all_controls:
        not_available(group, ["control_best", "specificity", "margin"],
                      "the video is too short for shifted controls: pass --control SPEECH")
        return group, series
    control_scores = [best_lag(lag_scores(mouth, b, max_lag))[1] for _, b in all_controls]
    group["control_best"] = float(max(control_scores))
    group["specificity"] = float(np.mean(np.asarray(control_scores) < score))
    group["margin"] = score - group["control_best"]
    group["control_scores"] = {name: s for (name, _), s in zip(all_controls, control_scores)}
    return group, series
