"""Non-verbal behaviour of the synthetic corpus: smooth random processes and prosody-timed events.

Everything returns arrays on the video-frame grid `times` (seconds). The corpus (corpus.py) ties them
to the speech: accents (loud word onsets) trigger head nods, brow raises and beat gestures; pauses
(phrase boundaries) attract blinks and gaze shifts; the amount of sway follows whether one is talking.
"""

from __future__ import annotations

import numpy as np


def smooth_noise(rng: np.random.Generator, n: int, fps: float, tau: float, sigma: float) -> np.ndarray:
    """(n,) Ornstein-Uhlenbeck noise (time scale tau s) passed through one more pole: C1-smooth, std ≈ sigma."""
    a = float(np.exp(-1.0 / (fps * tau)))
    drive = rng.normal(0, sigma * np.sqrt(1 - a * a), n)
    state = smooth = rng.normal(0, sigma)
    y = np.empty(n)
    for i in range(n):
        state = a * state + drive[i]
        smooth = a * smooth + (1 - a) * state
        y[i] = smooth
    return y * (1 + a) / np.sqrt(1 + a * a)  # Var(smooth) = sigma² (1 + a²) / (1 + a)²


def bump(times: np.ndarray, onset: float, rise: float, fall: float) -> np.ndarray:
    """(T,) a raised-cosine pulse: 0 before `onset`, 1 at onset+rise, back to 0 at onset+rise+fall."""
    t = times - onset
    up = 0.5 - 0.5 * np.cos(np.pi * np.clip(t / rise, 0, 1))
    down = 0.5 + 0.5 * np.cos(np.pi * np.clip((t - rise) / fall, 0, 1))
    return np.where(t <= rise, up, down) * (t >= 0)


def step_track(times: np.ndarray, switch_times: list[float], values: list[float], ramp: float, start: float) -> np.ndarray:
    """(T,) piecewise-constant track moving to values[i] at switch_times[i] with a smoothstep ramp (saccades)."""
    out = np.full(len(times), start, dtype=np.float64)
    current = start
    for t0, v in sorted(zip(switch_times, values)):
        s = np.clip((times - t0) / ramp, 0, 1)
        s = s * s * (3 - 2 * s)
        out = np.where(times >= t0, current + (v - current) * s, out)
        current = v
    return out


def poisson_times(rng: np.random.Generator, rate: float, duration: float) -> list[float]:
    """Event times of a Poisson process with `rate` per second on [0, duration)."""
    times, t = [], rng.exponential(1 / rate)
    while t < duration:
        times.append(float(t))
        t += rng.exponential(1 / rate)
    return times


def thin(times: list[float], min_gap: float) -> list[float]:
    """Drop events closer than min_gap to the previous kept one."""
    kept: list[float] = []
    for t in sorted(times):
        if not kept or t - kept[-1] >= min_gap:
            kept.append(t)
    return kept


def envelope(active: np.ndarray, fps: float, attack: float, release: float) -> np.ndarray:
    """(T,) 0..1 follower of a boolean track: rises with time constant `attack`, decays with `release` (s)."""
    up, down = np.exp(-1 / (fps * attack)), np.exp(-1 / (fps * release))
    out = np.zeros(len(active))
    v = 0.0
    for i, a in enumerate(active):
        target = 1.0 if a else 0.0
        k = up if target > v else down
        v = k * v + (1 - k) * target
        out[i] = v
    return out


def silent_runs(active: np.ndarray, fps: float, min_seconds: float) -> list[tuple[int, int]]:
    """[(start, stop)) frame runs where `active` is False for at least min_seconds."""
    runs, start = [], None
    for i, a in enumerate(list(active) + [True]):
        if not a and start is None:
            start = i
        elif a and start is not None:
            if (i - start) / fps >= min_seconds:
                runs.append((start, i))
            start = None
    return runs
