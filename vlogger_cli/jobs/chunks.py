"""Finished video frames on disk: `chunks/<first>-<last>.npz` (uint8 RGB), one file per window.

These are the resume points of the rendering stages: each window is written atomically as soon as
it is finished, a resumed run starts at the first missing window, and the MP4 is assembled by
streaming the chunks in order, so memory does not grow with the video's length.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np

from vlogger_cli.io import atomic_path

_NAME = re.compile(r"^(\d{5,})-(\d{5,})\.npz$")


class FrameChunks:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @staticmethod
    def name(first: int, last: int) -> str:
        return f"{first:05d}-{last:05d}.npz"

    def ranges(self) -> list[tuple[int, int]]:
        if not self.folder.is_dir():
            return []
        found = [tuple(map(int, m.groups())) for p in self.folder.iterdir() if (m := _NAME.match(p.name))]
        return sorted(found)

    def has(self, first: int, last: int) -> bool:
        return (self.folder / self.name(first, last)).is_file()

    def write(self, first: int, frames: np.ndarray, **extra: np.ndarray) -> Path:
        """frames (T, H, W, 3) uint8 as frames first .. first+T-1; `extra` arrays are saved alongside
        (e.g. sampler state for stage-2 outpainting)."""
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
            raise ValueError(f"frames must be (T, H, W, 3) uint8 with T > 0, got {frames.shape} {frames.dtype}")
        path = self.folder / self.name(first, first + len(frames) - 1)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, frames=frames, **extra)
        return path

    def read(self, first: int, last: int) -> np.ndarray:
        with np.load(self.folder / self.name(first, last)) as data:
            return data["frames"]

    def frame(self, index: int) -> np.ndarray:
        for first, last in self.ranges():
            if first <= index <= last:
                return self.read(first, last)[index - first]
        raise IndexError(f"frame {index} is in no chunk of {self.folder}")

    def iter_frames(self, num_frames: int) -> Iterator[np.ndarray]:
        """Frames 0 .. num_frames-1 in order, one chunk in memory at a time."""
        expected = 0
        for first, last in self.ranges():
            if first != expected:
                raise ValueError(f"{self.folder}: frames {expected}..{first - 1} are missing")
            yield from self.read(first, last)
            expected = last + 1
            if expected >= num_frames:
                break
        if expected < num_frames:
            raise ValueError(f"{self.folder}: only {expected} of {num_frames} frames are on disk")

