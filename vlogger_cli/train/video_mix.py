"""Mixed stage-2 training data: `vlogger train video|sr --data A --data B:WEIGHT` (e.g. real clips + generated).

Each dataset keeps its own ClipSampler (its clips drawn in proportion to their length, its own cache or pool);
every batch splits its items among the datasets by a multinomial draw with the datasets' weights, so items come
from dataset k with probability weight_k / sum(weights), whatever the datasets' sizes. One dataset is sampled
exactly as before (its sampler alone: the same random stream, the same batches).
"""

from __future__ import annotations


import numpy as np
import torch

from vlogger_cli.errors import InputError
from vlogger_cli.train.data_specs import data_specs, parse_data  # noqa: F401 - parse_data: part of this module's API
from vlogger_cli.train.video_data import Batch, ClipSampler, load_clips
from vlogger_cli.video.controls import resize_frames


class MixedSampler:
    """Batches from several ClipSamplers in fixed proportions (module docstring). `drawn[k]`: items taken
    from sampler k so far."""

    def __init__(self, samplers: list[ClipSampler], weights: list[float]):
        if len(samplers) != len(weights) or not samplers:
            raise ValueError("one weight per sampler")
        self.samplers = samplers
        self.p = np.asarray(weights, np.float64) / float(np.sum(weights))
        self.drawn = np.zeros(len(samplers), np.int64)

    @property
    def clips(self) -> list:
        return [clip for s in self.samplers for clip in s.clips]

    def item(self, clip, start: int, frames: int) -> tuple:
        """One item of `clip` (ClipSampler.item of the dataset it belongs to)."""
        owner = next(s for s in self.samplers if any(c is clip for c in s.clips))
        return owner.item(clip, start, frames)

    def batch(self, rng: np.random.Generator, size: int, frames: int = 1, rows: slice = slice(None)) -> Batch | None:
        """`rows`: load only these items (ClipSampler.batch); None when that is none."""
        if len(self.samplers) == 1:
            self.drawn[0] += size
            return self.samplers[0].batch(rng, size, frames, rows)
        counts = rng.multinomial(size, self.p)
        self.drawn += counts
        lo, hi, _ = rows.indices(size)
        parts, first = [], 0
        for s, c in zip(self.samplers, counts):
            if c:  # dataset k's items are rows first .. first + c of the batch
                part = s.batch(rng, int(c), frames, slice(min(max(lo - first, 0), c), min(max(hi - first, 0), c)))
                parts += [part] if part is not None else []
                first += c
        return concat_batches(parts) if parts else None


def concat_batches(batches: list[Batch]) -> Batch:
    """One Batch of the items of several (references resized to the largest, as ClipSampler's collation)."""
    if len(batches) == 1:
        return batches[0]
    size = max(b.reference.shape[-1] for b in batches)
    return Batch(frames=torch.cat([b.frames for b in batches]), controls=torch.cat([b.controls for b in batches]),
                 reference=torch.cat([b.reference if b.reference.shape[-1] == size else resize_frames(b.reference, size)
                                      for b in batches]),
                 lowres=None if batches[0].lowres is None else torch.cat([b.lowres for b in batches]))


def mixed_samplers(data, config, *, pool: int = 0, refresh: float = 0.25) -> tuple[MixedSampler, MixedSampler, dict]:
    """(training sampler, validation sampler, {"train_clips", "val_clips", "data"}) over the datasets in `data`.

    pool > 0: each dataset gets a resident pool of its share of `pool` clips (at least 1). Validation draws from
    the datasets that have a "val" split, with their weights (none has one: the first training clip)."""
    specs = data_specs(data)
    weights = np.array([w for _, w in specs], np.float64)
    share = weights / weights.sum()
    train, val = [], []
    for (path, weight), p in zip(specs, share):
        clips = load_clips(path, "train")
        if not clips:
            raise InputError(f"--data {path}: the dataset has no training clips")
        train.append(ClipSampler(clips, config, pool=max(1, int(round(pool * p))) if pool else 0, refresh=refresh))
        held = load_clips(path, "val")
        if held:
            val.append((ClipSampler(held, config), weight))
    if not val:
        val = [(ClipSampler(train[0].clips[:1], config), 1.0)]
    info = {"train_clips": sum(len(s.clips) for s in train), "val_clips": sum(len(s.clips) for s, _ in val),
            "data": [{"path": str(path), "weight": weight} for path, weight in specs]}
    return MixedSampler(train, list(weights)), MixedSampler([s for s, _ in val], [w for _, w in val]), info
