"""Mixed stage-2 training data (train/video_mix.py): `vlogger train video|sr --data A --data B:WEIGHT`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vlogger_cli.errors import InputError
from vlogger_cli.train.video_data import ClipSampler, load_clips, write_synthetic_dataset
from vlogger_cli.train.video_mix import mixed_samplers, parse_data
from vlogger_cli.video.config import preset

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory):
    """Dataset "a" (moving shapes) and dataset "b" whose every target frame is black: an item's source shows."""
    root = tmp_path_factory.mktemp("mix")
    write_synthetic_dataset(root / "a", clips=4, frames=6, size=32, val_clips=1, seed=0)
    write_synthetic_dataset(root / "b", clips=2, frames=6, size=32, val_clips=0, seed=1)
    for clip in load_clips(root / "b"):
        np.save(clip.folder / "frames.npy", np.zeros((6, 32, 32, 3), np.uint8))
    return root / "a", root / "b"


def test_parse_data(tmp_path):
    assert parse_data("d") == (Path("d"), 1.0)
    assert parse_data("gen:0.25") == (Path("gen"), 0.25)
    odd = tmp_path / "x:2"
    odd.mkdir()
    assert parse_data(str(odd)) == (odd, 1.0)  # an existing folder whose name holds ':' is taken whole
    for bad in ("d:zero", "d:0", "d:-1"):
        with pytest.raises(InputError, match="--data"):
            parse_data(bad)


@pytest.mark.parametrize("pool", [0, 4])
def test_sampling_follows_the_proportions(two_datasets, pool):
    a, b = two_datasets
    config = preset("tiny")
    sampler, val, info = mixed_samplers([str(a), f"{b}:0.5"], config, pool=pool)
    assert info["train_clips"] == 3 + 2 and info["val_clips"] == 1
    rng, from_b, total = np.random.default_rng(0), 0, 0
    for _ in range(300):
        batch = sampler.batch(rng, 8, frames=2)
        assert batch.frames.shape[:2] == (8, 2)
        black = (batch.frames == -1).flatten(1).all(1)  # items of dataset b
        from_b, total = from_b + int(black.sum()), total + 8
    assert sampler.drawn.tolist() == [total - from_b, from_b]
    assert from_b / total == pytest.approx(1 / 3, abs=0.03)  # weights 1 : 0.5, whatever the datasets' sizes
    even, _, _ = mixed_samplers([a, b], config, pool=pool)
    for _ in range(300):
        even.batch(rng, 8)
    assert even.drawn[1] / even.drawn.sum() == pytest.approx(0.5, abs=0.03)


def test_one_dataset_samples_as_before(two_datasets):
    a, _ = two_datasets
    config = preset("tiny")
    mixed, _, _ = mixed_samplers(a, config)
    plain = ClipSampler(load_clips(a, "train"), config)
    for seed in range(3):
        x, y = mixed.batch(np.random.default_rng(seed), 4, 2), plain.batch(np.random.default_rng(seed), 4, 2)
        assert torch.equal(x.frames, y.frames) and torch.equal(x.controls, y.controls)


def test_train_video_on_two_datasets(two_datasets, tmp_path):
    from vlogger_cli.cli.train_video import video

    a, b = two_datasets
    args = ["--data", str(a), "--data", f"{b}:0.5", "--out", str(tmp_path / "r"), "--preset", "tiny", "--phases",
            "control,temporal", "--steps", "2,1", "--set", "batch_size=4", "--set", "clip_batch_size=2",
            "--set", "val_items=1", "--set", "val_steps=1", "--device", "cpu"]
    result = CliRunner().invoke(video, args)
    assert result.exit_code == 0, result.output
    assert "done: 3 steps" in result.output
    result = CliRunner().invoke(video, ["--data", str(a), "--data", str(tmp_path / "missing"), "--out",
                                        str(tmp_path / "r2")])
    assert result.exit_code == 2 and "missing: no such folder" in result.output
