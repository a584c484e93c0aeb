"""Speech and audio: load any recording, speak text, and compute per-video-frame features.

    waveform = load_audio("speech.m4a")               # (S,) float32, 16 kHz mono, in [-1, 1]
    features = compute_features(waveform, fps=25)     # mel (T, 80) dB, energy (T,), T = round(dur*fps)
    synthesize_speech("Hello.", "hello.wav", voice="gmw/en-us", rate=170)
"""

from vlogger_cli.audio.features import compute_features, frame_count
from vlogger_cli.audio.load import SILENCE_PEAK_DBFS, load_audio, write_wav
from vlogger_cli.audio.tts import list_voices, resolve_voice, synthesize_speech

__all__ = [
    "SILENCE_PEAK_DBFS",
    "compute_features",
    "frame_count",
    "list_voices",
    "load_audio",
    "resolve_voice",
    "synthesize_speech",
    "write_wav",
]
