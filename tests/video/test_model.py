import json

import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel

from vlogger_cli.body.model import PARTS
from vlogger_cli.controls.render import ControlFrames
from vlogger_cli.video.config import PRESETS, VideoModelConfig, preset
from vlogger_cli.video.controls import control_tensor
from vlogger_cli.video.model import VideoDiffusionModel


def _base_only(model, inputs, t=7):
    """The frozen base alone, called as plain diffusers (no hooks active, no control residuals)."""
    x = inputs["sample"].flatten(0, 1)
    frames = inputs["sample"].shape[1]
    if inputs["lowres"] is not None:
        x = torch.cat([x, model.lowres_on_grid(inputs["lowres"])], 1)
    tokens = model.encode_reference(inputs["reference"]).repeat_interleave(frames, 0)
    return model.unet(x, torch.tensor(t), encoder_hidden_states=tokens).sample.unflatten(0, inputs["sample"].shape[:2])


@pytest.mark.parametrize("sr", [False, True])
def test_untrained_control_and_temporal_layers_leave_the_base_unchanged(build, sr):
    over = dict(resolution=64, lowres_resolution=32, residual=True) if sr else {}
    model = build.model("tiny", trained=False, **over)
    inputs = build.inputs(model.config, frames=4)
    with torch.no_grad():
        tokens = model.encode_reference(inputs["reference"])
        lowres = model.lowres_on_grid(inputs["lowres"])[None] if sr else None
        full = model(inputs["sample"], 7, tokens, inputs["controls"][None], lowres)
        base = _base_only(model, inputs)
    assert torch.equal(full, base)  # exactly: zero convolutions add exact zeros


def test_trained_layers_do_change_the_output_and_mix_frames(build, tiny):
    inputs = build.inputs(tiny.config, frames=4)
    with torch.no_grad():
        tokens = tiny.encode_reference(inputs["reference"])
        full = tiny(inputs["sample"], 7, tokens, inputs["controls"][None])
        base = _base_only(tiny, inputs)
        assert not torch.allclose(full, base)
        # temporal layers: changing frame 0 changes frame 2's output; without them it does not
        other = inputs["sample"].clone()
        other[:, 0] += 1.0
        moved = tiny(other, 7, tokens, inputs["controls"][None])
        assert not torch.allclose(moved[:, 2], full[:, 2])
        still = tiny(inputs["sample"], 7, tokens, inputs["controls"][None], temporal=False)
        still_moved = tiny(other, 7, tokens, inputs["controls"][None], temporal=False)
        assert torch.equal(still[:, 1:], still_moved[:, 1:])


def test_shapes_and_counters(build, tiny):
    c = tiny.config
    inputs = build.inputs(c, frames=3, batch=2)
    tiny.calls = tiny.frame_evaluations = 0
    with torch.no_grad():
        tokens = tiny.encode_reference(inputs["reference"])
        out = tiny(inputs["sample"], torch.tensor([3, 9]), tokens, inputs["controls"][None].expand(2, -1, -1, -1, -1))
    assert tokens.shape == (2, c.reference_grid ** 2 + 1, c.cross_attention_dim)
    assert out.shape == (2, 3, c.sample_channels, c.grid, c.grid)
    assert (tiny.calls, tiny.frame_evaluations) == (1, 6)


def test_pixel_space_codec_is_lossless(tiny):
    frames = torch.rand(5, 3, 32, 32) * 2 - 1
    z = tiny.encode_frames(frames)
    assert z.shape == (5, tiny.config.sample_channels, tiny.config.grid, tiny.config.grid)
    assert torch.equal(tiny.decode_frames(z), frames)


def test_save_and_load_offline_round_trip(build, tiny, tmp_path):
    tiny.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "video_model.json").read_text())["format"] == "vlogger-video-model"
    for part in ("unet", "controlnet", "temporal", "reference_encoder"):
        assert (tmp_path / "m" / part / "diffusion_pytorch_model.safetensors").is_file()
    loaded = VideoDiffusionModel.from_pretrained(tmp_path / "m").eval()
    inputs = build.inputs(tiny.config, frames=4)
    with torch.no_grad():
        a = tiny(inputs["sample"], 5, tiny.encode_reference(inputs["reference"]), inputs["controls"][None])
        b = loaded(inputs["sample"], 5, loaded.encode_reference(inputs["reference"]), inputs["controls"][None])
    assert torch.equal(a, b)


