"""Ground floor: finished video frames on disk, one file per window — the resume points of every renderer.

    <folder>/w00000.safetensors   one FrameWindow: tensor `frames` (B, T_new, H, W, 3) uint8, optional sampler
    <folder>/w00001.safetensors   state tensors (stage 2: `latents`, `rng_state`), JSON header in the metadata

One store for every kind of finished frames: stage-2 diffusion windows (with the sampler state that continues
them bit-identically, video/outpaint.py), SR windows, the warp preview's windows, and an edit's source squares
and masks. Windows follow the outpainting schedule (windows.py): window i covers video frames [start, end), of
which the first `known` were taken from window i-1, so it holds the `end - start - known` new frames from
`start + known` on. Writers without outpainting (warp, edit) use overlap 0, so windows simply tile the video.

Each window is written atomically as soon as it is finished; a resumed run continues after the last window of
the gap-free run from 0 (`last`). Frames are read back by range (`frames`), one or two windows at a time,
which is how an SR stage gets its low-res input and how the MP4 is assembled in bounded memory.
Imports nothing from vlogger_cli but the ground floor.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from vlogger_cli.io import atomic_path
from vlogger_cli.windows import window_starts

FORMAT = "vlogger-video-window"
_NAME = re.compile(r"^w(\d{5,})\.safetensors$")


@dataclass
class FrameWindow:
    """One finished window: its new frames, and whatever a sampler needs to continue after it."""

    index: int                 # window number, from 0
    start: int                 # first video frame the window covers
    end: int                   # one past its last frame
    known: int                 # frames at its start taken from the previous window (not new)
    frames: torch.Tensor       # (B, end - start - known, H, W, 3) uint8: the new video frames, B samples
    state: dict[str, torch.Tensor] = field(default_factory=dict)  # sampler state (stage 2: latents, rng_state)
    meta: dict = field(default_factory=dict)  # num_frames, window, overlap_frames (+ sampler settings, key)

    @property
    def new_start(self) -> int:
        """First video frame that `frames` holds."""
        return self.start + self.known

    @property
    def is_last(self) -> bool:
        return self.end >= self.meta.get("num_frames", self.end)

    def save(self, path: str | os.PathLike) -> Path:
        """One safetensors file, written atomically (a killed writer leaves the previous file or none)."""
        from safetensors.torch import save_file

        header = {"format": FORMAT, "index": self.index, "start": self.start, "end": self.end,
                  "known": self.known, "meta": self.meta}
        tensors = {name: t.contiguous().cpu() for name, t in self.state.items()}
        tensors["frames"] = self.frames.contiguous().cpu()
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"state": json.dumps(header, sort_keys=True)})
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike):
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as fh:
            header = json.loads((fh.metadata() or {}).get("state", "{}"))
        if header.get("format") != FORMAT:
            raise ValueError(f"{path} is not a window of video frames")
        tensors = load_file(str(path))
        frames = tensors.pop("frames")
        return cls(header["index"], header["start"], header["end"], header["known"], frames, tensors, header["meta"])


class FrameStore:
    """The finished windows of one renderer stage (`chunks/base`, `chunks/sr256`, `chunks/warp`, ...) of one job.

    window_type: the FrameWindow class that `load` returns (stage 2 reads its windows as WindowState)."""

    def __init__(self, folder: str | os.PathLike, window_type: type[FrameWindow] = FrameWindow):
        self.folder = Path(folder)
        self.window_type = window_type
        self._cache: dict[int, FrameWindow] = {}  # the few windows read last (an SR window spans 2-3)

    def path(self, index: int) -> Path:
        return self.folder / f"w{index:05d}.safetensors"

    def has(self, index: int) -> bool:
        return self.path(index).is_file()

    def _present(self) -> list[int]:
        """Indices of the window files on disk, sorted (gaps allowed; a writer's temporary files excluded)."""
        names = (p.name for p in self.folder.iterdir()) if self.folder.is_dir() else ()
        return sorted(int(m.group(1)) for name in names if (m := _NAME.match(name)))

    def indices(self) -> list[int]:
        """Indices 0..k-1 of the windows present without a gap."""
        found = self._present()
        run = 0
        while run < len(found) and found[run] == run:
            run += 1
        return list(range(run))

    def save(self, window: FrameWindow) -> Path:
        self._cache.pop(window.index, None)
        return window.save(self.path(window.index))

    def write(self, index: int, frames: np.ndarray, *, num_frames: int, window: int) -> Path:
        """Save window `index` of a video tiled by `window`-frame windows (no overlap, no sampler state):
        frames (T, H, W, 3) uint8 are video frames index*window .. index*window + T - 1."""
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
            raise ValueError(f"frames must be (T, H, W, 3) uint8 with T > 0, got {frames.shape} {frames.dtype}")
        start = index * window
        if start + len(frames) != min(start + window, num_frames):
            raise ValueError(f"window {index} of {window} frames holds frames {start}..{min(start + window, num_frames) - 1}, "
                             f"got {len(frames)}")
        meta = {"num_frames": num_frames, "window": window, "overlap_frames": 0}
        return self.save(FrameWindow(index, start, start + len(frames), 0, torch.from_numpy(frames)[None], {}, meta))

    def load(self, index: int) -> FrameWindow:
        if index not in self._cache:
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[index] = self.window_type.load(self.path(index))
        return self._cache[index]

    def last(self) -> FrameWindow | None:
        """The resume point: the last window of the gap-free run from window 0 (None: nothing done)."""
        done = self.indices()
        return self.load(done[-1]) if done else None

    def is_complete(self) -> bool:
        last = self.last()
        return last is not None and last.is_last

    def windows(self) -> Iterator[FrameWindow]:
        for index in self.indices():
            yield self.load(index)

    def iter_frames(self, sample: int = 0) -> Iterator[np.ndarray]:
        """Every finished frame in order, (H, W, 3) uint8 each, one window in memory at a time (MP4 writing)."""
        for window in self.windows():
            yield from window.frames[sample].numpy()

    def frames(self, start: int, end: int, sample: int = 0) -> np.ndarray:
        """Video frames [start, end) as (T, H, W, 3) uint8, read from only the windows that hold them."""
        present = self._present()
        if not present:
            raise IndexError(f"no finished windows in {self.folder}")
        meta = self.load(present[0]).meta  # every window of a store carries the same schedule
        spans = window_starts(meta["num_frames"], meta["window"], meta["overlap_frames"])
        parts = []
        for index, (w_start, w_end, known) in enumerate(spans):
            lo, hi = max(start, w_start + known), min(end, w_end)
            if lo < hi and self.has(index):
                window = self.load(index)
                parts.append(window.frames[sample, lo - window.new_start:hi - window.new_start].numpy())
        got = sum(len(p) for p in parts)
        if got != end - start:
            raise IndexError(f"frames [{start}, {end}) are not all in {self.folder} (found {got})")
        return np.concatenate(parts)

    def frame(self, index: int, sample: int = 0) -> np.ndarray:
        return self.frames(index, index + 1, sample)[0]
