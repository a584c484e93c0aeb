"""`vlogger train mouth` (train/mouth.py): samples from a video dataset and the cascade's renders of it, a
loss that only the mouth can lower, a run that resumes where it was killed, and a refiner that learns."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vlogger_cli.body.model import PART_INDEX
from vlogger_cli.train.mouth import TrainMouthConfig, build_samples, train_mouth
from vlogger_cli.train.video_data import load_clips, write_clip, write_index

SIZE, FRAMES = 32, 4
SETTINGS = {"batch_size": 8, "lr": 3e-3, "warmup": 5, "ema_decay": 0.9, "channels": [8, 16], "ckpt_every": 10,
            "model": {"crop": 16}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, face_controls):
    """A two-clip dataset whose real mouths show teeth (bright) where the portrait's is closed (mid grey), and
    a weights folder with a tiny random cascade at the data's size."""
    from vlogger_cli.video.config import preset
    from vlogger_cli.video.model import VideoDiffusionModel

    root = tmp_path_factory.mktemp("mouth")
    entries = []
    for k in range(2):
        controls = face_controls(frames=FRAMES, size=SIZE, mouth_x=14.0 + k, width=12)
        reference = np.full((SIZE, SIZE, 3), 150, np.uint8)
        frames = np.repeat(reference[None], FRAMES, 0).copy()
        frames[controls.parts == PART_INDEX["mouth_interior"]] = 235
        entries.append({**write_clip(root / "data", f"c{k}", frames, reference, controls), "split": "train"})
    write_index(root / "data", fps=25, size=SIZE, clips=entries)
    torch.manual_seed(0)
    VideoDiffusionModel.from_config(preset("tiny", resolution=SIZE)).save_pretrained(root / "weights" / "video")
    return root


def test_samples_are_the_mouths_of_the_clips_frames(setup, tmp_path):
    from vlogger_cli.video.mouth import MouthConfig

    sets, val = build_samples([(str(setup / "data"), 1.0)], setup / "weights", tmp_path / "cache",
                              MouthConfig(crop=16), log=lambda line: None)
    assert len(sets) == 1 and val is None and sets[0]["inputs"].shape == (2 * FRAMES, 10, 16, 16)
    target = sets[0]["target"].float()
    assert target[:, :, 8, 8].mean() == pytest.approx(235 / 127.5 - 1, abs=0.05)   # the crop's centre: teeth
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["c0.npy", "c1.npy"]


def test_validation_videos_are_taken_out_of_training_and_scored(setup, tmp_path):
    from vlogger_cli.errors import InputError

    lines = []
    cfg = TrainMouthConfig.from_dict({**SETTINGS, "steps": 10, "val_videos": ["c1"], "val_every": 5})
    train_mouth([(str(setup / "data"), 1.0)], tmp_path / "r", cfg, weights=setup / "weights", log=lines.append)
    assert f"validation: {FRAMES} mouth samples of c1" in lines
    assert any(f"{FRAMES} mouth samples (weight 1.0)" in line for line in lines)  # c0's frames only
    records = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10] and all(r["val_loss"] > 0 for r in records)
    with pytest.raises(InputError, match="no train clip"):
        train_mouth([(str(setup / "data"), 1.0)], tmp_path / "s",
                    TrainMouthConfig.from_dict({**SETTINGS, "val_videos": ["nope"]}), weights=setup / "weights")


def test_a_cascade_cache_refuses_another_cascades_renders(setup, tmp_path):
    from vlogger_cli.errors import InputError
    from vlogger_cli.train.mouth import cascade_cache
    from vlogger_cli.video.config import preset
    from vlogger_cli.video.model import VideoDiffusionModel

    assert cascade_cache(tmp_path / "c", setup / "weights") == tmp_path / "c"
    assert cascade_cache(tmp_path / "c", setup / "weights") == tmp_path / "c"  # the same cascade: reused
    torch.manual_seed(1)
    VideoDiffusionModel.from_config(preset("tiny", resolution=SIZE)).save_pretrained(tmp_path / "other" / "video")
    with pytest.raises(InputError, match="another stage-2 cascade"):
        cascade_cache(tmp_path / "c", tmp_path / "other")


def test_a_killed_run_resumes_to_the_same_weights_and_the_refiner_learns_the_teeth(setup, tmp_path):
    from safetensors.torch import load_file

    from vlogger_cli.video.mouth import load_mouth, refine_mouths

    data = [(str(setup / "data"), 1.0)]
    cfg = TrainMouthConfig.from_dict({**SETTINGS, "steps": 40})
    whole = train_mouth(data, tmp_path / "whole", cfg, weights=setup / "weights", log=lambda line: None)
    assert train_mouth(data, tmp_path / "cut", cfg, weights=setup / "weights", log=lambda line: None,
                       stop_at=20) is None
    lines = []
    resumed = train_mouth(data, tmp_path / "cut", cfg, weights=setup / "weights", resume=True, log=lines.append,
                          cache=tmp_path / "whole" / "cascade")
    assert "resumed at step 20" in lines
    a, b = load_file(whole / "unet" / "diffusion_pytorch_model.safetensors"), \
        load_file(resumed / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)

    clip = load_clips(setup / "data")[0]
    rendered = np.load(tmp_path / "whole" / "cascade" / f"{clip.id}.npy")
    refined = refine_mouths(load_mouth(_as_weights(whole)), rendered, clip.controls(), portrait=clip.reference())
    real = clip.frames()
    inside = clip.controls().parts == PART_INDEX["mouth_interior"]
    before = np.abs(rendered.astype(float) - real)[inside].mean()
    after = np.abs(refined.astype(float) - real)[inside].mean()
    assert after < 0.6 * before, (before, after)
    assert json.loads((whole / "train.json").read_text())["steps"] == 40


def _as_weights(final):
    """A weights folder holding `final` as its mouth stage."""
    weights = final.parent / "as_weights"
    if not (weights / "mouth").exists():
        weights.mkdir(exist_ok=True)
        (weights / "mouth").symlink_to(final)
    return weights


def test_the_command_line_trains_and_refuses_bad_input(setup, tmp_path):
    from vlogger_cli.cli import main

    run = CliRunner().invoke(main, ["train", "mouth", "--data", str(setup / "data"), "--out", str(tmp_path / "r"),
                                    "--weights", str(setup / "weights"), "--steps", "3",
                                    "--set", "channels=[8, 16]", "--set", 'model={"crop": 16}'])
    assert run.exit_code == 0, run.output
    assert (tmp_path / "r" / "final" / "mouth.json").is_file()
    again = CliRunner().invoke(main, ["train", "mouth", "--data", str(setup / "data"), "--out", str(tmp_path / "r"),
                                      "--weights", str(setup / "weights"), "--steps", "3"])
    assert again.exit_code == 1 and "--resume" in again.output
    bad = CliRunner().invoke(main, ["train", "mouth", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "no such folder" in bad.output
    unknown = CliRunner().invoke(main, ["train", "mouth", "--data", str(setup / "data"), "--out", str(tmp_path / "y"),
                                        "--set", "colour=3"])
    assert unknown.exit_code == 2 and "colour" in unknown.output
