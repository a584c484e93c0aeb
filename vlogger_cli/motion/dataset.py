"""The motion dataset on disk (format documented in weights/README.md, "Motion dataset").

    DIR/index.json                      {"format": "vlogger-motion-dataset", "version": 1, "fps": 25,
                                         "channels": [...127 names...], "clips": [{id, split, frames, ...}]}
    DIR/clips/<id>.wav                  the speech, 16 kHz mono PCM-16
    DIR/clips/<id>.motion.safetensors   tensors `motion` (T, 127) float32 and `reference` (118,) float32,
                                        metadata fps / names (same file format as a job's motion.safetensors)

The synthetic corpus writes it (corpus.py), and `vlogger train prepare-videos` the same from tracked real
videos (prepare.py).
Audio features are not stored: they are recomputed from the wav with the pipeline's own feature code,
so training and inference can never disagree about them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlogger_cli.errors import InputError
from vlogger_cli.io import atomic_path, atomic_save_safetensors, atomic_write_json
from vlogger_cli.motion.representation import CHANNEL_NAMES, MOTION_DIM, REFERENCE_DIM
from vlogger_cli.types import SAMPLE_RATE, AudioFeatures

FORMAT = "vlogger-motion-dataset"
VERSION = 1


@dataclass
class Clip:
    id: str
    split: str  # "train" or "val"
    motion: np.ndarray  # (T, D)
    reference: np.ndarray  # (R,)
    features: AudioFeatures


def compute_features(waveform: np.ndarray, fps: float) -> AudioFeatures:
    """The pipeline's own audio features (vlogger_cli.audio), so training sees what inference sees."""
    from vlogger_cli.audio import compute_features as pipeline_features

    return pipeline_features(np.asarray(waveform, np.float32), fps, n_mels=80)


def write_index(root: Path, fps: float, clips: list[dict], **extra) -> None:
    atomic_write_json(
        root / "index.json",
        {"format": FORMAT, "version": VERSION, "fps": fps, "channels": list(CHANNEL_NAMES), "clips": clips, **extra},
    )


def write_clip(root: Path, clip_id: str, waveform: np.ndarray, motion: np.ndarray, reference: np.ndarray, fps: float) -> None:
    """Write one clip's wav and motion file atomically (the index is written last, by the caller)."""
    import soundfile as sf

    clips = root / "clips"
    with atomic_path(clips / f"{clip_id}.wav") as tmp:
        sf.write(str(tmp), np.clip(waveform, -1, 1), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    atomic_save_safetensors(
        clips / f"{clip_id}.motion.safetensors",
        {"motion": np.ascontiguousarray(motion, np.float32), "reference": np.ascontiguousarray(reference, np.float32)},
        {"fps": str(fps), "names": ",".join(CHANNEL_NAMES)},
    )


def read_index(root: str | Path) -> dict:
    root = Path(root)
    path = root / "index.json"
    if not path.is_file():
        raise InputError(f"{root} is not a motion dataset (no index.json): build one with `vlogger train synth-corpus --out {root}`")
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT or index.get("version") != VERSION:
        raise InputError(f"{path}: not a {FORMAT} v{VERSION} index; rebuild the dataset")
    if tuple(index["channels"]) != CHANNEL_NAMES:
        raise InputError(f"{path}: motion channels differ from this vlogger's layout; rebuild the dataset")
    return index


def load_clips(root: str | Path, split: str | None = None) -> list[Clip]:
    """Every clip (of `split`), with audio features computed at the dataset's fps."""
    import soundfile as sf
    from safetensors.numpy import load_file

    root = Path(root)
    index = read_index(root)
    fps = float(index["fps"])
    out = []
    for entry in index["clips"]:
        if split is not None and entry["split"] != split:
            continue
        wav, sr = sf.read(str(root / "clips" / f"{entry['id']}.wav"), dtype="float32")
        if sr != SAMPLE_RATE or wav.ndim != 1:
            raise InputError(f"{root}/clips/{entry['id']}.wav: need 16 kHz mono audio")
        tensors = load_file(str(root / "clips" / f"{entry['id']}.motion.safetensors"))
        motion, reference = tensors["motion"], tensors["reference"]
        if motion.shape[1] != MOTION_DIM or reference.shape != (REFERENCE_DIM,):
            raise InputError(f"{root}/clips/{entry['id']}: motion or reference has the wrong width")
        feats = compute_features(wav, fps)
        n = min(feats.num_frames, len(motion))
        feats = AudioFeatures(feats.waveform, feats.mel[:n], feats.energy[:n], fps)
        out.append(Clip(entry["id"], entry["split"], motion[:n], reference, feats))
    return out
