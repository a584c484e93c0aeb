"""Per-video-frame audio features: a log-mel spectrogram and an RMS loudness envelope.

VLOGGER conditions its motion generator on audio features sampled at the video frame rate, one
row per generated frame. The video frame rate need not divide the sample rate (16000 / 30 =
533.3 samples, 16000 / 29.97 = 533.9), so an integer STFT hop at "the frame rate" drifts: at
30 fps with a hop of 533 samples the features run ~1 frame ahead of the video after a minute.

Method (exact for any fps): video frame k covers [k / fps, (k + 1) / fps) seconds.
  * energy[k] is the RMS of exactly the samples in that interval.
  * mel[k] is the mean mel power of the 10 ms STFT frames whose centres fall in that interval
    (a box average; a frame rate above 100 fps, whose interval can hold no centre, takes the
    nearest STFT frame), converted to dB afterwards.
Both therefore use the same frame boundaries, computed from k / fps directly, with no
accumulated rounding.
"""

from __future__ import annotations

import math

import numpy as np

from vlogger_cli.types import SAMPLE_RATE, AudioFeatures

MEL_HOP = 160
"""10 ms at 16 kHz: fine enough that every frame at <= 100 fps averages at least one STFT frame."""
MEL_WIN = 400
"""25 ms analysis window, the usual speech setting (phonemes are ~50-200 ms)."""
MEL_NFFT = 512
MEL_FMIN = 20.0
MEL_FMAX = SAMPLE_RATE / 2
TOP_DB = 80.0
"""dynamic range kept below the loudest mel bin; quieter bins are clipped to max - 80 dB."""
AMIN = 1e-10
"""power floor before the log (-100 dB), so digital silence is finite."""


def frame_count(num_samples: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Number of video frames for `num_samples` of audio: round(duration * fps).

    Every stage that counts video frames for a clip must use this, so the features, the motion
    and the rendered video agree to the frame.
    """
    return int(round(num_samples / sample_rate * fps))


def compute_features(waveform: np.ndarray, fps: float, *, n_mels: int = 80) -> AudioFeatures:
    """Log-mel and RMS energy with exactly `frame_count(len(waveform), fps)` rows.

    waveform: (S,) float32, `SAMPLE_RATE` Hz mono (as `load_audio` returns).
    Returns `AudioFeatures` with mel (T, n_mels) float32 dB in [max - 80, max] and energy (T,)
    float32 linear RMS.
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1 or waveform.shape[0] == 0:
        raise ValueError(f"compute_features needs a non-empty (S,) waveform, got {waveform.shape}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    num_frames = frame_count(waveform.shape[0], fps)
    if num_frames == 0:
        raise ValueError(f"{waveform.shape[0]} samples make no frame at {fps} fps")

    # Sample index where each video frame starts: the first n with n / sr >= k / fps.
    # (T + 1,), clamped to the signal, so frame k is samples [edges[k], edges[k + 1]).
    edges = np.ceil(np.arange(num_frames + 1) * (SAMPLE_RATE / fps) - 1e-9).astype(np.int64)
    edges = np.minimum(edges, waveform.shape[0])

    energy = _box_rms(waveform, edges)  # (T,)
    mel_power = _mel_power(waveform, n_mels)  # (F, n_mels) at a 10 ms hop
    mel_db = _power_to_db(_pool_to_frames(mel_power, fps, num_frames))  # (T, n_mels)

    return AudioFeatures(
        waveform=waveform,
        mel=mel_db.astype(np.float32),
        energy=energy.astype(np.float32),
        fps=float(fps),
        meta={
            "mel": f"{n_mels}-bin log-mel dB (ref 1.0, top_db {TOP_DB:g}), {MEL_WIN}-sample window, "
            f"{MEL_HOP}-sample hop, box-averaged over each video frame",
            "energy": "RMS of the samples inside each video frame",
        },
    )


def _box_rms(waveform: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """RMS of waveform[edges[k]:edges[k+1]] for each k. (T + 1,) edges -> (T,)."""
    # Cumulative sum of squares in float64: float32 would lose the quiet frames of a long clip.
    csum = np.concatenate([[0.0], np.cumsum(np.square(waveform, dtype=np.float64))])
    counts = np.diff(edges)
    sums = csum[edges[1:]] - csum[edges[:-1]]
    return np.sqrt(np.maximum(sums, 0.0) / np.maximum(counts, 1))


def _mel_power(waveform: np.ndarray, n_mels: int) -> np.ndarray:
    """Mel power spectrogram at a 10 ms hop, frames centred on t = i * 10 ms. -> (F, n_mels)."""
    import librosa  # heavy import (numba); only feature extraction needs it

    mel = librosa.feature.melspectrogram(
        y=waveform,
        sr=SAMPLE_RATE,
        n_fft=MEL_NFFT,
        hop_length=MEL_HOP,
        win_length=MEL_WIN,
        window="hann",
        center=True,  # frame i is centred on sample i * hop, which the pooling below relies on
        pad_mode="constant",  # zeros, not reflections: the edges must not invent speech
        power=2.0,
        n_mels=n_mels,
        fmin=MEL_FMIN,
        fmax=MEL_FMAX,
    )  # (n_mels, F)
    return mel.T


def _pool_to_frames(fine: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
    """Average the rows of `fine` ((F, D), row i centred at i * hop) into video frames. -> (T, D)."""
    centres = np.arange(fine.shape[0]) * (MEL_HOP / SAMPLE_RATE)  # seconds
    rows = np.floor(centres * fps + 1e-9).astype(np.int64)  # video frame of each STFT frame
    keep = rows < num_frames  # centres past the last video frame (under half a frame) are dropped
    rows, fine_kept = rows[keep], fine[keep].astype(np.float64)

    sums = np.zeros((num_frames, fine.shape[1]))
    np.add.at(sums, rows, fine_kept)
    counts = np.bincount(rows, minlength=num_frames)
    pooled = sums / np.maximum(counts, 1)[:, None]

    empty = np.flatnonzero(counts == 0)
    if empty.size:
        # Only above 100 fps: a frame shorter than the hop may hold no centre; take the STFT frame
        # nearest to the video frame's centre.
        nearest = np.rint((empty + 0.5) / fps * SAMPLE_RATE / MEL_HOP).astype(np.int64)
        pooled[empty] = fine[np.minimum(nearest, fine.shape[0] - 1)]
    return pooled


def _power_to_db(power: np.ndarray) -> np.ndarray:
    """10 log10(power) against full scale (ref 1.0), clipped to `TOP_DB` below the maximum."""
    db = 10.0 * np.log10(np.maximum(power, AMIN))
    return np.maximum(db, db.max() - TOP_DB)
