"""A job's control maps on disk: `controls/<first>-<last>.npz`, one compressed file per frame range.

Ranges are inclusive and zero-padded (`00000-00049.npz`), written atomically (a reader sees a whole chunk
or none), so a crashed run resumes at the first missing chunk. Loading opens only the chunks a request
overlaps, and `np.load` of an `.npz` reads each array lazily. Position and flow stay float32 (C^d must not
be quantised).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from vlogger_cli.controls.render import ControlFrames
from vlogger_cli.io import atomic_path

_NAME = re.compile(r"^(\d{5,})-(\d{5,})\.npz$")


def chunk_name(first: int, last: int) -> str:
    return f"{first:05d}-{last:05d}.npz"


class ControlStore:
    """Chunked controls of one job under `folder` (created on first write)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def ranges(self) -> list[tuple[int, int]]:
        """Sorted inclusive (first, last) frame ranges present on disk."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.iterdir():
            match = _NAME.match(path.name)
            if match:
                found.append((int(match.group(1)), int(match.group(2))))
        return sorted(found)

    @property
    def num_frames(self) -> int:
        """Frames from 0 up to the first gap."""
        end = 0
        for first, last in self.ranges():
            if first > end:
                break
            end = max(end, last + 1)
        return end

    def has(self, first: int, last: int) -> bool:
        return (self.folder / chunk_name(first, last)).is_file()

    def write(self, first: int, frames: ControlFrames) -> Path:
        """Save `frames` as frames first .. first + len - 1 (atomically); returns the file."""
        if len(frames) == 0:
            raise ValueError("no frames to write")
        path = self.folder / chunk_name(first, first + len(frames) - 1)
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, **{k: getattr(frames, k) for k in ControlFrames.FIELDS})
        return path

    def load(self, start: int = 0, stop: int | None = None) -> ControlFrames:
        """Frames [start, stop) (stop=None: to the end of what is contiguous on disk)."""
        stop = self.num_frames if stop is None else stop
        if stop <= start:
            raise ValueError(f"empty frame range [{start}, {stop})")
        parts, covered = [], start
        for first, last in self.ranges():
            if last < covered or first >= stop:
                continue
            if first > covered:
                break
            lo, hi = covered - first, min(last + 1, stop) - first
            with np.load(self.folder / chunk_name(first, last)) as data:
                parts.append(ControlFrames(**{k: data[k][lo:hi] for k in ControlFrames.FIELDS}))
            covered = first + hi
            if covered >= stop:
                break
        if covered < stop:
            gap_end = min([first for first, _ in self.ranges() if first > covered] + [stop])
            raise FileNotFoundError(f"controls for frames {covered}..{gap_end - 1} are missing in {self.folder}")
        return parts[0] if len(parts) == 1 else ControlFrames.concatenate(parts)
