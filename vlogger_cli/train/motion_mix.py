"""Mixed stage-1 training data: `vlogger train motion --data A --data B:WEIGHT` (e.g. the synthetic espeak-ng
corpus + motion tracked from real talking videos, `vlogger train prepare-videos`).

The synthetic corpus holds hours of speech, a real corpus minutes; drawn by length alone (WindowSampler) the real
clips would be a few windows in a hundred. Each dataset keeps its own WindowSampler (clips by length within it);
every batch splits its windows among the datasets by a multinomial draw with the weights, as the stage-2 mixing
does (video_mix.py). One dataset is sampled exactly as before (its sampler alone, the same random stream).
The normalisation is fitted on all training clips together: one motion space for every dataset.

`tracked_mouth_weight` (TrainMotionConfig): the loss weight of the jaw and mouth channels on windows of datasets
made from tracked video (`prepare-videos`). Tracked lips are noisy next to the synthetic corpus' phoneme-timed
targets (on the corpus, tracked jawOpen follows loudness at Pearson ~0.2, the synthetic targets at ~0.9), while
tracked heads, gaze and blinks are what only real footage has. 0 learns the mouth from the synthetic corpus
and the rest from both.

`tracked_mouth_teacher`: > 0 gives those jaw and mouth channels of tracked windows a target after all: what the
model the run starts from (`init`, frozen) predicts from the same noisy input, with this weight ("learning without
forgetting", motion/diffusion.diffusion_loss). With the mouth merely left out (weight 0), real speech only ever
trains the head: the shared layers drift on real voices, and lip sync on held-out real speech fell in proportion
to the head motion gained (docs/REAL-VIDEO.md); the teacher holds the mouth where it was on those voices.

`synthetic_head_weight`: the same the other way round, for the neck and head rotations of the datasets NOT made
from tracked video, when a tracked one is in the mix. The synthetic corpus' head is a procedural process
(motion/behaviour.py: prosody-timed nods over smooth noise, ~2.1° of rotation std over 5 s); trained on both, the
model's heads land between it and real footage's (~5° on the corpus). 0 learns the head from real footage only.

`head_weight`: a loss weight of the neck and head rotations on every dataset (on top of the two above). Within a
clip the head channels move ~0.5 normalised units (their global std holds the offsets between clips), so their
errors weigh little next to the face's; with weight 1 the model's heads come out about half as lively as its
targets (TrainMotionConfig.head_weight).
"""

from __future__ import annotations

import numpy as np
import torch

from vlogger_cli.errors import InputError
from vlogger_cli.motion.dataset import load_clips, read_index
from vlogger_cli.motion.representation import Normalization
from vlogger_cli.train.data_specs import data_specs


class MixedWindowSampler:
    """Windows from several WindowSamplers in fixed proportions; `drawn[k]`: windows taken from dataset k."""

    def __init__(self, samplers: list, weights: list[float]):
        if len(samplers) != len(weights) or not samplers:
            raise ValueError("one weight per sampler")
        self.samplers = samplers
        self.p = np.asarray(weights, np.float64) / float(np.sum(weights))
        self.drawn = np.zeros(len(samplers), np.int64)

    def batch(self, rng: np.random.Generator, size: int):
        """(motion, audio, reference, valid, channel weights) as WindowSampler.batch, dataset k's windows in a block."""
        if len(self.samplers) == 1:
            self.drawn[0] += size
            return self.samplers[0].batch(rng, size)
        counts = rng.multinomial(size, self.p)
        self.drawn += counts
        parts = [s.batch(rng, int(c)) for s, c in zip(self.samplers, counts) if c]
        return tuple(torch.cat(items) for items in zip(*parts))


TRACKED_SOURCE = "tracked videos"
"""How prepare-videos' index.json names its source (motion/prepare.py)."""


def mouth_channels() -> list[int]:
    """The motion channels of the jaw and the mouth (ARKit jaw*, mouth*)."""
    from vlogger_cli.motion.representation import ARKIT_NAMES

    return [i for i, name in enumerate(ARKIT_NAMES) if name.startswith(("jaw", "mouth"))]


