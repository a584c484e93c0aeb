"""Truncated sampling of residual models (`sample_strength` < 1, CCDF / SDEdit): only the last steps of the
schedule run, starting from the model's base frames noised to the first kept level."""

import pytest
import torch

from vlogger_cli.video.config import preset
from vlogger_cli.video.outpaint import ideal_frame_evaluations, outpaint
from vlogger_cli.video.sampling import make_scheduler, truncated_timesteps

T = 11
RESIDUAL = dict(flow_reference=True, residual=True)


def test_strength_needs_a_residual_model_and_a_fraction():
    with pytest.raises(ValueError, match="residual"):
        preset("tiny", sample_strength=0.5)
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="sample_strength"):
            preset("tiny", sample_strength=bad, **RESIDUAL)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm"])
def test_truncated_timesteps_are_the_last_ones(sampler):
    scheduler = make_scheduler(preset("tiny"), sampler)
    scheduler.set_timesteps(10)
    full = scheduler.timesteps.clone()
    kept, begin = truncated_timesteps(scheduler, 0.3)
    assert begin == 7 and torch.equal(kept, full[7:])
    assert truncated_timesteps(scheduler, 0.01)[0].numel() == 1  # at least one step
    assert truncated_timesteps(scheduler, 1.0)[1] == 0


@pytest.mark.parametrize("sampler", ["ddim", "dpm"])
def test_truncated_sampling_runs_fewer_steps_and_an_untrained_model_gives_its_base(build, sampler):
    """The untrained (zero output) residual model predicts a zero residual at every level: truncated or not,
    its samples are exactly its base frames; a perturbed one runs steps x strength denoiser calls per window."""
    fresh = build.model("tiny", trained=False, zero_init_out=True, sample_strength=0.4, **RESIDUAL)
    inputs = build.inputs(fresh.config, frames=T)
    windows = list(outpaint(fresh, inputs["controls"], inputs["reference"][0], T, steps=5, sampler=sampler))
    assert all(torch.equal(w.latents, torch.zeros_like(w.latents)) for w in windows)

    model = build.model("tiny", seed=2, sample_strength=0.4, **RESIDUAL)
    model.calls = model.frame_evaluations = 0
    windows = list(outpaint(model, inputs["controls"], inputs["reference"][0], T, steps=5, sampler=sampler))
    assert model.calls == 5 * 2  # 5 windows x round(5 x 0.4) steps
    assert model.frame_evaluations == ideal_frame_evaluations(T, 4, 2, 5, strength=0.4)
    assert all(torch.isfinite(w.latents).all() for w in windows)
    assert windows[0].meta["sample_strength"] == 0.4


def test_a_lower_strength_stays_closer_to_the_base(build):
    """Starting nearer the end of the schedule leaves the sampler less room to move away from the base
    frames (the point of truncation: less invented detail, less flicker)."""
    distances = []
    for strength in (1.0, 0.2):
        model = build.model("tiny", seed=2, sample_strength=strength, **RESIDUAL)
        inputs = build.inputs(model.config, frames=T)
        windows = list(outpaint(model, inputs["controls"], inputs["reference"][0], T, steps=10, seed=1))
        distances.append(torch.cat([w.latents for w in windows], 1).abs().mean().item())
    assert distances[1] < distances[0], distances


def test_training_draws_only_the_timesteps_sampling_visits():
    """timesteps="sampled": a residual model sampled with strength s never visits t > s x T, so training draws
    t <= s x T; "all" keeps the whole schedule."""
    from vlogger_cli.errors import InputError
    from vlogger_cli.train.video import Draws, TrainVideoConfig, training_timesteps

    config = preset("tiny", sample_strength=0.3, **RESIDUAL)  # tiny: num_train_timesteps 100
    assert training_timesteps(config, False) == config.num_train_timesteps
    assert training_timesteps(config, True) == 31
    gen = torch.Generator().manual_seed(0)
    sampled = Draws.draw(gen, config, 400, 1, sampled_only=True).steps
    everything = Draws.draw(gen, config, 400, 1).steps
    assert int(sampled.max()) == 30 and int(sampled.min()) == 0
    assert int(everything.max()) >= 90
    scheduler = make_scheduler(config, "dpm")
    scheduler.set_timesteps(10)
    kept, _ = truncated_timesteps(scheduler, config.sample_strength)
    assert int(kept.max()) < training_timesteps(config, True)  # every step sampling runs was trained on
    with pytest.raises(InputError, match="timesteps"):
        TrainVideoConfig(timesteps="some")


