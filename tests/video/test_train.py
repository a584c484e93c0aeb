import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vlogger_cli.errors import InputError
from vlogger_cli.train.sr import TrainSRConfig, train_sr
from vlogger_cli.train.video import TrainVideoConfig, train_video
from vlogger_cli.train.video_data import ClipSampler, load_clips, write_synthetic_dataset
from vlogger_cli.video.config import preset
from vlogger_cli.video.model import VideoDiffusionModel

SR_OVERRIDES = dict(resolution=32, lowres_resolution=16, residual=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("video_data")
    write_synthetic_dataset(root, clips=3, frames=10, size=32, seed=0)
    return root


def small(**kw) -> TrainVideoConfig:
    base = dict(preset="tiny", phases=["base", "control", "temporal"], phase_steps=[6, 6, 4], batch_size=4,
                clip_batch_size=2, lr=2e-3, warmup=2, log_every=2, val_every=6, ckpt_every=2, val_items=2, val_steps=2)
    return TrainVideoConfig(**{**base, **kw})


def test_dataset_round_trip_and_batches(data):
    train, val = load_clips(data, "train"), load_clips(data, "val")
    assert [c.split for c in train + val] == ["train", "train", "val"]
    assert train[0].frames().shape == (10, 32, 32, 3) and len(train[0].controls()) == 10
    sampler = ClipSampler(train, preset("tiny"))
    b = sampler.batch(np.random.default_rng(0), 3, frames=4)
    assert b.frames.shape == (3, 4, 3, 32, 32) and b.controls.shape == (3, 4, 23, 32, 32) and b.lowres is None
    assert b.frames.min() >= -1 and b.frames.max() <= 1
    sr = ClipSampler(train, preset("tiny", **SR_OVERRIDES)).batch(np.random.default_rng(0), 2, frames=1)
    assert sr.lowres.shape == (2, 1, 3, 16, 16)
    with pytest.raises(InputError, match="Video dataset"):
        load_clips(data / "clips")


def test_phase_schedule():
    cfg = small()
    assert [cfg.phase_at(s)[1] for s in (0, 5, 6, 11, 12, 15)] == ["base", "base", "control", "control", "temporal", "temporal"]
    with pytest.raises(InputError):
        TrainVideoConfig(phases=["base", "nope"], phase_steps=[1, 1])


def test_training_runs_end_to_end_decreases_the_loss_and_exports(data, tmp_path):
    info = train_video(data, tmp_path / "run", small(phase_steps=[60, 6, 4], batch_size=8, log_every=20, val_every=30),
                       log=lambda s: None)
    base_losses = [r["loss"] for r in info["history"] if r["phase"] == "base" and "loss" in r]
    assert len(base_losses) == 3 and base_losses[-1] < 0.9 * base_losses[0]
    for name in ("phase_base", "phase_control", "phase_temporal", "final"):
        assert (tmp_path / "run" / name / "video_model.json").is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "val").iterdir())[-1] == "step_00000070.png"
    model = VideoDiffusionModel.from_pretrained(tmp_path / "run" / "final")
    # each phase trained its part: the temporal layers and the control zero-convs are no longer zero
    assert any(float(p.abs().sum()) > 0 for p in model.temporal.parameters())
    assert float(model.controlnet.controlnet_mid_block.weight.abs().sum()) > 0
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 70 and "val_loss" in log[-1]


def test_resume_after_an_interruption_gives_the_same_weights(data, tmp_path):
    train_video(data, tmp_path / "whole", small(), log=lambda s: None)
    train_video(data, tmp_path / "cut", small(), log=lambda s: None, stop_at=7)  # killed after step 7 (last ckpt: 6)
    with pytest.raises(InputError, match="--resume"):
        train_video(data, tmp_path / "cut", small(), log=lambda s: None)
    train_video(data, tmp_path / "cut", small(), log=lambda s: None, resume=True)
    for part in ("unet", "controlnet", "temporal", "reference_encoder"):
        a = load_file(str(tmp_path / "whole" / "final" / part / "diffusion_pytorch_model.safetensors"))
        b = load_file(str(tmp_path / "cut" / "final" / part / "diffusion_pytorch_model.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), part


def test_sr_training_makes_an_sr_model(data, tmp_path):
    cfg = TrainSRConfig(preset="tiny", model_overrides=SR_OVERRIDES, phases=["base", "temporal"], phase_steps=[2, 2],
                        batch_size=2, clip_batch_size=1, val_every=4, ckpt_every=4, val_items=1, val_steps=2, log_every=2)
    train_sr(data, tmp_path / "sr", cfg, log=lambda s: None)
    model = VideoDiffusionModel.from_pretrained(tmp_path / "sr" / "final")
    assert model.config.lowres_resolution == 16
    with pytest.raises(InputError, match="not an SR model"):
        train_sr(data, tmp_path / "sr2", TrainSRConfig(preset="tiny"), log=lambda s: None)


def test_a_fine_tune_may_change_the_residual_scale_but_not_the_weights_shapes(data, tmp_path):
    """--init with model_overrides: scales and sampling settings of the started-from folder change (real footage's
    residual is ~20x the generated data's); a field that would reshape the weights is refused in one line."""
    first = small(phase_steps=[4, 2, 2], model_overrides={"residual": True, "flow_reference": True,
                                                         "residual_scale": 5.0, "sample_strength": 0.5})
    train_video(data, tmp_path / "a", first, log=lambda s: None)
    tuned = small(phases=["control"], phase_steps=[2], init=str(tmp_path / "a" / "final"), timesteps="sampled",
                  model_overrides={"residual_scale": 1.0, "sample_strength": 0.6})
    train_video(data, tmp_path / "b", tuned, log=lambda s: None)
    config = json.loads((tmp_path / "b" / "final" / "video_model.json").read_text())
    assert (config["residual_scale"], config["sample_strength"]) == (1.0, 0.6)
    before = VideoDiffusionModel.from_pretrained(tmp_path / "a" / "final")
    after = VideoDiffusionModel.from_pretrained(tmp_path / "b" / "final")
    assert torch.equal(before.unet.conv_in.weight, after.unet.conv_in.weight)  # frozen in phase control
    with pytest.raises(InputError, match="block_out_channels.*residual_scale"):
        train_video(data, tmp_path / "c", small(phases=["control"], phase_steps=[1], init=str(tmp_path / "a" / "final"),
                                                model_overrides={"block_out_channels": [8, 8]}), log=lambda s: None)
