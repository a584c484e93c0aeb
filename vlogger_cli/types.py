"""Hand-off dataclasses between stages (DESIGN.md "data flow").

Each stage takes and returns these; stage code never reaches into another stage's internals.
numpy arrays, not tensors, so a hand-off can be saved and loaded without torch semantics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 16_000
"""Every waveform inside the pipeline is 16 kHz mono float32 in [-1, 1]."""


@dataclass(frozen=True)
class AudioFeatures:
    """Speech, resampled, and its per-video-frame features (exactly one feature row per video frame).

    waveform: (S,) float32, 16 kHz mono.
    mel:      (T, n_mels) float32 log-mel (dB, clipped to an 80 dB range) at the video frame rate.
    energy:   (T,) float32 RMS loudness per frame, linear, the envelope the motion stage and plots use.
    fps:      video frames per second; T == round(duration * fps).
    """

    waveform: np.ndarray
    mel: np.ndarray
    energy: np.ndarray
    fps: float
    sample_rate: int = SAMPLE_RATE
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.mel.shape[0])

    @property
    def duration(self) -> float:
        return float(self.waveform.shape[0]) / self.sample_rate
