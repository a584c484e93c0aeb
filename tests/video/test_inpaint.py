"""Stage 2 with known pixels (video editing): known pixels come back exactly, the rest is generated, and the
denoiser does no extra work."""

import numpy as np
import pytest
import torch

from vlogger_cli.video.controls import from_unit, to_unit
from vlogger_cli.video.outpaint import ideal_frame_evaluations, outpaint
from vlogger_cli.video.sampling import Conditioning, sample_window

T = 7  # tiny windows: N = 4, overlap 2 -> (0,4) (2,6) (4,7)


def _frames(config, seed=3):
    gen = np.random.default_rng(seed)
    r = config.resolution
    return gen.integers(0, 256, size=(T, r, r, 3), dtype=np.uint8)


def _left_half(config):
    r = config.resolution
    where = torch.zeros(T, 1, r, r, dtype=torch.bool)
    where[..., : r // 2] = True
    return where


@pytest.mark.parametrize("sampler", ["ddpm", "dpm"])
def test_sample_window_holds_known_elements(tiny, build, sampler):
    c = tiny.config
    inputs = build.inputs(c, frames=4)
    tokens = tiny.encode_reference(inputs["reference"][:1])
    x0 = torch.randn(1, 4, c.sample_channels, c.grid, c.grid, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros_like(x0, dtype=torch.bool)
    mask[..., : c.grid // 2] = True
    out = sample_window(tiny, Conditioning(tokens, inputs["controls"][None]), 4, inpaint=(x0, mask), sampler=sampler,
                        steps=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[mask], x0[mask])
    assert not torch.allclose(out[~mask], x0[~mask], atol=0.1)


@pytest.mark.parametrize("which", ["base", "residual_sr"])
def test_known_pixels_come_back_exactly(tiny, tiny_sr, build, which):
    model = tiny if which == "base" else tiny_sr
    c = model.config
    inputs = build.inputs(c, frames=T)
    given, where = _frames(c), _left_half(c)
    kwargs = {}
    if c.lowres_resolution:
        low = torch.nn.functional.interpolate(to_unit(_frames(c, seed=4)), size=c.lowres_resolution, mode="area")
        kwargs["lowres"] = low
    model.calls = model.frame_evaluations = 0
    windows = list(outpaint(model, inputs["controls"], inputs["reference"][0], T, steps=3, seed=1,
                            known_pixels=lambda s, e: (to_unit(given[s:e]), where[s:e]), **kwargs))
    frames = torch.cat([w.frames[0] for w in windows]).numpy()  # (T, R, R, 3)
    half = c.resolution // 2
    assert np.array_equal(frames[:, :, :half], given[:, :, :half])
    assert np.abs(frames[:, :, half:].astype(int) - given[:, :, half:]).mean() > 10  # generated, not copied
    assert model.frame_evaluations == ideal_frame_evaluations(T, 4, 2, 3)
    assert windows[0].meta["inpaint"] is True


def test_known_pixels_are_deterministic_and_differ_from_free_sampling(tiny, build):
    c = tiny.config
    inputs = build.inputs(c, frames=T)
    given, where = _frames(c), _left_half(c)

    def run(**kw):
        return torch.cat([w.frames[0] for w in outpaint(tiny, inputs["controls"], inputs["reference"][0], T, steps=2,
                                                        seed=5, **kw)])

    known = lambda s, e: (to_unit(given[s:e]), where[s:e])  # noqa: E731
    a, b, free = run(known_pixels=known), run(known_pixels=known), run()
    assert torch.equal(a, b)
    # the generated half sees the known half: it is not what free sampling gives
    assert not torch.equal(a[:, :, c.resolution // 2:], free[:, :, c.resolution // 2:])


def test_known_on_grid_is_exact_in_pixel_space(tiny):
    c = tiny.config
    where = torch.zeros(2, 1, c.resolution, c.resolution, dtype=torch.bool)
    where[0, 0, 3, 5] = True
    grid = tiny.known_on_grid(where)
    assert grid.shape == (2, c.sample_channels, c.grid, c.grid)
    # exactly the 3 channels of that one pixel are known
    assert int(grid.sum()) == 3
    decoded = tiny.decode_frames(grid.float())
    assert decoded[0, :, 3, 5].eq(1).all() and float(decoded.sum()) == 3
    assert from_unit(torch.zeros(3, 2, 2)).shape == (2, 2, 3)
