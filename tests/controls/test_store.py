"""Chunked, compressed, atomic control storage."""

from __future__ import annotations

import numpy as np
import pytest

from vlogger_cli.controls.render import ControlFrames
from vlogger_cli.controls.store import ControlStore


def fake_frames(first: int, n: int, size: int = 12) -> ControlFrames:
    rng = np.random.default_rng(first)
    t = np.arange(first, first + n, dtype=np.float32)[:, None, None]
    return ControlFrames(
        position=(rng.normal(size=(n, size, size, 3)) * 1e-3 + t[..., None]).astype(np.float32),
        mask=rng.random((n, size, size)) > 0.5,
        parts=rng.integers(0, 15, (n, size, size), dtype=np.uint8),
        warped=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        warped_mask=rng.random((n, size, size)) > 0.3,
        flow=rng.normal(size=(n, size, size, 2)).astype(np.float32),
    )


def test_round_trip_across_chunks(tmp_path):
    store = ControlStore(tmp_path / "controls")
    chunks = [fake_frames(0, 5), fake_frames(5, 5), fake_frames(10, 3)]
    for first, chunk in zip((0, 5, 10), chunks):
        store.write(first, chunk)
    assert sorted(p.name for p in (tmp_path / "controls").iterdir()) == [
        "00000-00004.npz", "00005-00009.npz", "00010-00012.npz"]
    assert store.ranges() == [(0, 4), (5, 9), (10, 12)] and store.num_frames == 13
    everything = ControlFrames.concatenate(chunks)
    loaded = store.load()
    for key in ControlFrames.FIELDS:
        np.testing.assert_array_equal(getattr(loaded, key), getattr(everything, key))
        assert getattr(loaded, key).dtype == getattr(everything, key).dtype
    middle = store.load(3, 11)  # spans three chunks
    np.testing.assert_array_equal(middle.position, everything.position[3:11])
    assert store.has(5, 9) and not store.has(0, 9)


def test_gaps_and_missing_frames(tmp_path):
    store = ControlStore(tmp_path)
    store.write(0, fake_frames(0, 4))
    store.write(8, fake_frames(8, 4))
    assert store.num_frames == 4  # frames 0..3, then a gap
    np.testing.assert_array_equal(store.load(8, 12).parts, fake_frames(8, 4).parts)
    with pytest.raises(FileNotFoundError, match="4..7"):
        store.load(2, 10)
    assert ControlStore(tmp_path / "none").ranges() == []


def test_writes_are_atomic_and_compressed(tmp_path):
    store = ControlStore(tmp_path)
    frames = fake_frames(0, 6, size=32)
    frames.position[:] = 0.25  # compressible
    path = store.write(0, frames)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    raw = sum(getattr(frames, k).nbytes for k in ControlFrames.FIELDS)
    assert path.stat().st_size < raw
