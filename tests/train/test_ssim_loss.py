"""The SSIM term of the stage-2 loss (train/ssim.py `ssim_map`, train/video.py `ssim_loss`, config `ssim_weight`)."""

import json

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # tiny models: OpenMP's spinning threads only slow them on a shared machine

from vlogger_cli.body.model import PART_INDEX  # noqa: E402
from vlogger_cli.errors import InputError  # noqa: E402
from vlogger_cli.train.ssim import ssim_map  # noqa: E402
from vlogger_cli.train.video import Draws, TrainVideoConfig, diffusion_loss  # noqa: E402
from vlogger_cli.train.video_data import Batch  # noqa: E402
from vlogger_cli.video.config import preset  # noqa: E402
from vlogger_cli.video.model import VideoDiffusionModel  # noqa: E402


def _images(n=2, size=24, seed=0):
    """Smooth random images in [-1, 1] (N, 3, size, size): structure at several scales, not white noise."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size // 4, size // 4, generator=gen) * 2 - 1
    fine = torch.rand(n, 3, size, size, generator=gen) * 2 - 1
    return (torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear") * 0.7 + fine * 0.3).clamp(-1, 1)


def test_ssim_map_is_one_for_equal_images_lower_for_noise_and_matches_skimage():
    from skimage.metrics import structural_similarity

    a = _images()
    same = ssim_map(a, a.clone())
    assert same.shape == (2, 1, 24, 24) and torch.allclose(same, torch.ones_like(same), atol=1e-5)
    noisy = (a + 0.2 * torch.randn(a.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    worse = ssim_map(a, noisy)
    assert float(worse.mean()) < 0.9 and bool((worse < same).float().mean() > 0.95)

    b = _images(seed=2)
    ours = ssim_map(a, b)
    for i in range(len(a)):
        mean, full = structural_similarity(a[i].numpy(), b[i].numpy(), channel_axis=0, data_range=2,
                                           gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True)
        assert abs(float(ours[i].mean()) - full.mean()) < 1e-3  # the metric's map (video/quality.py), borders too
        assert np.allclose(ours[i, 0].numpy(), full.mean(0), atol=1e-4)
        assert abs(float(ours[i, 0, 5:-5, 5:-5].mean()) - mean) < 1e-3  # skimage's mean crops the borders


def test_ssim_map_keeps_the_gradient_and_ignores_autocast():
    a, b = _images(seed=3).requires_grad_(True), _images(seed=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = ssim_map(a, b)
    assert value.dtype == torch.float32
    (1 - value).mean().backward()
    assert a.grad is not None and float(a.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="ssim_map"):
        ssim_map(a[:1], b)


def _model(seed=0, **overrides) -> VideoDiffusionModel:
    torch.manual_seed(seed)
    return VideoDiffusionModel.from_config(preset("tiny", **overrides))


def _batch(config, size=2, seed=0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    r = config.resolution
    controls = torch.rand(size, 1, config.control_channels, r, r, generator=gen) * 2 - 1
    controls[:, :, 4:4 + len(PART_INDEX)] = 0
    controls[:, :, 4 + PART_INDEX["lips"], :, : r // 2] = 1  # C^m: lips on the left half
    low = config.lowres_resolution
    return Batch(frames=torch.rand(size, 1, 3, r, r, generator=gen) * 2 - 1, controls=controls,
                 reference=torch.rand(size, 3, config.reference_size, config.reference_size, generator=gen) * 2 - 1,
                 lowres=torch.rand(size, 1, 3, low, low, generator=gen) * 2 - 1 if low else None)


CASES = {  # name: (model overrides, region weights)
    "base": (dict(), {}),
    "residual-base": (dict(flow_reference=True, residual=True, residual_scale=4.0), {"lips": 3.0}),
    "residual-sr": (dict(resolution=32, lowres_resolution=16, residual=True, residual_scale=2.0), {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_ssim_term_adds_to_the_loss_and_reaches_the_weights(case):
    overrides, weights = CASES[case]
    model = _model(**overrides)
    params = model.set_phase("base")
    batch = _batch(model.config)
    draws = Draws.draw(torch.Generator().manual_seed(5), model.config, 2, 1)
    cpu = torch.device("cpu")
    plain = diffusion_loss(model, batch, "base", TrainVideoConfig(cond_dropout=0.0, region_weights=weights), None, cpu,
                           draws)
    mixed = diffusion_loss(model, batch, "base", TrainVideoConfig(cond_dropout=0.0, region_weights=weights,
                                                                  ssim_weight=0.5), None, cpu, draws)
    assert float(mixed.detach()) > float(plain.detach()) > 0
    (mixed - plain).backward()  # the SSIM term's own gradient
    grads = [p.grad for p in params if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    assert model.unet.conv_out.weight.grad is not None and float(model.unet.conv_out.weight.grad.abs().sum()) > 0


def test_ssim_weight_zero_leaves_the_loss_alone_and_other_predictions_are_refused():
    model = _model()
    batch, cpu = _batch(model.config), torch.device("cpu")
    draws = Draws.draw(torch.Generator().manual_seed(5), model.config, 2, 1)
    with torch.no_grad():
        a = diffusion_loss(model, batch, "base", TrainVideoConfig(), None, cpu, draws)
        b = diffusion_loss(model, batch, "base", TrainVideoConfig(ssim_weight=0), None, cpu, draws)
    assert torch.equal(a, b)
    eps = _model(prediction_type="epsilon")
    with pytest.raises(InputError, match="ssim_weight"):
        diffusion_loss(eps, batch, "base", TrainVideoConfig(ssim_weight=0.5), None, cpu, draws)


def test_ssim_weight_is_checked_parsed_from_set_and_saved():
    import dataclasses

    from vlogger_cli.cli._config import config_values
    from vlogger_cli.train.sr import TrainSRConfig

    for bad in (-1, -0.5, float("nan"), float("inf"), "lots", True):
        with pytest.raises(InputError, match="ssim_weight"):
            TrainVideoConfig(ssim_weight=bad)
    assert TrainVideoConfig().ssim_weight == 0.0
    for cls in (TrainVideoConfig, TrainSRConfig):
        cfg = cls.from_dict(config_values(None, ("ssim_weight=0.5",)))
        assert cfg.ssim_weight == 0.5
        assert json.loads(json.dumps(dataclasses.asdict(cfg)))["ssim_weight"] == 0.5  # what config.json holds
    assert TrainVideoConfig.from_dict(config_values(None, ("ssim_weight=1",))).ssim_weight == 1.0


def test_a_run_with_ssim_weight_trains_and_writes_it_to_config_json(tmp_path):
    from click.testing import CliRunner

    from vlogger_cli.cli.train_video import video
    from vlogger_cli.train.video_data import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "d", clips=2, frames=4, size=32, seed=0)
    args = ["--data", str(tmp_path / "d"), "--out", str(tmp_path / "run"), "--preset", "tiny", "--phases", "base",
            "--steps", "2", "--batch-size", "2", "--device", "cpu", "--set", "ssim_weight=0.5",
            "--set", "val_items=2", "--set", "val_steps=1", "--set", "log_every=1", "--set", "warmup=1"]
    result = CliRunner().invoke(video, args)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["ssim_weight"] == 0.5
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2] and all(np.isfinite(r["loss"]) for r in log if "loss" in r)
    bad = CliRunner().invoke(video, args[:4] + ["--set", "ssim_weight=-1"])
    assert bad.exit_code == 2 and "ssim_weight" in bad.output
