"""Training on several processes (train/distributed.py): `vlogger train motion|video` under torchrun with 2 CPU
processes (gloo) trains the same model as one process holding the whole batch, and a killed 2-process run
resumes (on 2 processes, or on 1)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vlogger_cli.train.distributed import Context, split
from vlogger_cli.train.motion import TrainMotionConfig, train_motion
from vlogger_cli.train.video import TrainVideoConfig, build_model, train_video
from vlogger_cli.train.video_data import write_synthetic_dataset

MOTION = dict(preset="tiny", batch_size=4, window=24, warmup=1, lr=3e-3, log_every=1, val_every=100, ckpt_every=3,
              val_windows=16, threads=1, model_overrides={"attention_window": 16})
PARTS = ("unet", "controlnet", "temporal", "reference_encoder")
VIDEO = dict(preset="tiny", phases=["base", "control", "temporal"], phase_steps=[4, 4, 4], batch_size=4,
             clip_batch_size=2, lr=2e-3, warmup=1, log_every=1, val_every=100, ckpt_every=2, val_items=1, val_steps=1,
             threads=1)


def torchrun(*args: str) -> subprocess.Popen:
    """`torchrun --standalone --nproc_per_node 2 -m vlogger_cli train ARGS`."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vlogger_cli", "train", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_job(proc: subprocess.Popen) -> None:
    """SIGKILL torchrun and its workers (each worker leads its own session, so killpg would miss them)."""
    def descendants(pid: int) -> list[int]:
        found = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            for child in (task / "children").read_text().split():
                found += [int(child), *descendants(int(child))]
        return found

    for pid in [proc.pid, *descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    return out


def write_config(path, values: dict):
    path.write_text(json.dumps(values))
    return str(path)


def weights(path) -> dict[str, torch.Tensor]:
    return {f"{path.parent.name}/{k}": v for k, v in load_file(str(path)).items()}


def distance(a: dict, b: dict) -> float:
    """|a - b| over all tensors (L2)."""
    return float(torch.sqrt(sum(((a[k].double() - b[k].double()) ** 2).sum() for k in a)))


def test_shards_cover_the_batch_once():
    for total, world, accum in ((8, 2, 1), (7, 2, 3), (5, 3, 2), (3, 3, 4)):
        rows = [r for rank in range(world) for r in Context(rank, world).micro_batches(total, accum)]
        assert [i for r in rows for i in range(total)[r]] == list(range(total))
        assert max(r.stop - r.start for r in rows) <= -(-total // world)
    assert split(7, 3) == [3, 2, 2]
    with pytest.raises(Exception, match="at least 3"):
        Context(0, 3).micro_batches(2)


def test_two_processes_train_the_one_process_model(tiny_dataset, tmp_path):
    """2 ranks x 2 windows = 1 process x 4 windows = 1 process x 4 windows in 3 micro-batches; 2 windows differ."""
    config = write_config(tmp_path / "cfg.json", MOTION)
    run = torchrun("motion", "--data", str(tiny_dataset), "--out", str(tmp_path / "ddp"), "--config", config,
                   "--steps", "3")
    quiet = dict(log=lambda s: None)
    train_motion(tiny_dataset, tmp_path / "one", TrainMotionConfig(steps=3, **MOTION), **quiet)
    train_motion(tiny_dataset, tmp_path / "accum", TrainMotionConfig(steps=3, grad_accum=3, **MOTION), **quiet)
    train_motion(tiny_dataset, tmp_path / "half", TrainMotionConfig(steps=3, **{**MOTION, "batch_size": 2}), **quiet)
    out = finish(run)
    assert out.count("done: 3 steps") == 1  # rank 0 reports

    def model(run):
        return weights(tmp_path / run / "checkpoints" / "step_00000003" / "model.safetensors")

    one = model("one")
    moved = distance(one, model("half"))  # what a different batch does to the weights
    assert moved > 1e-3
    assert distance(one, model("ddp")) < 1e-3 * moved
    assert distance(one, model("accum")) < 1e-3 * moved
    log = [json.loads(line) for line in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]  # one writer
    one_log = [json.loads(line) for line in (tmp_path / "one" / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in log] == pytest.approx([r["loss"] for r in one_log], rel=1e-4)


@pytest.fixture(scope="module")
def video_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("video_data")
    write_synthetic_dataset(root, clips=3, frames=8, size=32, seed=0)
    return root


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds torchrun's workers in /proc (Linux)")
def test_a_killed_two_process_run_resumes_on_two_or_one(video_data, tmp_path):
    config = write_config(tmp_path / "cfg.json", VIDEO)
    args = ["video", "--data", str(video_data), "--out", str(tmp_path / "cut"), "--config", config]
    run = torchrun(*args)
    deadline = time.time() + 180
    latest = tmp_path / "cut" / "latest.json"
    while run.poll() is None and time.time() < deadline:  # kill the whole job at its first checkpoint
        if latest.is_file() and json.loads(latest.read_text())["step"] >= 2:
            kill_job(run)
            break
        time.sleep(0.02)
    run.communicate()
    assert run.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (tmp_path / "cut" / "final").exists()
    shutil.copytree(tmp_path / "cut", tmp_path / "cut1")

    resumed = torchrun(*args, "--resume")
    train_video(video_data, tmp_path / "whole", TrainVideoConfig(**VIDEO), log=lambda s: None)
    train_video(video_data, tmp_path / "cut1", TrainVideoConfig(**VIDEO), resume=True, log=lambda s: None)
    out = finish(resumed)
    assert "resumed" in out and out.count("done: 12 steps") == 1

    def final(run):
        return {k: v for part in PARTS for k, v in weights(tmp_path / run / "final" / part / "diffusion_pytorch_model.safetensors").items()}

    whole = final("whole")
    torch.manual_seed(0)  # the runs' initial weights
    init = build_model(TrainVideoConfig(**VIDEO))
    moved = distance(whole, {f"{part}/{k}": v for part in PARTS
                             for k, v in getattr(init, part).state_dict().items()})
    assert moved > 1e-2
    for run in ("cut", "cut1"):
        assert distance(whole, final(run)) < 1e-2 * moved, run


@pytest.mark.parametrize("pool", [0, 2])
def test_a_rank_loads_only_its_rows_of_the_same_batch(video_data, tmp_path, pool):
    """Each rank draws the whole batch (the random stream is the same for any split) and loads its rows only."""
    import numpy as np

    from vlogger_cli.train.video_mix import mixed_samplers
    from vlogger_cli.video.config import preset

    write_synthetic_dataset(tmp_path / "other", clips=2, frames=8, size=32, seed=1, val_clips=0)
    data = [str(video_data), f"{tmp_path / 'other'}:0.5"]

    def batches(rows):
        sampler = mixed_samplers(data, preset("tiny"), pool=pool)[0]
        rng = np.random.default_rng(3)
        out = [sampler.batch(rng, 7, 2, rows=rows) for _ in range(3)]
        return out, rng.integers(1 << 30)

    whole, after = batches(slice(None))
    for rows in (slice(0, 4), slice(4, 7), slice(2, 3)):
        part, after_part = batches(rows)
        assert after_part == after
        for full, mine in zip(whole, part):
            assert torch.equal(full.frames[rows], mine.frames) and torch.equal(full.controls[rows], mine.controls)
    assert all(b is None for b in batches(slice(7, 7))[0])
