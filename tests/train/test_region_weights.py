"""Region-weighted stage-2 loss (train/video.py `region_weight_map`, config `region_weights`)."""

import pytest
import torch

from vlogger_cli.body.model import PART_INDEX, PARTS
from vlogger_cli.errors import InputError
from vlogger_cli.train.video import TrainVideoConfig, region_weight_map, train_video


def _controls(size=16):
    """(1, 2, C, size, size) controls whose C^m marks lips in the top-left quarter, face skin elsewhere."""
    c = torch.zeros(1, 2, 4 + len(PARTS) + 4, size, size)
    c[:, :, 4 + PART_INDEX["face_skin"]] = 1
    c[:, :, 4 + PART_INDEX["face_skin"], :size // 2, :size // 2] = 0
    c[:, :, 4 + PART_INDEX["lips"], :size // 2, :size // 2] = 1
    return c


def test_weights_follow_the_parts_and_are_area_resized():
    w = region_weight_map(_controls(), {"lips": 4.0, "face_skin": 1.0}, 16)
    assert w.shape == (1, 2, 1, 16, 16)
    assert torch.all(w[..., :8, :8] == 5) and torch.all(w[..., 8:, :] == 2) and torch.all(w[..., :8, 8:] == 2)
    small = region_weight_map(_controls(), {"lips": 4.0}, 4)  # the loss grid of a patchified model
    assert small.shape == (1, 2, 1, 4, 4) and torch.allclose(small[0, 0, 0], torch.tensor([[5., 5, 1, 1]] * 2 + [[1.] * 4] * 2))
    assert torch.all(region_weight_map(_controls(), {}, 16) == 1)


def test_unknown_parts_and_negative_weights_are_refused():
    with pytest.raises(InputError, match="region_weights"):
        TrainVideoConfig(region_weights={"teeth": 2})
    with pytest.raises(InputError, match="region_weights"):
        TrainVideoConfig(region_weights={"lips": -1})


def test_weighted_training_runs_and_differs(tmp_path):
    """Same run, same seed: weighting the mouth changes what is learned (and nothing breaks on the way)."""
    from safetensors.torch import load_file

    from vlogger_cli.train.video_data import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "d", clips=2, frames=6, size=32, seed=0)
    base = dict(preset="tiny", phases=["base", "control"], phase_steps=[2, 3], batch_size=2, lr=2e-3, warmup=1,
                log_every=1, val_every=5, ckpt_every=5, val_items=2, val_steps=2)
    train_video(tmp_path / "d", tmp_path / "a", TrainVideoConfig(**base), log=lambda s: None)
    info = train_video(tmp_path / "d", tmp_path / "b", TrainVideoConfig(**base, region_weights={"face_skin": 3.0}),
                       log=lambda s: None)
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in info["history"] if "loss" in r)
    a, b = (load_file(str(tmp_path / r / "final" / "controlnet" / "diffusion_pytorch_model.safetensors")) for r in "ab")
    assert any(not torch.equal(a[k], b[k]) for k in a)
