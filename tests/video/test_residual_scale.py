"""Residual models diffuse (x0 - base) x `residual_scale`: the training target is scaled, samples are
scaled back on top of the base, known frames and pixels stay exact."""

import pytest
import torch

from vlogger_cli.train.video import TrainVideoConfig, diffusion_loss
from vlogger_cli.train.video_data import Batch
from vlogger_cli.video.config import preset
from vlogger_cli.video.outpaint import outpaint

RESIDUAL = dict(flow_reference=True, residual=True)


def test_residual_scale_is_for_residual_models():
    with pytest.raises(ValueError, match="residual_scale"):
        preset("tiny", residual_scale=4.0)
    with pytest.raises(ValueError, match="residual_scale"):
        preset("tiny", residual_scale=0.0, **RESIDUAL)


def test_to_and_from_residual_are_inverse(build):
    model = build.model("tiny", trained=False, residual_scale=4.0, **RESIDUAL)
    gen = torch.Generator().manual_seed(0)
    x0, base = torch.randn(2, 12, 16, 16, generator=gen), torch.randn(2, 12, 16, 16, generator=gen)
    z = model.to_residual(x0, base)
    assert torch.allclose(z, (x0 - base) * 4.0)
    assert torch.allclose(model.from_residual(z, base), x0, atol=1e-6)
    assert model.to_residual(x0, None) is x0 and model.from_residual(x0, None) is x0


def test_the_training_target_is_the_scaled_residual(build):
    """A zero-output x0 model's loss is the mean square of its target: scale 4 gives 16x the loss of scale 1
    on the same batch and noise draws."""
    losses = []
    for scale in (1.0, 4.0):
        model = build.model("tiny", trained=False, zero_init_out=True, residual_scale=scale, **RESIDUAL)
        c = model.config
        gen = torch.Generator().manual_seed(0)
        batch = Batch(frames=torch.rand(2, 1, 3, 32, 32, generator=gen) * 2 - 1,
                      controls=torch.rand(2, 1, c.control_channels, 32, 32, generator=gen) * 2 - 1,
                      reference=torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1, lowres=None)
        losses.append(float(diffusion_loss(model, batch, "control", TrainVideoConfig(cond_dropout=0.0),
                                           torch.Generator().manual_seed(1), torch.device("cpu")).detach()))
    assert losses[0] > 0 and losses[1] == pytest.approx(16 * losses[0], rel=1e-4)


def test_scaled_samples_decode_on_top_of_the_base(build):
    """An untrained scaled residual model samples its base exactly; a perturbed one stays finite and its
    overlap frames are still the conditioning frames."""
    fresh = build.model("tiny", trained=False, zero_init_out=True, residual_scale=8.0, **RESIDUAL)
    inputs = build.inputs(fresh.config, frames=7)
    windows = list(outpaint(fresh, inputs["controls"], inputs["reference"][0], 7, steps=2))
    assert all(torch.equal(w.latents, torch.zeros_like(w.latents)) for w in windows)
    warp = fresh.flow_base(inputs["controls"][:4].clamp(-1, 1))
    from vlogger_cli.video.controls import from_unit

    assert torch.equal(windows[0].frames[0], torch.from_numpy(from_unit(fresh.decode_frames(warp))))
    model = build.model("tiny", seed=2, residual_scale=8.0, **RESIDUAL)
    windows = list(outpaint(model, inputs["controls"], inputs["reference"][0], 7, steps=2))
    assert torch.equal(windows[1].latents[:, :2], windows[0].latents[:, -2:])
