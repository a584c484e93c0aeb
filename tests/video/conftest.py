"""Tiny stage-2 models for the tests (VideoModelConfig preset "tiny": 32² frames, ~0.1 M parameters).

One torch thread: on a shared 2-core machine, OpenMP's spinning threads make tiny models up to 25x
slower when the cores are busy (measured: a tiny training run 0.85 s with 1 thread, 23.7 s with 2).
"""

import pytest
import torch

torch.set_num_threads(1)

from vlogger_cli.video.config import preset
from vlogger_cli.video.model import VideoDiffusionModel


def perturb_zero_layers(model: VideoDiffusionModel, seed: int = 0, std: float = 0.05) -> VideoDiffusionModel:
    """Give the zero-initialised layers (control zero-convs, temporal convs) non-zero weights, as after training."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        zero_convs = [*model.controlnet.controlnet_down_blocks, model.controlnet.controlnet_mid_block,
                      model.controlnet.controlnet_cond_embedding.conv_out, *(l.conv for l in model.temporal.layers)]
        for module in zero_convs:
            for p in module.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model


def make_model(name: str = "tiny", seed: int = 0, trained: bool = True, **overrides) -> VideoDiffusionModel:
    torch.manual_seed(seed)
    model = VideoDiffusionModel.from_config(preset(name, **overrides)).eval()
    return perturb_zero_layers(model, seed) if trained else model


def make_inputs(config, frames: int, batch: int = 1, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    r, g = config.resolution, config.grid
    return {
        "sample": torch.randn(batch, frames, config.sample_channels, g, g, generator=gen),
        "reference": torch.rand(batch, 3, r, r, generator=gen) * 2 - 1,
        "controls": torch.randn(frames, config.control_channels, r, r, generator=gen),
        "lowres": (torch.rand(frames, 3, config.lowres_resolution, config.lowres_resolution, generator=gen) * 2 - 1
                   if config.lowres_resolution else None),
    }


def render_tiny_cascade(path, frames: int = 6, **sr_overrides):
    """A fresh 16² base + a 32² SR model (control layers perturbed, output conv as built) rendered by
    render_cascade over a one-clip synthetic dataset under `path`: (clip, sr model, base frames, SR frames),
    frames as uint8 arrays (T, R, R, 3)."""
    import numpy as np

    from vlogger_cli.train.video_data import load_clips, write_synthetic_dataset
    from vlogger_cli.video.chunks import window_store
    from vlogger_cli.video.render import render_cascade

    write_synthetic_dataset(path / "d", clips=1, frames=frames, size=32, val_clips=0)
    clip = load_clips(path / "d")[0]
    base = make_model("tiny", trained=False, resolution=16)
    sr = make_model("tiny", seed=1, **sr_overrides)
    render_cascade([base, sr], clip.controls(), clip.reference(), frames, path / "chunks", steps=2, window=4,
                   overlap=0.5)
    low = np.asarray(window_store(path / "chunks" / "base").frames(0, frames))
    high = np.asarray(window_store(path / "chunks" / "sr32").frames(0, frames))
    return clip, sr, low, high


@pytest.fixture(scope="module")
def tiny():
    return make_model()


@pytest.fixture(scope="module")
def tiny_sr():
    return make_model("tiny", seed=1, resolution=64, lowres_resolution=32, residual=True)


@pytest.fixture(scope="session")
def build():
    """Factories for tests: build.model(name, seed, trained, **overrides), build.inputs(config, frames, batch, seed),
    build.cascade(path, frames, **sr_overrides)."""

    class Build:
        model = staticmethod(make_model)
        inputs = staticmethod(make_inputs)
        perturb = staticmethod(perturb_zero_layers)
        cascade = staticmethod(render_tiny_cascade)

    return Build
