"""A base model predicting a residual over the flow-warped portrait (config `residual` + `flow_reference`,
preset cpu-demo-warp): a fresh one (`zero_init_out`) samples exactly the warp preview, training learns
x0 - warp, and the resident clip pool of the sampler gives the same tensors as direct reads."""

import numpy as np
import pytest
import torch

from vlogger_cli.video.config import preset
from vlogger_cli.video.outpaint import outpaint


def test_residual_needs_a_frame_to_be_relative_to():
    with pytest.raises(ValueError, match="residual needs"):
        preset("tiny", residual=True)
    assert preset("tiny", residual=True, flow_reference=True).residual
    assert preset("cpu-demo-warp").residual and preset("cpu-demo-warp").flow_reference


def test_fresh_warp_residual_base_samples_the_warp(build):
    model = build.model("tiny", trained=False, flow_reference=True, residual=True, zero_init_out=True)
    c = model.config
    gen = torch.Generator().manual_seed(0)
    controls = torch.rand(6, c.control_channels, c.resolution, c.resolution, generator=gen) * 2 - 1
    portrait = np.full((c.resolution, c.resolution, 3), 128, np.uint8)
    windows = list(outpaint(model, controls, portrait, 6, steps=2, seed=0, window=4, overlap=0.5))
    frames = np.concatenate([w.frames[0].numpy() for w in windows]).astype(int)
    from vlogger_cli.video.controls import from_unit

    expected = from_unit(controls[:, -3:]).astype(int)
    assert frames.shape == expected.shape
    assert np.abs(frames - expected).max() <= 1


def test_warp_residual_training_target(build, tmp_path):
    from vlogger_cli.train.video import TrainVideoConfig, train_video
    from vlogger_cli.train.video_data import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "d", clips=3, frames=6, size=32)
    cfg = TrainVideoConfig(preset="tiny", model_overrides=dict(flow_reference=True, residual=True, zero_init_out=True),
                           phases=["base", "control", "temporal"], phase_steps=[2, 2, 1], batch_size=2,
                           clip_batch_size=1, val_items=1, val_steps=1, log_every=1, threads=1, device="cpu",
                           pool=2, pool_refresh=0.5)
    info = train_video(tmp_path / "d", tmp_path / "r", cfg, log=lambda *_: None)
    assert info["steps"] == 5 and all(np.isfinite(r["loss"]) for r in info["history"] if "loss" in r)


def test_pool_batches_match_direct_reads(tmp_path):
    from vlogger_cli.train.video_data import (
        ClipSampler,
        load_clips,
        write_synthetic_dataset,
    )

    write_synthetic_dataset(tmp_path / "d", clips=2, frames=5, size=32)
    clips = load_clips(tmp_path / "d")
    config = preset("tiny", flow_reference=True)
    pooled = ClipSampler(clips, config, pool=2, refresh=0.0)
    batch = pooled.batch(np.random.default_rng(0), 3, 2)
    assert batch.frames.shape == (3, 2, 3, 32, 32) and batch.controls.shape[2] == config.control_channels
    direct = ClipSampler(clips, config)
    for clip, target, ctrl, _, _ in pooled.pool:
        t, c, _, _ = direct.item(clip, 0, clip.num_frames)
        assert torch.allclose(target.float(), t, atol=1e-2) and torch.allclose(ctrl.float(), c, atol=2e-2)
