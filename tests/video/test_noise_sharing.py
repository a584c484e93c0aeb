"""`noise_sharing`: the initial noise of a video's frames mixes one field per video (from its seed) with
per-frame draws, so a deterministic solver paints the same grain on every frame (less flicker)."""

import pytest
import torch

from vlogger_cli.video.config import preset
from vlogger_cli.video.outpaint import outpaint
from vlogger_cli.video.sampling import initial_noise, randn

SHAPE = (2, 6, 3, 8, 8)


def test_sharing_is_a_fraction_a_loaded_model_may_change():
    from vlogger_cli.video.model import REUSABLE_OVERRIDES

    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="noise_sharing"):
            preset("tiny", noise_sharing=bad)
    assert "noise_sharing" in REUSABLE_OVERRIDES


def test_no_sharing_draws_exactly_the_per_frame_noise():
    a = initial_noise(SHAPE, torch.Generator().manual_seed(3), 0.0, "cpu")
    b = randn(SHAPE, torch.Generator().manual_seed(3), "cpu")
    assert torch.equal(a, b)


def test_full_sharing_gives_every_frame_and_window_of_a_video_one_field():
    gen = torch.Generator().manual_seed(5)
    first = initial_noise(SHAPE, gen, 1.0, "cpu")
    later = initial_noise(SHAPE, gen, 1.0, "cpu")  # the next window: the generator has moved on
    assert torch.equal(first, first[:, :1].expand_as(first))  # every frame the same field
    assert not torch.equal(first[0], first[1])  # each row (sample) its own
    assert torch.equal(first, later)  # every window of the video the same
    resumed = torch.Generator()
    resumed.set_state(gen.get_state())  # a resumed run restores the generator's state: same seed, same field
    assert torch.equal(initial_noise(SHAPE, resumed, 1.0, "cpu"), first)
    other = initial_noise(SHAPE, torch.Generator().manual_seed(6), 1.0, "cpu")
    assert not torch.allclose(other, first)  # another video (seed), another field


def test_partial_sharing_keeps_unit_variance_and_correlates_frames_by_the_share():
    noise = initial_noise((1, 2, 4, 64, 64), torch.Generator().manual_seed(0), 0.6, "cpu")
    assert noise.var().item() == pytest.approx(1.0, abs=0.05)
    corr = torch.corrcoef(noise[0].flatten(1))[0, 1].item()
    assert corr == pytest.approx(0.6, abs=0.05)


def test_shared_noise_steadies_frames_of_still_controls(build):
    """With controls that do not change, a deterministic solver's frames differ only by their noise: a shared
    field makes consecutive frames far closer than i.i.d. noise does (the flicker the option removes)."""
    changes = {}
    for sharing in (0.0, 1.0):
        model = build.model("tiny", seed=2, noise_sharing=sharing)
        inputs = build.inputs(model.config, frames=6)
        still = inputs["controls"][:1].expand_as(inputs["controls"]).contiguous()
        (window,) = outpaint(model, still, inputs["reference"][0], 6, window=6, steps=4, sampler="ddim", seed=1)
        frames = window.latents
        changes[sharing] = (frames[:, 1:] - frames[:, :-1]).abs().mean().item()
    assert changes[1.0] < 0.5 * changes[0.0], changes
