"""Residual SR with detail transfer (`detail_transfer`, preset cpu-demo-sr256-detail): the frames the SR
model's samples are relative to are the upsampled low-res frame plus the flow-warped portrait's fine detail
where the two agree, so an untrained model renders the sharp warp where the base kept it and the base's
own (upsampled) frame where the base changed it."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vlogger_cli.train.sr import TrainSRConfig, train_sr
from vlogger_cli.train.video_data import write_synthetic_dataset
from vlogger_cli.video.config import preset
from vlogger_cli.video.controls import from_unit, to_unit

DETAIL = dict(resolution=32, lowres_resolution=16, residual=True, flow_reference=True, zero_init_out=True,
              detail_transfer=0.08)


def _textured_warp(seed: int = 0) -> torch.Tensor:
    """(1, 3, 32, 32) in [-1, 1] with detail at every scale (what bicubic upsampling cannot restore)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(torch.rand(1, 3, 4, 4, generator=gen) * 1.2 - 0.6, size=(32, 32), mode="bilinear",
                           align_corners=False)
    return (coarse + 0.3 * (torch.rand(1, 3, 32, 32, generator=gen) - 0.5)).clamp(-1, 1)


def _controls(model, warp: torch.Tensor) -> torch.Tensor:
    ctrl = torch.zeros(warp.shape[0], model.config.control_channels, 32, 32)
    ctrl[:, -3:] = warp
    return ctrl


def test_detail_preset_is_the_warp_sr_plus_detail_transfer():
    warp, detail = preset("cpu-demo-sr256-warp"), preset("cpu-demo-sr256-detail")
    assert detail.detail_transfer > 0 and detail.residual and detail.flow_reference and detail.zero_init_out
    assert detail.residual_scale > 1 and detail.sample_strength < 1
    assert detail.replace(detail_transfer=0.0, residual_scale=1.0, sample_strength=1.0, notes="") == warp.replace(notes="")


@pytest.mark.parametrize("bad", [dict(flow_reference=False), dict(residual=False), dict(lowres_resolution=None)])
def test_detail_transfer_needs_a_residual_sr_reading_the_warp(bad):
    with pytest.raises(ValueError, match="detail_transfer"):
        preset("tiny", **{**DETAIL, **bad})


def test_where_the_low_res_frame_is_the_warp_the_base_is_the_sharp_warp(build):
    model = build.model("tiny", trained=False, **DETAIL)
    warp = _textured_warp()
    low = F.interpolate(warp, size=(16, 16), mode="area")
    base = model.decode_frames(model.residual_base(_controls(model, warp), low))
    bicubic = F.interpolate(low, size=(32, 32), mode="bicubic", align_corners=False).clamp(-1, 1)
    assert torch.allclose(base, warp, atol=1e-5)
    assert (bicubic - warp).abs().mean() > 0.03  # what plain residual SR starts from loses that detail


def test_where_the_low_res_frame_changed_the_warps_detail_is_left_out(build):
    """The base regenerated the left half (say, an opened mouth): there the SR base is the low-res frame
    upsampled, with none of the stale warp's detail; the right half keeps the warp."""
    model = build.model("tiny", trained=False, **DETAIL)
    warp = _textured_warp()
    low = F.interpolate(warp, size=(16, 16), mode="area")
    low[..., :, :6] = -low[..., :, :6]  # regenerated: far from the warp
    base = model.decode_frames(model.residual_base(_controls(model, warp), low))
    bicubic = F.interpolate(low, size=(32, 32), mode="bicubic", align_corners=False).clamp(-1, 1)
    assert torch.allclose(base[..., :, :8], bicubic[..., :, :8], atol=0.02)
    assert torch.allclose(base[..., :, 20:], warp[..., :, 20:], atol=1e-4)
    with pytest.raises(ValueError, match="controls"):
        model.lowres_base(low)


def test_detail_sr_trains_and_exports(tmp_path):
    write_synthetic_dataset(tmp_path / "d", clips=3, frames=6, size=32)
    cfg = TrainSRConfig(preset="tiny", model_overrides=DETAIL, phases=["base", "control", "temporal"],
                        phase_steps=[2, 2, 1], batch_size=2, clip_batch_size=1, val_items=1, val_steps=1, log_every=1,
                        threads=1, device="cpu", pool=2, pool_refresh=0.5)
    info = train_sr(tmp_path / "d", tmp_path / "r", cfg, log=lambda *_: None)
    assert info["steps"] == 5 and all(np.isfinite(r["loss"]) for r in info["history"] if "loss" in r)
    assert (tmp_path / "r" / "final" / "video_model.json").is_file()
    assert '"detail_transfer": 0.08' in (tmp_path / "r" / "final" / "video_model.json").read_text()


def test_fresh_detail_cascade_renders_the_base_plus_the_warps_detail(build, tmp_path):
    """render_cascade: an untrained detail SR gives exactly its base frames (the base upsampled plus the
    warp's gated detail), sharper than bicubic where the base kept the warp."""
    from vlogger_cli.controls.warp import warp_portrait

    clip, sr, low, high = build.cascade(tmp_path, **DETAIL)  # control layers perturbed, output conv still zero
    warp = to_unit(warp_portrait(clip.reference(), clip.controls().flow[:6]))
    ctrl = torch.zeros(6, sr.config.control_channels, 32, 32)
    ctrl[:, -3:] = warp
    expected = from_unit(sr.decode_frames(sr.residual_base(ctrl, to_unit(low)))).astype(int)
    assert np.abs(high.astype(int) - expected).max() <= 1
