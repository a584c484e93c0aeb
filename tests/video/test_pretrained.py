"""Stage 2 on a pretrained Stable-Diffusion-family base (video/pretrained.py): a tiny random SD-layout folder
(UNet2DConditionModel + AutoencoderKL of a few channels + scheduler config, written with save_pretrained) is
trained on with `vlogger train video --base`, exported without copying the base, and rendered at 512²."""

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from vlogger_cli.errors import InputError, JobError
from vlogger_cli.video.config import preset
from vlogger_cli.video.pretrained import base_folders, fit_config

SMALL = dict(conditioning_embedding_out_channels=(4, 8, 8, 8), reference_size=32, reference_channels=(8, 16),
             reference_grid=2, window=4)


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    """DIR/unet, DIR/vae (8x downsampling, 4 latent channels), DIR/scheduler: the SD 1.5 layout, ~30 k parameters."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    root = tmp_path_factory.mktemp("sd") / "tiny-sd"
    torch.manual_seed(0)
    UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16),
                         down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                         up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), layers_per_block=1,
                         cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4).save_pretrained(root / "unet")
    AutoencoderKL(latent_channels=4, block_out_channels=(4, 4, 4, 4), down_block_types=("DownEncoderBlock2D",) * 4,
                  up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1, norm_num_groups=2,
                  sample_size=64).save_pretrained(root / "vae")
    DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                  prediction_type="epsilon").save_pretrained(root / "scheduler")
    return root


def test_folders_and_config_follow_the_base(sd, tmp_path):
    assert base_folders(sd, None) == (sd / "unet", sd / "vae")  # a pipeline folder brings its VAE
    assert base_folders(sd / "unet", sd / "vae") == (sd / "unet", sd / "vae")  # or the components themselves
    config = fit_config(preset("latent-512"), *base_folders(sd, None))
    assert (config.space, config.vae_factor, config.vae_channels, config.grid) == ("latent", 8, 4, 64)
    assert (config.beta_schedule, config.beta_start, config.prediction_type) == ("scaled_linear", 0.00085, "epsilon")
    assert config.cross_attention_dim == 16 and config.block_out_channels == (8, 16)  # the base's, for readers
    with pytest.raises(InputError, match="AutoencoderKL, not a UNet2DConditionModel"):
        base_folders(sd / "vae", None)
    with pytest.raises(InputError, match="needs a VAE"):
        fit_config(preset("latent-512"), sd / "unet", None)
    with pytest.raises(InputError, match="stays frozen"):
        from vlogger_cli.train.video import TrainVideoConfig

        TrainVideoConfig(base=str(sd))  # the default phases start with "base"


def test_train_save_render_at_512_on_a_frozen_sd_base(sd, tmp_path, monkeypatch):
    import vlogger_cli.train.video as video_training
    from vlogger_cli.cli.train import train
    from vlogger_cli.train.video_data import load_clips, write_synthetic_dataset
    from vlogger_cli.video.render import load_cascade, render_cascade

    write_synthetic_dataset(tmp_path / "data", clips=2, frames=6, size=64, val_clips=0)
    built = []
    monkeypatch.setattr(video_training, "build_model", lambda cfg, make=video_training.build_model: built.append(
        make(cfg)) or built[-1])
    (tmp_path / "cfg.json").write_text(json.dumps(dict(
        model_overrides=SMALL, batch_size=2, clip_batch_size=1, val_items=1, val_steps=1, val_every=100, threads=1)))
    run = tmp_path / "run"
    result = CliRunner().invoke(train, ["video", "--data", str(tmp_path / "data"), "--out", str(run), "--base", str(sd),
                                        "--preset", "latent-512", "--phases", "control,temporal", "--steps", "2,1",
                                        "--config", str(tmp_path / "cfg.json"), "--set", "lr=0.01"])
    assert result.exit_code == 0, result.output

    # the base stayed frozen: the trained model's UNet and VAE are the folder's, bit for bit; only the control
    # branch, reference encoder and temporal layers were optimised (and moved)
    model = built[0]
    for part in ("unet", "vae"):
        saved = load_file(str(sd / part / "diffusion_pytorch_model.safetensors"))
        assert all(torch.equal(v, saved[k]) for k, v in getattr(model, part).state_dict().items()), part
    assert float(model.controlnet.controlnet_mid_block.weight.detach().abs().sum()) > 0
    assert any(float(p.detach().abs().sum()) > 0 for p in model.temporal.parameters())

    # exported without the base: base.json names it
    final = run / "final"
    assert not (final / "unet").exists() and not (final / "vae").exists()
    assert json.loads((final / "base.json").read_text()) == {"unet": str(sd / "unet"), "vae": str(sd / "vae")}

    weights = tmp_path / "weights"
    shutil.copytree(final, weights / "video")
    models = load_cascade(weights, 512)
    assert len(models) == 1 and models[0].config.space == "latent" and models[0].vae.use_slicing
    clip = load_clips(tmp_path / "data")[0]
    with torch.inference_mode():
        store = render_cascade(models, clip.controls(), clip.reference(), 6, tmp_path / "chunks", steps=2, window=4,
                               overlap=0.5)
    frames = np.asarray(store.frames(0, 6))
    assert frames.shape == (6, 512, 512, 3) and frames.dtype == np.uint8 and frames.std() > 1

    moved = sd.parent / "elsewhere"
    sd.rename(moved)
    try:
        with pytest.raises(JobError) as err:
            load_cascade(weights, 512)
    finally:
        moved.rename(sd)
    message = str(err.value)
    assert "\n" not in message and f"{sd / 'unet'}" in message and "base.json" in message


def test_a_missing_sr_folder_is_named(tmp_path):
    from vlogger_cli.video.render import cascade_folders

    (tmp_path / "video").mkdir()
    (tmp_path / "video" / "video_model.json").write_text(preset("gpu-sr256").to_json())  # a 256² first stage
    with pytest.raises(JobError) as err:
        cascade_folders(tmp_path, 512)
    message = str(err.value)
    assert f"{tmp_path / 'sr' / '512'}" in message and "gpu-sr512" in message and "resolution 256" in message
    (tmp_path / "sr" / "512").mkdir(parents=True)
    (tmp_path / "sr" / "512" / "video_model.json").write_text(preset("gpu-sr512").to_json())
    assert cascade_folders(tmp_path, 512) == [tmp_path / "video", tmp_path / "sr" / "512"]


def test_a_stopped_base_run_resumes_to_the_same_weights(sd, tmp_path):
    """`train video --base` killed between checkpoints and resumed with --resume ends with the weights of an
    uninterrupted run: the frozen base is rebuilt from its folder, the trained parts and the EMA, optimiser,
    schedule and RNGs come from the checkpoint (the base itself is in no checkpoint)."""
    from vlogger_cli.errors import InputError as Refused
    from vlogger_cli.train.video import TrainVideoConfig, train_video
    from vlogger_cli.train.video_data import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "data", clips=2, frames=6, size=64, val_clips=1)
    cfg = lambda: TrainVideoConfig(preset="latent-512", base=str(sd), model_overrides=SMALL,  # noqa: E731
                                   phases=["control", "temporal"], phase_steps=[4, 2], batch_size=2,
                                   clip_batch_size=1, lr=0.01, warmup=1, log_every=2, val_every=100, ckpt_every=2,
                                   val_items=1, val_steps=1, threads=1)
    quiet = lambda s: None  # noqa: E731
    train_video(tmp_path / "data", tmp_path / "whole", cfg(), log=quiet)
    # stopped after step 3, one step past its last checkpoint (2): the resumed run redoes step 3, then crosses
    # the phase boundary (step 4) as the uninterrupted one did
    train_video(tmp_path / "data", tmp_path / "cut", cfg(), log=quiet, stop_at=3)
    assert json.loads((tmp_path / "cut" / "latest.json").read_text())["step"] == 2
    assert not (tmp_path / "cut" / "final").exists()
    with pytest.raises(Refused, match="--resume"):
        train_video(tmp_path / "data", tmp_path / "cut", cfg(), log=quiet)
    train_video(tmp_path / "data", tmp_path / "cut", cfg(), log=quiet, resume=True)
    for part in ("controlnet", "temporal", "reference_encoder"):
        a = load_file(str(tmp_path / "whole" / "final" / part / "diffusion_pytorch_model.safetensors"))
        b = load_file(str(tmp_path / "cut" / "final" / part / "diffusion_pytorch_model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    for run in ("whole", "cut"):  # neither export copies the frozen base; both name the same one
        assert not (tmp_path / run / "final" / "unet").exists()
        assert json.loads((tmp_path / run / "final" / "base.json").read_text()) == {"unet": str(sd / "unet"),
                                                                                  "vae": str(sd / "vae")}
    whole = [json.loads(line) for line in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()]
    cut = [json.loads(line) for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert [(r["step"], r["loss"]) for r in cut if "loss" in r] == [(r["step"], r["loss"]) for r in whole if "loss" in r]
