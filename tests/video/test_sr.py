import numpy as np
import pytest
import torch

from vlogger_cli.video.controls import resize_frames
from vlogger_cli.video.outpaint import WindowState
from vlogger_cli.video.sr import FrameBuffer, cascade, super_resolve

T = 9


@pytest.fixture(scope="module")
def setup(build, tiny, tiny_sr):
    gen = torch.Generator().manual_seed(0)
    controls_hi = torch.randn(T, tiny_sr.config.control_channels, 64, 64, generator=gen)
    portrait = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    return controls_hi, resize_frames(controls_hi, 32), portrait


def test_sr_model_takes_low_res_frames_and_makes_high_res_windows(tiny_sr, setup):
    controls_hi, _, portrait = setup
    lowres = np.random.default_rng(1).integers(0, 256, (T, 32, 32, 3)).astype(np.uint8)
    windows = list(super_resolve(tiny_sr, lowres, controls_hi, portrait, T, steps=2))
    assert windows[0].frames.shape == (1, 4, 64, 64, 3)
    assert sum(w.frames.shape[1] for w in windows) == T
    for prev, nxt in zip(windows, windows[1:]):  # same outpainting as the base model
        assert torch.equal(nxt.latents[:, :nxt.known], prev.latents[:, -nxt.known:])


def test_sr_resume_is_bit_identical(tiny_sr, setup, tmp_path):
    controls_hi, _, portrait = setup
    lowres = np.random.default_rng(2).integers(0, 256, (T, 32, 32, 3)).astype(np.uint8)
    full = list(super_resolve(tiny_sr, lowres, controls_hi, portrait, T, steps=2, sampler="ddpm", seed=1))
    state = WindowState.load(full[1].save(tmp_path / "sr1.safetensors"))
    rest = list(super_resolve(tiny_sr, lowres, controls_hi, portrait, T, steps=2, sampler="ddpm", seed=1, resume=state))
    assert all(torch.equal(a.frames, b.frames) for a, b in zip(full[2:], rest))


def test_sr_output_depends_on_the_low_res_frames(tiny_sr, setup):
    controls_hi, _, portrait = setup
    a = np.zeros((T, 32, 32, 3), np.uint8)
    out_a = next(super_resolve(tiny_sr, a, controls_hi, portrait, T, steps=2)).latents
    out_b = next(super_resolve(tiny_sr, a + 200, controls_hi, portrait, T, steps=2)).latents
    assert not torch.allclose(out_a, out_b)


def test_cascade_streams_the_same_frames_as_stage_by_stage(tiny, tiny_sr, setup):
    controls_hi, controls_lo, portrait = setup
    settings = [dict(steps=2, seed=1), dict(steps=2, seed=2, overlap=0.25)]
    events = list(cascade([tiny, tiny_sr], [controls_lo, controls_hi], portrait, T, settings=settings))
    stages = [i for i, _ in events]
    assert stages.index(1) < len(stages) - stages[::-1].index(0) - 1  # SR starts before the base is finished
    base = torch.cat([w.frames[0] for i, w in events if i == 0])
    sr = torch.cat([w.frames[0] for i, w in events if i == 1])
    direct = torch.cat([w.frames[0] for w in super_resolve(tiny_sr, base.numpy(), controls_hi, portrait, T, **settings[1])])
    assert base.shape == (T, 32, 32, 3) and sr.shape == (T, 64, 64, 3)
    assert torch.equal(sr, direct)


def test_frame_buffer_forgets_what_was_read_past():
    buf = FrameBuffer()
    buf.append(torch.zeros(4, 2, 2, 3, dtype=torch.uint8))
    buf.append(torch.ones(4, 2, 2, 3, dtype=torch.uint8))
    assert buf.read(3, 5)[:, 0, 0, 0].tolist() == [0, 1]
    buf.forget_before(5)
    assert (buf.offset, buf.end) == (5, 8)
    with pytest.raises(IndexError):
        buf.read(4, 6)


def test_residual_sr_starts_from_the_upsampled_low_res_frames(build):
    import torch.nn.functional as F

    model = build.model("tiny", resolution=64, lowres_resolution=32, residual=True, prediction_type="sample")
    low = torch.rand(2, 3, 32, 32) * 2 - 1
    up = F.interpolate(low, size=(64, 64), mode="bicubic", align_corners=False).clamp(-1, 1)
    assert torch.allclose(model.decode_frames(model.lowres_base(low)), up)

    model.forward = lambda x, *args, **kwargs: torch.zeros_like(x)  # a zero residual: output = upsampled input
    frames = (np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3))).astype(np.uint8)
    controls = torch.zeros(4, model.config.control_channels, 64, 64)
    portrait = np.zeros((64, 64, 3), np.uint8)
    out = next(super_resolve(model, frames, controls, portrait, 4, steps=2)).frames[0].numpy().astype(int)
    from vlogger_cli.video.controls import from_unit, to_unit

    expected = from_unit(F.interpolate(to_unit(frames), size=(64, 64), mode="bicubic", align_corners=False)).astype(int)
    assert np.abs(out - expected).max() <= 1
