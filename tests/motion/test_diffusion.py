import pytest
import torch

from vlogger_cli.motion.denoiser import AUDIO_DIM, build_denoiser
from vlogger_cli.motion.diffusion import LossWeights, diffusion_loss, make_scheduler, sample
from vlogger_cli.motion.outpaint import outpaint
from vlogger_cli.windows import window_starts
from vlogger_cli.motion.representation import MOTION_DIM, REFERENCE_DIM


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_denoiser("tiny", attention_window=16).eval()


def cond(t=50, b=1):
    g = torch.Generator().manual_seed(3)
    return torch.randn(b, t, AUDIO_DIM, generator=g), torch.randn(b, REFERENCE_DIM, generator=g)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm", "dpm-sde"])
def test_samplers_predict_x0_on_one_schedule(sampler):
    s = make_scheduler(sampler)
    assert s.config.prediction_type == "sample" and s.config.num_train_timesteps == 1000


def test_dpm_sde_is_the_stochastic_dpm_solver():
    assert make_scheduler("dpm").config.algorithm_type == "dpmsolver++"
    assert make_scheduler("dpm-sde").config.algorithm_type == "sde-dpmsolver++"


@pytest.mark.parametrize("sampler, stochastic", [("dpm", False), ("ddim", False), ("dpm-sde", True), ("ddpm", True)])
def test_stochastic_samplers_draw_noise_at_every_step(model, sampler, stochastic):
    """Same initial noise, other generator: only a stochastic sampler's result changes."""
    a, r = cond()
    noise = torch.randn(1, 50, MOTION_DIM, generator=torch.Generator().manual_seed(0))
    run = lambda seed: sample(model, a, r, sampler=sampler, steps=5, noise=noise,
                              generator=torch.Generator().manual_seed(seed))
    x1 = run(1)
    assert x1.shape == (1, 50, MOTION_DIM) and torch.isfinite(x1).all()
    assert torch.equal(x1, run(1))
    assert torch.allclose(x1, run(2)) != stochastic


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm", "dpm-sde"])
def test_same_seed_same_motion_other_seed_other_motion(model, sampler):
    a, r = cond()
    run = lambda seed: sample(model, a, r, sampler=sampler, steps=4, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(run(1), run(1))
    assert not torch.allclose(run(1), run(2), atol=1e-3)


def test_known_frames_are_returned_exactly(model):
    a, r = cond()
    known = torch.randn(1, 50, MOTION_DIM)
    mask = torch.zeros(1, 50)
    mask[:, :20] = 1
    x = sample(model, a, r, steps=3, known=known, known_mask=mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x[:, :20], known[:, :20])


def test_loss_terms_and_face_body_weights(model):
    g = torch.Generator().manual_seed(0)
    x0, (a, r) = torch.randn(2, 30, MOTION_DIM, generator=g), cond(30, 2)
    base = diffusion_loss(model, x0, a, r, generator=torch.Generator().manual_seed(5))
    assert set(base) == {"loss", "diff", "temp"} and torch.isclose(base["loss"], base["diff"] + base["temp"])
    no_body = diffusion_loss(model, x0, a, r, generator=torch.Generator().manual_seed(5),
                             weights=LossWeights(body_diff=0.0, body_temp=0.0))
    assert no_body["diff"] < base["diff"] and no_body["temp"] < base["temp"]
    # fully known windows leave nothing to learn for L_diff
    full = diffusion_loss(model, x0, a, r, known_mask=torch.ones(2, 30), generator=torch.Generator().manual_seed(5))
    assert full["diff"] == 0 and full["temp"] == 0


def test_window_starts_cover_with_overlap():
    spans = window_starts(600, 250, 125)
    assert spans[0] == (0, 250, 0) and spans[-1][1] == 600
    for (s0, e0, _), (s1, e1, k1) in zip(spans, spans[1:]):
        assert s1 == e0 - 125 and k1 == 125
    assert window_starts(100, 250, 125) == [(0, 100, 0)]
    with pytest.raises(ValueError):
        window_starts(100, 50, 50)


def test_outpainting_conditions_each_window_on_the_previous_one(model):
    a, r = cond(t=130, b=2)
    gen = lambda: torch.Generator().manual_seed(9)
    long = outpaint(model, a, r, window=60, overlap=0.5, steps=3, generator=gen())
    assert long.shape == (2, 130, MOTION_DIM) and torch.isfinite(long).all()
    # the first window is an ordinary sample of the first 60 frames (same noise, same result)
    first = sample(model, a[:, :60], r, steps=3, generator=gen())
    assert torch.allclose(long[:, :52], first[:, :52], atol=1e-5)  # 52..59 are cross-faded (blend=8)
    assert torch.equal(outpaint(model, a, r, window=60, overlap=0.5, steps=3, generator=gen()), long)


def test_without_blend_the_overlap_is_the_previous_window(model):
    a, r = cond(t=100)
    gen = torch.Generator().manual_seed(1)
    first = outpaint(model, a[:, :60], r, window=60, overlap=0.5, steps=3, generator=gen)
    full = outpaint(model, a, r, window=60, overlap=0.5, steps=3, blend=0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(full[:, :60], first)  # windows after the first never rewrite earlier frames (blend=0)