def test_a_folder_with_only_a_base_and_a_base_from_elsewhere(build, tiny, tmp_path):
    tiny.unet.save_pretrained(tmp_path / "base")
    only = tmp_path / "only"
    (only).mkdir()
    tiny.unet.save_pretrained(only / "unet")
    (only / "video_model.json").write_text(tiny.config.to_json())
    model = VideoDiffusionModel.from_pretrained(only)
    assert all(float(p.detach().abs().sum()) == 0 for l in model.temporal.layers for p in l.conv.parameters())
    tiny.save_pretrained(tmp_path / "full", save_base=False)
    other = VideoDiffusionModel.from_pretrained(tmp_path / "full", base=tmp_path / "base")
    for (k, v), (k2, v2) in zip(tiny.state_dict().items(), other.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k


def test_a_base_with_the_wrong_channels_is_refused():
    unet = UNet2DConditionModel(**preset("tiny").unet_kwargs())
    with pytest.raises(ValueError, match="in/out channels"):
        VideoDiffusionModel.from_config(preset("tiny", lowres_resolution=16), base=unet)


def test_training_phases_freeze_the_right_parts(build):
    model = build.model("tiny", trained=False)
    n = {k: v for k, v in model.num_parameters().items()}
    assert sum(p.numel() for p in model.set_phase("base")) == n["unet"] + n["reference_encoder"]
    assert sum(p.numel() for p in model.set_phase("control")) == n["controlnet"] + n["reference_encoder"]
    assert sum(p.numel() for p in model.set_phase("temporal")) == n["temporal"]
    assert not any(p.requires_grad for p in model.unet.parameters())


def test_latent_space_preset_with_a_tiny_vae(build, tmp_path):
    model = build.model("tiny", space="latent", vae_factor=4, conditioning_embedding_out_channels=(8, 8, 8))
    c = model.config
    assert (c.grid, c.sample_channels) == (8, 4)
    frames = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z = model.encode_frames(frames)
        assert z.shape == (2, 4, 8, 8) and model.decode_frames(z).shape == frames.shape
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "vae" / "config.json").is_file()
    again = VideoDiffusionModel.from_pretrained(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(again.encode_frames(frames), z)


def test_control_tensor_layout_and_downsampling():
    t, h = 2, 64
    rng = np.random.default_rng(0)
    parts = rng.integers(0, len(PARTS), (t, h, h)).astype(np.uint8)
    mouth = PARTS.index("mouth_interior")
    parts[parts == mouth] = PARTS.index("face_skin")
    parts[1, 40:48, 20:40] = mouth  # an open mouth in frame 1, which the portrait does not show
    warped_mask = rng.random((t, h, h)) > 0.5
    warped_mask[1, 40:48, 20:40] = False
    frames = ControlFrames(
        position=rng.normal(size=(t, h, h, 3)).astype(np.float32), mask=parts > 0, parts=parts,
        warped=rng.integers(0, 256, (t, h, h, 3)).astype(np.uint8), warped_mask=warped_mask,
        flow=np.zeros((t, h, h, 2), np.float32))
    c = preset("tiny", flow_reference=True)
    x = control_tensor(frames, h, num_parts=c.num_parts, flow_reference=True, portrait=np.full((h, h, 3), 255, np.uint8))
    assert x.shape == (t, c.control_channels, h, h)
    assert torch.equal(x[:, 4:4 + len(PARTS)].argmax(1), torch.from_numpy(parts).long())
    warp = x[:, -3:]  # the white portrait warped by zero flow, its mouth's cavity shaded (controls/mouth.py)
    assert torch.all(warp[0] == 1.0) and torch.all(warp[1, :, :37] == 1.0) and torch.all(warp[1, :, 51:] == 1.0)
    assert torch.all(warp[1, :, 42:46, 22:38] < 0.5)
    half = control_tensor(frames, h // 2, num_parts=c.num_parts, flow_reference=True,
                          portrait=np.full((h, h, 3), 255, np.uint8))
    assert half.shape[-1] == h // 2
    assert torch.allclose(half[:, 4:4 + len(PARTS)].sum(1), torch.ones(t, h // 2, h // 2))  # part fractions


def test_presets_are_consistent():
    for name, cfg in PRESETS.items():
        assert cfg.resolution // cfg.grid == 2 ** (len(cfg.conditioning_embedding_out_channels) - 1), name
        assert VideoModelConfig.from_dict(json.loads(cfg.to_json())) == cfg
    with pytest.raises(ValueError, match="entries"):
        preset("tiny", conditioning_embedding_out_channels=(8,))
    with pytest.raises(ValueError, match="unknown"):
        VideoModelConfig.from_dict({"nope": 1})
    with pytest.raises(ValueError, match="narrower"):  # 48 channels per grid cell through a 16-wide first level
        preset("tiny", patch_size=4, conditioning_embedding_out_channels=(8, 8, 8))


def test_a_deep_copy_runs_its_own_temporal_layers(build):
    import copy

    model = build.model("tiny")
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p in twin.temporal.parameters():
            p.add_(0.5)
    inputs = build.inputs(model.config, frames=4)
    with torch.no_grad():
        tokens = model.encode_reference(inputs["reference"])
        a = model(inputs["sample"], 5, tokens, inputs["controls"][None])
        b = twin(inputs["sample"], 5, tokens, inputs["controls"][None])
        again = model(inputs["sample"], 5, tokens, inputs["controls"][None])
    assert not torch.allclose(a, b) and torch.equal(a, again)


def test_reset_control_branch_copies_the_base_encoder_and_zeroes_the_output(build):
    model = build.model("tiny")
    with torch.no_grad():
        for p in model.unet.down_blocks.parameters():
            p.add_(0.01)
    model.reset_control_branch()
    for (k, v), (k2, v2) in zip(model.unet.down_blocks.state_dict().items(), model.controlnet.down_blocks.state_dict().items()):
        assert torch.equal(v, v2), k
    assert all(float(p.detach().abs().sum()) == 0 for p in model.controlnet.controlnet_down_blocks.parameters())


def test_half_precision_export_loads_back_as_float32(tiny, tmp_path):
    tiny.save_pretrained(tmp_path / "h", dtype=torch.float16)
    size16 = sum(f.stat().st_size for f in (tmp_path / "h").rglob("*.safetensors"))
    tiny.save_pretrained(tmp_path / "f")
    size32 = sum(f.stat().st_size for f in (tmp_path / "f").rglob("*.safetensors"))
    assert size16 < 0.6 * size32
    loaded = VideoDiffusionModel.from_pretrained(tmp_path / "h")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert next(tiny.parameters()).dtype == torch.float32  # the model itself was not converted
    for (k, a), b in zip(tiny.state_dict().items(), loaded.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-2, rtol=1e-3), k
