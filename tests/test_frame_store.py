"""The one store of finished frames: tiled windows (warp, edit), outpainting windows with sampler state (stage 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlogger_cli.frame_store import FrameStore, FrameWindow
from vlogger_cli.io import TMP_MARKER
from vlogger_cli.windows import window_starts


def _video(n: int, size: int = 4) -> np.ndarray:
    """n distinct frames: frame t is filled with t."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, size, size, 3)).copy()


def test_tiled_windows_read_back_by_any_range(tmp_path):
    video, store = _video(10), FrameStore(tmp_path / "warp")
    for index, start in enumerate(range(0, 10, 4)):
        store.write(index, video[start:start + 4], num_frames=10, window=4)
    assert store.indices() == [0, 1, 2] and store.is_complete()
    assert np.array_equal(store.frames(3, 9), video[3:9])  # across three windows
    assert np.array_equal(store.frame(9), video[9])
    assert np.array_equal(np.stack(list(store.iter_frames())), video)
    assert not any(TMP_MARKER in p.name for p in (tmp_path / "warp").iterdir())


def test_outpainting_windows_skip_their_known_frames(tmp_path):
    """Windows overlapping by 2 frames: each holds only its new frames; a range reads them without repeats."""
    n, window, overlap = 11, 5, 2
    video, store = _video(n), FrameStore(tmp_path / "base")
    meta = {"num_frames": n, "window": window, "overlap_frames": overlap}
    for index, (start, end, known) in enumerate(window_starts(n, window, overlap)):
        state = {"latents": torch.randn(1, end - start, 2, 3, 3), "rng_state": torch.Generator().get_state()}
        store.save(FrameWindow(index, start, end, known, torch.from_numpy(video[start + known:end])[None], state, meta))
    assert np.array_equal(store.frames(0, n), video)
    assert np.array_equal(store.frames(4, 8), video[4:8])
    last = FrameStore(tmp_path / "base").last()
    assert last.is_last and last.new_start == last.start + overlap
    assert set(last.state) == {"latents", "rng_state"} and last.state["latents"].shape[1] == last.end - last.start


def test_resume_point_is_the_end_of_the_gap_free_run(tmp_path):
    video, store = _video(12), FrameStore(tmp_path / "s")
    store.write(0, video[0:4], num_frames=12, window=4)
    store.write(2, video[8:12], num_frames=12, window=4)  # window 1 missing (killed before it was written)
    assert store.indices() == [0] and store.last().index == 0 and not store.is_complete()
    assert store.has(2) and not store.has(1)
    with pytest.raises(IndexError, match="not all"):
        store.frames(2, 10)
    (tmp_path / "s" / f".w00001.safetensors.abc{TMP_MARKER}.safetensors").write_bytes(b"torn")  # a killed writer's
    assert store.indices() == [0]


def test_bad_windows_are_refused(tmp_path):
    store = FrameStore(tmp_path / "s")
    with pytest.raises(ValueError, match="uint8"):
        store.write(0, np.zeros((2, 4, 4, 3), np.float32), num_frames=2, window=2)
    with pytest.raises(ValueError, match="holds frames"):
        store.write(0, _video(3), num_frames=8, window=4)  # a full window must hold 4 frames
    with pytest.raises(IndexError, match="no finished windows"):
        store.frames(0, 1)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "w00000.safetensors").write_bytes(b"not a window")
    with pytest.raises(Exception):
        store.load(0)


def test_window_type_is_what_load_returns(tmp_path):
    class Tagged(FrameWindow):
        pass

    FrameStore(tmp_path / "s").write(0, _video(2), num_frames=2, window=2)
    assert type(FrameStore(tmp_path / "s", Tagged).load(0)) is Tagged
