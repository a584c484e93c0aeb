import pytest
import torch

from vlogger_cli.video.outpaint import WindowState, ideal_frame_evaluations, outpaint
from vlogger_cli.video.sampling import Conditioning, sample_window

T = 11  # tiny windows: N = 4, overlap 2 -> windows (0,4) (2,6) (4,8) (6,10) (8,11)


@pytest.fixture(scope="module")
def inputs(build, tiny):
    return build.inputs(tiny.config, frames=T)


def run(model, inputs, **kw):
    kw.setdefault("steps", 2)
    return list(outpaint(model, inputs["controls"], inputs["reference"][0], T, **kw))


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm"])
def test_overlap_frames_equal_the_conditioning_frames(tiny, inputs, sampler):
    windows = run(tiny, inputs, sampler=sampler)
    assert [(w.start, w.end, w.known) for w in windows] == [(0, 4, 0), (2, 6, 2), (4, 8, 2), (6, 10, 2), (8, 11, 2)]
    for prev, nxt in zip(windows, windows[1:]):
        assert torch.equal(nxt.latents[:, :nxt.known], prev.latents[:, -nxt.known:])
        assert not torch.equal(nxt.latents[:, nxt.known:], prev.latents[:, -nxt.known:][:, :1].expand_as(nxt.latents[:, nxt.known:]))
    assert sum(w.frames.shape[1] for w in windows) == T
    assert windows[-1].is_last and not windows[0].is_last


@pytest.mark.parametrize("batch,guidance", [(1, 1.0), (2, 1.0), (1, 3.0)])
def test_denoiser_evaluations_are_exactly_ideal(tiny, inputs, batch, guidance):
    tiny.calls = tiny.frame_evaluations = 0
    run(tiny, inputs, sampler="dpm", steps=3, batch=batch, guidance_scale=guidance)
    windows = 5
    assert tiny.calls == windows * 3
    assert tiny.frame_evaluations == ideal_frame_evaluations(T, 4, 2, 3, batch=batch, guided=guidance != 1.0)
    assert ideal_frame_evaluations(T, 4, 2, 3) == (4 + 4 + 4 + 4 + 3) * 3


def test_frames_shapes_and_dtype(tiny, inputs):
    w = run(tiny, inputs, batch=2)[1]
    c = tiny.config
    assert w.frames.shape == (2, 2, c.resolution, c.resolution, 3) and w.frames.dtype == torch.uint8
    assert w.latents.shape == (2, 4, c.sample_channels, c.grid, c.grid) and w.latents.dtype == torch.float32


def test_deterministic_per_seed(tiny, inputs):
    a, b, c = run(tiny, inputs, seed=3), run(tiny, inputs, seed=3), run(tiny, inputs, seed=4)
    assert all(torch.equal(x.latents, y.latents) for x, y in zip(a, b))
    assert not torch.equal(a[0].latents, c[0].latents)


@pytest.mark.parametrize("sampler", ["ddpm", "dpm"])
def test_resume_from_a_saved_window_state_is_bit_identical(tiny, inputs, tmp_path, sampler):
    full = run(tiny, inputs, sampler=sampler, seed=5, key="abc")
    for i in (0, 2):
        path = full[i].save(tmp_path / f"w{i}.safetensors")
        state = WindowState.load(path)
        assert (state.index, state.start, state.end, state.known, state.meta) == \
            (full[i].index, full[i].start, full[i].end, full[i].known, full[i].meta)
        rest = run(tiny, inputs, sampler=sampler, seed=5, key="abc", resume=state)
        assert [w.index for w in rest] == list(range(i + 1, len(full)))
        for x, y in zip(full[i + 1:], rest):
            assert torch.equal(x.latents, y.latents) and torch.equal(x.frames, y.frames)
            assert torch.equal(x.rng_state, y.rng_state)
    assert run(tiny, inputs, sampler=sampler, seed=5, key="abc", resume=full[-1]) == []


def test_resume_with_other_settings_is_refused(tiny, inputs):
    first = run(tiny, inputs, seed=5, key="abc")[0]
    with pytest.raises(ValueError, match="key"):
        run(tiny, inputs, seed=5, key="other", resume=first)
    with pytest.raises(ValueError, match="steps"):
        run(tiny, inputs, seed=5, key="abc", steps=3, resume=first)


def test_sample_window_holds_known_frames_fixed(tiny, inputs):
    c = tiny.config
    with torch.no_grad():
        tokens = tiny.encode_reference(inputs["reference"])
    known = torch.randn(1, 2, c.sample_channels, c.grid, c.grid)
    cond = Conditioning(tokens, inputs["controls"][None, :4])
    out = sample_window(tiny, cond, 4, known=known, sampler="ddpm", steps=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :2], known)
    assert out.shape == (1, 4, c.sample_channels, c.grid, c.grid)
    # the new frames depend on the known ones (through the temporal layers)
    other = sample_window(tiny, cond, 4, known=known + 1, sampler="ddpm", steps=3, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(out[:, 2:], other[:, 2:])


class Oracle(torch.nn.Module):
    """A perfect denoiser for one known clean window x0 (any prediction type)."""

    def __init__(self, config, x0):
        super().__init__()
        from vlogger_cli.video.sampling import make_scheduler

        self.config, self.x0 = config, x0
        self.alphas = make_scheduler(config).alphas_cumprod

    def forward(self, x, t, tokens, controls=None, lowres=None):
        from vlogger_cli.video.sampling import prediction_target

        a = self.alphas[int(t)]
        noise = (x - a.sqrt() * self.x0) / (1 - a).sqrt()
        return prediction_target(self.config.prediction_type, self.x0, noise, self.alphas, t)


@pytest.mark.parametrize("prediction", ["epsilon", "sample", "v_prediction"])
@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm"])
def test_samplers_recover_the_clean_window_from_a_perfect_denoiser(sampler, prediction):
    from vlogger_cli.video.config import preset

    c = preset("tiny", prediction_type=prediction)
    x0 = torch.rand(1, 4, c.sample_channels, c.grid, c.grid, generator=torch.Generator().manual_seed(0)) * 2 - 1
    known = x0[:, :2] + 0.0
    out = sample_window(Oracle(c, x0), Conditioning(torch.zeros(1, 2, 4)), 4, known=known, sampler=sampler, steps=5,
                        generator=torch.Generator().manual_seed(1))
    assert torch.allclose(out, x0, atol=1e-4)
