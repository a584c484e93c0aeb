import numpy as np
import pytest
import torch

from vlogger_cli.video.chunks import render_stage, window_store
from vlogger_cli.video.controls import resize_frames

T = 9


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def inputs(tiny_sr):
    gen = torch.Generator().manual_seed(0)
    hi = torch.randn(T, tiny_sr.config.control_channels, 64, 64, generator=gen)
    portrait = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    return hi, resize_frames(hi, 32), portrait


def test_a_killed_stage_resumes_to_the_same_frames(tiny, tiny_sr, inputs, tmp_path):
    hi, lo, portrait = inputs
    kw = dict(steps=2, sampler="ddpm", seed=3, key="k1")
    whole = render_stage(tiny, window_store(tmp_path / "whole" / "base"), lo, portrait, T, **kw)

    def kill_after_two(state):
        if state.index == 1:
            raise Killed

    cut = window_store(tmp_path / "cut" / "base")
    with pytest.raises(Killed):
        render_stage(tiny, cut, lo, portrait, T, on_window=kill_after_two, **kw)
    assert cut.indices() == [0, 1] and not cut.is_complete()
    render_stage(tiny, cut, lo, portrait, T, **kw)
    assert cut.is_complete() and cut.indices() == whole.indices()
    assert np.array_equal(cut.frames(0, T), whole.frames(0, T))
    assert whole.frames(0, T).shape == (T, 32, 32, 3)
    assert np.array_equal(whole.frames(3, 6), whole.frames(0, T)[3:6])
    assert np.array_equal(np.stack(list(whole.iter_frames())), whole.frames(0, T))
    with pytest.raises(ValueError, match="key"):
        render_stage(tiny, cut, lo, portrait, T, **{**kw, "key": "other"})

    # the SR stage reads its low-res frames from the base stage's windows, and resumes the same way
    sr_whole = render_stage(tiny_sr, window_store(tmp_path / "whole" / "sr"), hi, portrait, T, lowres=whole, steps=2, seed=4)
    sr_cut = window_store(tmp_path / "cut" / "sr")
    with pytest.raises(Killed):
        render_stage(tiny_sr, sr_cut, hi, portrait, T, lowres=cut, steps=2, seed=4, on_window=kill_after_two)
    render_stage(tiny_sr, sr_cut, hi, portrait, T, lowres=cut, steps=2, seed=4)
    assert np.array_equal(sr_cut.frames(0, T), sr_whole.frames(0, T))
    assert sr_whole.frames(0, T).shape == (T, 64, 64, 3)


def test_a_gap_stops_the_resume_point(tiny, inputs, tmp_path):
    _, lo, portrait = inputs
    store = render_stage(tiny, window_store(tmp_path / "s"), lo, portrait, T, steps=2)
    store.path(1).unlink()
    assert store.indices() == [0] and store.last().index == 0
    with pytest.raises(IndexError):
        store.frames(0, T)


def test_cascade_from_weight_folders_renders_and_resumes(tiny, tiny_sr, tmp_path):
    from vlogger_cli.controls.render import ControlFrames
    from vlogger_cli.errors import JobError
    from vlogger_cli.video.render import cascade_folders, load_cascade, render_cascade

    tiny.save_pretrained(tmp_path / "w" / "video")
    with pytest.raises(JobError, match="train sr"):
        cascade_folders(tmp_path / "w", 64)
    tiny_sr.save_pretrained(tmp_path / "w" / "sr" / "64")
    assert cascade_folders(tmp_path / "w", 32) == [tmp_path / "w" / "video"]
    models = load_cascade(tmp_path / "w", 64)
    rng = np.random.default_rng(0)
    parts = rng.integers(0, 15, (T, 64, 64)).astype(np.uint8)
    controls = ControlFrames(position=rng.normal(size=(T, 64, 64, 3)).astype(np.float32), mask=parts > 0, parts=parts,
                             warped=rng.integers(0, 256, (T, 64, 64, 3)).astype(np.uint8),
                             warped_mask=parts > 3, flow=np.zeros((T, 64, 64, 2), np.float32))
    portrait = rng.integers(0, 256, (80, 80, 3)).astype(np.uint8)
    seen = []
    out = render_cascade(models, controls, portrait, T, tmp_path / "chunks", steps=2, key="j",
                         on_window=lambda stage, s: seen.append((stage, s.index)))
    assert out.frames(0, T).shape == (T, 64, 64, 3)
    assert seen[0] == ("base", 0) and seen[-1][0] == "sr64"
    made = len(seen)
    again = render_cascade(models, controls, portrait, T, tmp_path / "chunks", steps=2, key="j",
                           on_window=lambda stage, s: seen.append((stage, s.index)))
    assert np.array_equal(again.frames(0, T), out.frames(0, T)) and len(seen) == made  # nothing redone
