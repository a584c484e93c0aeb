import json

import pytest
import torch
from click.testing import CliRunner

from vlogger_cli.cli.train import train
from vlogger_cli.errors import InputError
from vlogger_cli.motion.weights import load_weights
from vlogger_cli.train.motion import TrainMotionConfig, train_motion

TINY = dict(preset="tiny", batch_size=4, window=32, warmup=5, lr=3e-3, log_every=5, val_every=10,
            ckpt_every=10, val_windows=16, model_overrides={"attention_window": 16})


def _log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_tiny_training_decreases_the_loss_and_exports_weights(tiny_dataset, tmp_path):
    info = train_motion(tiny_dataset, tmp_path / "run", TrainMotionConfig(steps=60, **TINY), log=lambda s: None)
    log = _log(tmp_path / "run")
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < 0.7 * losses[0]
    vals = [r["val_loss"] for r in log if "val_loss" in r]
    assert vals[-1] < vals[0]
    model, norm = load_weights(tmp_path / "run" / "final")
    assert model.config.hidden_size == 32 and info["steps"] == 60 and norm.mean.shape == (127,)


def test_resume_continues_identically(tiny_dataset, tmp_path):
    straight = TrainMotionConfig(steps=20, **TINY)
    train_motion(tiny_dataset, tmp_path / "a", straight, log=lambda s: None)
    # the same run, interrupted after its step-10 checkpoint, then resumed
    assert train_motion(tiny_dataset, tmp_path / "b", straight, stop_at=10, log=lambda s: None)["stopped"]
    assert not (tmp_path / "b" / "final").exists()
    train_motion(tiny_dataset, tmp_path / "b", straight, resume=True, log=lambda s: None)
    from safetensors.torch import load_file

    for name in ("model", "ema"):
        a = load_file(str(tmp_path / "a" / "checkpoints" / "step_00000020" / f"{name}.safetensors"))
        b = load_file(str(tmp_path / "b" / "checkpoints" / "step_00000020" / f"{name}.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert [r for r in _log(tmp_path / "a") if r["step"] > 10] == [
        {**r, "seconds": _pick(_log(tmp_path / "a"), r["step"])["seconds"]} for r in _log(tmp_path / "b") if r["step"] > 10
    ]


def _pick(log, step):
    return next(r for r in log if r["step"] == step)


def test_existing_run_needs_resume(tiny_dataset, tmp_path):
    train_motion(tiny_dataset, tmp_path, TrainMotionConfig(steps=10, **TINY), log=lambda s: None)
    with pytest.raises(InputError, match="--resume"):
        train_motion(tiny_dataset, tmp_path, TrainMotionConfig(steps=10, **TINY), log=lambda s: None)


def test_unknown_option_is_a_usage_error(tiny_dataset, tmp_path):
    result = CliRunner().invoke(train, ["motion", "--data", str(tiny_dataset), "--out", str(tmp_path), "--set", "stepz=3"])
    assert result.exit_code == 2 and "stepz" in result.output


def test_cli_synth_corpus_then_train(tmp_path):
    runner = CliRunner()
    result = runner.invoke(train, ["synth-corpus", "--out", str(tmp_path / "data"), "--clips", "3", "--seed", "2"])
    assert result.exit_code == 0, result.output
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("preset: tiny\nbatch_size: 2\nwindow: 24\nval_windows: 16\nlog_every: 2\nval_every: 4\nckpt_every: 4\n")
    result = runner.invoke(train, ["motion", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                                   "--config", str(cfg), "--steps", "4"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "final" / "diffusion_pytorch_model.safetensors").is_file()
    missing = runner.invoke(train, ["motion", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r2")])
    assert missing.exit_code == 1 and "synth-corpus" in missing.output