def head_channels() -> list[int]:
    """The motion channels of the neck and the head (their 6D rotations)."""
    from vlogger_cli.motion.representation import CHANNEL_NAMES

    return [i for i, name in enumerate(CHANNEL_NAMES) if name.startswith(("neck.", "head."))]


def is_tracked(index: dict) -> bool:
    return str(index.get("source", "")).startswith(TRACKED_SOURCE)


def channel_weights(index: dict, tracked_mouth_weight: float, synthetic_head_weight: float = 1.0,
                    mixed: bool = True, head_weight: float = 1.0) -> np.ndarray | None:
    """(D,) per-channel loss weights of the dataset with this index.json, None for all ones (module docstring).
    mixed: a tracked dataset is in the mix (synthetic_head_weight applies only then: alone, the synthetic corpus
    is the only teacher of the head). head_weight multiplies the neck/head channels of every dataset."""
    from vlogger_cli.motion.representation import MOTION_DIM

    weights = np.ones(MOTION_DIM, np.float32)
    if is_tracked(index):
        weights[mouth_channels()] = tracked_mouth_weight
    elif mixed:
        weights[head_channels()] = synthetic_head_weight
    weights[head_channels()] *= head_weight
    return None if (weights == 1).all() else weights


def teacher_channels(index: dict, tracked_mouth_teacher: float) -> np.ndarray | None:
    """(D,) 1 on the channels whose target is the teacher's prediction on this dataset's windows (the jaw and the
    mouth of tracked video when tracked_mouth_teacher > 0), None for none."""
    from vlogger_cli.motion.representation import MOTION_DIM

    if not (tracked_mouth_teacher and is_tracked(index)):
        return None
    mask = np.zeros(MOTION_DIM, np.float32)
    mask[mouth_channels()] = 1
    return mask


def taught_mask(channels: list, dim: int) -> np.ndarray:
    """(K, D) bool: the channels each dataset teaches (weight > 0)."""
    return np.stack([np.ones(dim, bool) if ch is None else ch > 0 for ch in channels])


def partly_taught(channels: list, dim: int) -> np.ndarray:
    """(D,) bool: the channels some dataset does not teach (weight 0) and another does."""
    taught = taught_mask(channels, dim)
    return ~taught.all(axis=0) & taught.any(axis=0)


def _fit_normalization(train: list, channels: list) -> Normalization:
    """The statistics of all training frames; a channel a dataset does not teach (weight 0) takes its statistics
    from the datasets that do, so their targets keep the scale they were made with."""
    blocks = [np.concatenate([c.motion for c in clips]) for clips in train]
    frames = np.concatenate(blocks)
    norm = Normalization.fit(frames)
    taught = taught_mask(channels, frames.shape[1])
    redo = partly_taught(channels, frames.shape[1])
    if not redo.any():
        return norm
    mask = np.concatenate([np.broadcast_to(t, b.shape) for t, b in zip(taught, blocks)])[:, redo]  # (N, d)
    values = frames[:, redo].astype(np.float64)
    count = mask.sum(axis=0)
    mean = (values * mask).sum(axis=0) / count
    std = np.sqrt((((values - mean) ** 2) * mask).sum(axis=0) / count)
    out_mean, out_std = norm.mean.copy(), norm.std.copy()
    out_mean[redo], out_std[redo] = mean, np.maximum(std, Normalization.STD_FLOOR)
    return Normalization(out_mean, out_std)


