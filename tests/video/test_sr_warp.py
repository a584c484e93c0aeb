"""An SR model whose control branch also reads the flow-warped portrait (`flow_reference`, preset
cpu-demo-sr256-warp): the data path gives that warp at the SR resolution, the residual stays over the
bicubically upsampled low-res frames (the warp is only a control input), and the cascade renders it."""

import numpy as np
import torch
import torch.nn.functional as F

from vlogger_cli.controls.warp import warp_portrait
from vlogger_cli.train.sr import TrainSRConfig, train_sr
from vlogger_cli.train.video_data import ClipSampler, load_clips, write_synthetic_dataset
from vlogger_cli.video.config import preset
from vlogger_cli.video.controls import from_unit, to_unit

SR_WARP = dict(resolution=32, lowres_resolution=16, residual=True, flow_reference=True, zero_init_out=True)


def test_sr_warp_preset_is_the_demo_sr_plus_the_warp_control():
    plain, warp = preset("cpu-demo-sr256"), preset("cpu-demo-sr256-warp")
    assert warp.flow_reference and warp.residual and warp.zero_init_out and warp.lowres_resolution == 128
    assert warp.control_channels == plain.control_channels + 3
    assert warp.replace(flow_reference=False, notes="") == plain.replace(notes="")


def test_sr_data_path_gives_the_warp_at_the_sr_resolution_and_trains(build, tmp_path):
    write_synthetic_dataset(tmp_path / "d", clips=3, frames=6, size=32)
    clips = load_clips(tmp_path / "d", "train")
    config = preset("tiny", **SR_WARP)
    clip = clips[0]
    target, ctrl, _, low = ClipSampler(clips, config).item(clip, 0, 3)
    assert ctrl.shape == (3, config.control_channels, 32, 32) and low.shape == (3, 3, 16, 16)
    expected = to_unit(warp_portrait(clip.reference(), clip.controls().flow[:3]))
    assert torch.equal(ctrl[:, -3:], expected)
    model = build.model("tiny", trained=False, **SR_WARP)
    # the residual is relative to the upsampled low-res frames, never to the warp
    up = F.interpolate(low, size=(32, 32), mode="bicubic", align_corners=False).clamp(-1, 1)
    assert torch.equal(model.residual_base(ctrl, low), model.encode_frames(up))

    cfg = TrainSRConfig(preset="tiny", model_overrides=SR_WARP, phases=["base", "control", "temporal"],
                        phase_steps=[2, 2, 1], batch_size=2, clip_batch_size=1, val_items=1, val_steps=1, log_every=1,
                        threads=1, device="cpu", pool=2, pool_refresh=0.5)
    info = train_sr(tmp_path / "d", tmp_path / "r", cfg, log=lambda *_: None)
    assert info["steps"] == 5 and all(np.isfinite(r["loss"]) for r in info["history"] if "loss" in r)


def test_sr_reads_the_warp_as_a_control(build):
    model = build.model("tiny", seed=3, **{**SR_WARP, "zero_init_out": False})
    c, g = model.config, model.config.grid
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, c.sample_channels, g, g, generator=gen)
    ctrl = torch.rand(1, 2, c.control_channels, 32, 32, generator=gen) * 2 - 1
    low = model.lowres_on_grid(torch.rand(2, 3, 16, 16, generator=gen) * 2 - 1)[None]
    tokens = model.encode_reference(torch.zeros(1, 3, 32, 32))
    with torch.no_grad():
        a = model(x, 10, tokens, ctrl, low)
        other = ctrl.clone()
        other[:, :, -3:] = -other[:, :, -3:]
        b = model(x, 10, tokens, other, low)
    assert not torch.allclose(a, b)


def test_fresh_sr_warp_cascade_renders_bicubic(build, tmp_path):
    """render_cascade: the warp reaches the SR stage, whose untrained (zero-residual) frames are the base's
    frames upsampled bicubically whatever the warp says."""
    _, _, low, high = build.cascade(tmp_path, **SR_WARP)  # control layers perturbed, output conv still zero
    assert low.shape == (6, 16, 16, 3) and high.shape == (6, 32, 32, 3)
    expected = from_unit(F.interpolate(to_unit(low), size=(32, 32), mode="bicubic", align_corners=False)).astype(int)
    assert np.abs(high.astype(int) - expected).max() <= 1
