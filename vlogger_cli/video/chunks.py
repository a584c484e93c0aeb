"""A job's finished outpainting windows on disk, and resumable rendering of one stage.

    OUTPUT/<job>/chunks/<stage>/w00000.safetensors   one WindowState per finished window (outpaint.py),
    OUTPUT/<job>/chunks/<stage>/w00001.safetensors   written atomically as soon as the window is done

`render_stage` continues after the last window on disk (bit-identical to an uninterrupted run: the
state holds the frames the next window is conditioned on and the RNG state), so a killed render
loses at most the window in flight. Frames are read back by range (`frames`), which is how an SR
stage gets its low-res input and how the MP4 is assembled, window by window, in bounded memory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from vlogger_cli.windows import window_starts
from vlogger_cli.video.outpaint import WindowState, outpaint
from vlogger_cli.video.sr import lowres_frames

_NAME = re.compile(r"^w(\d{5,})\.safetensors$")


class WindowStore:
    """The finished windows of one stage (`base`, `sr256`, ...) of one job."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self._cache: dict[int, WindowState] = {}  # the few windows read last (an SR window spans 2-3)

    def path(self, index: int) -> Path:
        return self.folder / f"w{index:05d}.safetensors"

    def indices(self) -> list[int]:
        """Indices 0..k-1 of the windows present without a gap."""
        found = sorted(int(m.group(1)) for p in (self.folder.iterdir() if self.folder.is_dir() else [])
                       if (m := _NAME.match(p.name)))
        run = 0
        while run < len(found) and found[run] == run:
            run += 1
        return list(range(run))

    def save(self, state: WindowState) -> Path:
        self._cache.pop(state.index, None)
        return state.save(self.path(state.index))

    def load(self, index: int) -> WindowState:
        if index not in self._cache:
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[index] = WindowState.load(self.path(index))
        return self._cache[index]

    def last(self) -> WindowState | None:
        """The resume point: the last window of the gap-free run from window 0 (None: nothing done)."""
        done = self.indices()
        return self.load(done[-1]) if done else None

    def is_complete(self) -> bool:
        last = self.last()
        return last is not None and last.is_last

    def windows(self) -> Iterator[WindowState]:
        for index in self.indices():
            yield self.load(index)

    def iter_frames(self, sample: int = 0) -> Iterator[np.ndarray]:
        """Every finished frame in order, (R, R, 3) uint8 each, one window in memory at a time (MP4 writing)."""
        for state in self.windows():
            yield from state.frames[sample].numpy()

    def frames(self, start: int, end: int, sample: int = 0) -> np.ndarray:
        """Video frames [start, end) as (T, R, R, 3) uint8, read from only the windows that hold them."""
        done = self.indices()
        if not done:
            raise IndexError(f"no finished windows in {self.folder}")
        meta = self.load(0).meta
        spans = window_starts(meta["num_frames"], meta["window"], meta["overlap_frames"])
        parts = []
        for index, (w_start, w_end, known) in enumerate(spans[:len(done)]):
            lo, hi = max(start, w_start + known), min(end, w_end)
            if lo < hi:
                state = self.load(index)
                parts.append(state.frames[sample, lo - state.new_start:hi - state.new_start].numpy())
        got = sum(len(p) for p in parts)
        if got != end - start:
            raise IndexError(f"frames [{start}, {end}) are not all in {self.folder} (found {got})")
        return np.concatenate(parts)


def render_stage(model, store: WindowStore, controls, reference, num_frames: int, *,
                 lowres: WindowStore | np.ndarray | None = None, sample: int = 0,
                 on_window: Callable[[WindowState], None] | None = None, **outpaint_kwargs) -> WindowStore:
    """Render (or finish) one stage into `store`; SR stages read their low-res frames from `lowres`.

    outpaint_kwargs: window, overlap, sampler, steps, seed, batch, guidance_scale, key, device.
    A store whose windows were made with other settings (another `key`) raises ValueError: clear it first.
    """
    source = None
    if lowres is not None:
        r = model.config.lowres_resolution
        read = lowres.frames if isinstance(lowres, WindowStore) else (lambda s, e, sample=0: lowres[s:e])
        source = lambda s, e: lowres_frames(read(s, e, sample), r)  # noqa: E731
    resume = store.last()
    if resume is not None and resume.is_last and resume.meta.get("key") == outpaint_kwargs.get("key", ""):
        return store
    for state in outpaint(model, controls, reference, num_frames, lowres=source, resume=resume, **outpaint_kwargs):
        store.save(state)
        if on_window is not None:
            on_window(state)
    return store