def _extend_normalization(given: Normalization, fitted: Normalization, partly: np.ndarray) -> Normalization:
    """A fine-tune's normalisation: the given one (its model's units), except on
    - the channels that never moved in the data it was fitted on (std at the floor) and move in this run's data:
      the synthetic corpus never moves e.g. the brows or head.rot6d.0; real footage does, and at the floor's 0.01
      its values would become targets of 10-20 standard units;
    - the channels only some of this run's datasets teach (`partly`, e.g. the head with synthetic_head_weight 0):
      they are re-learnt from their teachers, in their teachers' units. Real heads turn ~2.5x more than the
      synthetic corpus' heads: in its units their targets have a std far above the unit noise the diffusion
      starts from, and the fine-tuned model's heads came out stiller (0.8-1.0° against 1.7°), not livelier.
    Both take the fitted statistics (which _fit_normalization takes from the teaching datasets)."""
    floor = Normalization.STD_FLOOR * (1 + 1e-6)
    redo = ((given.std <= floor) & (fitted.std > floor)) | partly
    if not redo.any():
        return given
    mean, std = given.mean.copy(), given.std.copy()
    mean[redo], std[redo] = fitted.mean[redo], fitted.std[redo]
    return Normalization(mean, std)


def motion_samplers(data, window: int, *, tracked_mouth_weight: float = 1.0, synthetic_head_weight: float = 1.0,
                    head_weight: float = 1.0, tracked_mouth_teacher: float = 0.0, norm: Normalization | None = None):
    """(normalisation, training sampler, validation sampler, info) over the datasets in `data` (a folder,
    "PATH:WEIGHT" or a list of them). Validation draws from the datasets with a "val" split, with their weights
    (none has one: the first training clip). norm: use this normalisation (a fine-tune's: its model's units)
    instead of fitting one."""
    from vlogger_cli.train.motion import WindowSampler

    specs = data_specs(data)
    indexes = [read_index(path) for path, _ in specs]
    rates = {float(index["fps"]) for index in indexes}
    if len(rates) > 1:
        raise InputError(f"--data: the datasets hold motion at different rates ({', '.join(map(str, sorted(rates)))} fps);"
                         " prepare them at one --fps")
    train = [load_clips(path, "train") for path, _ in specs]
    for (path, _), clips in zip(specs, train):
        if not clips:
            raise InputError(f"--data {path}: the motion dataset has no training clips")
    weights = [w for _, w in specs]
    mixed = any(map(is_tracked, indexes))
    mouth_weight = tracked_mouth_teacher or tracked_mouth_weight  # with a teacher: the weight of its targets
    channels = [channel_weights(index, mouth_weight, synthetic_head_weight, mixed, head_weight) for index in indexes]
    by_teacher = [teacher_channels(index, tracked_mouth_teacher) for index in indexes]
    from_data = [_from_data(c, t) for c, t in zip(channels, by_teacher)]
    fitted = _fit_normalization(train, from_data)
    if norm is None:
        norm = fitted
    else:  # a fine-tune; the teacher's channels stay in its units: its predictions are their targets
        teachers = ~taught_mask([None if t is None else 1 - t for t in by_teacher], len(fitted.mean)).all(axis=0)
        norm = _extend_normalization(norm, fitted, partly_taught(from_data, len(fitted.mean)) & ~teachers)
    held = [(load_clips(path, "val"), w, ch, t) for (path, w), ch, t in zip(specs, channels, by_teacher)]
    held = [h for h in held if h[0]] or [(train[0][:1], 1.0, channels[0], by_teacher[0])]
    info = {"train_clips": sum(map(len, train)), "val_clips": sum(len(h[0]) for h in held),
            "data": [{"path": str(path), "weight": w} for path, w in specs]}
    return (norm, MixedWindowSampler([WindowSampler(c, norm, window, ch, t) for c, ch, t in zip(train, channels, by_teacher)],
                                     weights),
            MixedWindowSampler([WindowSampler(c, norm, window, ch, t) for c, _, ch, t in held], [w for _, w, _, _ in held]),
            info)


def _from_data(channels: np.ndarray | None, by_teacher: np.ndarray | None) -> np.ndarray | None:
    """The channel weights as the normalisation sees them: a channel whose target is a teacher's is not taught by
    the data (its statistics come from the datasets that teach it)."""
    if by_teacher is None:
        return channels
    return (np.ones_like(by_teacher) if channels is None else channels) * (1 - by_teacher)