def test_a_model_with_fixed_sample_steps_takes_them_whatever_the_job_asks(build):
    """sample_steps 1: one denoiser call per window (its x0 prediction from noise), with any requested steps;
    the window's meta records the steps it ran."""
    from vlogger_cli.video.model import REUSABLE_OVERRIDES

    with pytest.raises(ValueError, match="sample_steps"):
        preset("tiny", sample_steps=0)
    assert "sample_steps" in REUSABLE_OVERRIDES
    model = build.model("tiny", seed=2, sample_steps=1, **RESIDUAL)
    inputs = build.inputs(model.config, frames=T)
    model.calls = 0
    windows = list(outpaint(model, inputs["controls"], inputs["reference"][0], T, steps=10))
    assert model.calls == len(windows) == 5 and windows[0].meta["steps"] == 1
    free = build.model("tiny", seed=2, **RESIDUAL)
    free.calls = 0
    list(outpaint(free, inputs["controls"], inputs["reference"][0], T, steps=3))
    assert free.calls == 5 * 3


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm"])
def test_every_sampler_starts_at_the_end_of_the_schedule(sampler):
    """One step (or few) starts from pure noise at t = T - 1 with every sampler: DDPM/DDIM's default "leading"
    spacing would evaluate a one-step model at t = 0 on pure noise."""
    config = preset("tiny")
    scheduler = make_scheduler(config, sampler)
    for steps in (1, 4):
        scheduler.set_timesteps(steps)
        assert int(scheduler.timesteps[0]) == config.num_train_timesteps - 1


def test_a_model_with_fixed_steps_trains_on_the_timesteps_its_solver_visits():
    from vlogger_cli.train.video import Draws, training_timestep_set

    one = preset("tiny", sample_steps=1, **RESIDUAL)
    assert training_timestep_set(one, True).tolist() == [one.num_train_timesteps - 1]
    steps = Draws.draw(torch.Generator().manual_seed(0), one, 50, 1, sampled_only=True).steps
    assert set(steps.tolist()) == {one.num_train_timesteps - 1}
    four = preset("tiny", sample_steps=4, sample_strength=0.5, **RESIDUAL)  # the last 2 of 4 steps
    allowed = training_timestep_set(four, True)
    scheduler = make_scheduler(four, "dpm")
    scheduler.set_timesteps(4)
    assert allowed.tolist() == scheduler.timesteps[2:].tolist()
    assert training_timestep_set(four, False).numel() == four.num_train_timesteps  # "all": the whole schedule


def test_residual_blur_smooths_the_sampled_residual_and_keeps_known_pixels(build):
    """residual_blur: the residual a pixel-space model painted is smoothed before it joins its base (a 4x4
    patch grid goes, a broad correction stays); pixels given as known come back exactly; the windows' latents
    (what the next window continues from) are the sampler's own."""
    with pytest.raises(ValueError, match="residual_blur"):
        preset("tiny", residual_blur=1.0)  # not a residual model
    model = build.model("tiny", seed=2, residual_blur=1.5, **RESIDUAL)
    r, p = model.config.resolution, model.config.patch_size
    yy, xx = torch.meshgrid(torch.arange(r), torch.arange(r), indexing="ij")
    grid = (((yy // p + xx // p) % 2) * 2 - 1).float() * 0.2          # a checkerboard of 4x4 patches
    blob = torch.exp(-((yy - r / 2) ** 2 + (xx - r / 2) ** 2) / (2 * (r / 6) ** 2))  # a broad correction
    pixels = (grid + blob)[None, None].expand(1, 3, r, r)
    z = model.encode_frames(pixels)[None]  # (1, 1, C, g, g)
    smooth = model.decode_frames(model.smooth_residual(z)[0])[0, 0]
    assert (smooth - blob).abs().mean() < 0.25 * grid.abs().mean()  # the grid is gone, the blob stays
    known = torch.zeros_like(z)
    known[..., : model.config.grid // 2, :] = 1
    kept = model.smooth_residual(z, known)
    assert torch.equal(kept[known.bool()], z[known.bool()])

    inputs = build.inputs(model.config, frames=T)
    plain = build.model("tiny", seed=2, **RESIDUAL)
    a = list(outpaint(model, inputs["controls"], inputs["reference"][0], T, steps=2, seed=1))
    b = list(outpaint(plain, inputs["controls"], inputs["reference"][0], T, steps=2, seed=1))
    assert all(torch.equal(x.latents, y.latents) for x, y in zip(a, b))
    assert not all(torch.equal(x.frames, y.frames) for x, y in zip(a, b))
