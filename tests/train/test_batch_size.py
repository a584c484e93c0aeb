import json

import pytest
import torch
from click.testing import CliRunner

from vlogger_cli.errors import InputError
from vlogger_cli.train import batch_size as bs
from vlogger_cli.train.batch_size import MB, StepCost, largest_batch, measure_step_cost
from vlogger_cli.train.sr import TrainSRConfig
from vlogger_cli.train.video import TrainVideoConfig, choose_batch_sizes

GB = 2 ** 30


def test_largest_batch_fits_the_free_memory_less_the_margin():
    # 0.85 * 10 GB - 1 GB = 7.5 GB for 100 MB items: 76 fit, 77 would not
    b = largest_batch(10 * GB, 1 * GB, 100 * MB, fraction=0.85, cap=1000)
    assert b == 76
    assert 1 * GB + b * 100 * MB <= 0.85 * 10 * GB < 1 * GB + (b + 1) * 100 * MB
    assert largest_batch(10 * GB, 1 * GB, 100 * MB, fraction=0.5, cap=1000) == 40


def test_largest_batch_is_capped():
    assert largest_batch(100 * GB, GB, MB, cap=64) == 64
    assert largest_batch(100 * GB, GB, 0, cap=8) == 8  # no measurable growth: the cap decides


def test_a_card_too_small_for_one_item_is_a_one_line_error():
    assert largest_batch(2 * GB, GB, 700 * MB, fraction=1.0) == 1
    with pytest.raises(InputError, match=r"phase base: one item needs about 2048 MB .* \(--device cpu\)"):
        largest_batch(2 * GB, GB, GB, fraction=0.85, what="phase base")
    with pytest.raises(InputError):
        largest_batch(GB, 2 * GB, 0)


def test_measure_fits_the_line_through_a_fake_step():
    calls = []

    def peak(batch):  # 3 GB resident + workspaces, 250 MB per item
        calls.append(batch)
        return 3 * GB + 250 * MB * batch

    assert measure_step_cost(peak) == StepCost(fixed=3 * GB, per_sample=250 * MB)
    assert calls == [1, 1, 2]  # warm-up, then one step per size
    noisy = {1: 1040, 2: 1110, 4: 1390}  # 900 + 120 b, plus noise: least squares over more sizes
    assert measure_step_cost(noisy.__getitem__, sizes=(1, 2, 4)) == StepCost(fixed=900, per_sample=120)
    with pytest.raises(ValueError):
        measure_step_cost(peak, sizes=(2, 2))


def test_fit_on_card_adds_the_optimizer_and_leaves_out_the_resident_weights(monkeypatch):
    monkeypatch.setattr(bs, "cuda_peak_bytes", lambda step, device: lambda b: 5 * GB + 200 * MB * b)
    monkeypatch.setattr(bs, "free_cuda_bytes", lambda device: (20 * GB, 4 * GB))  # (free, resident)
    params = [torch.nn.Parameter(torch.zeros(64 * MB // 4))]  # 64 MB of float32 trained weights
    figures = bs.fit_on_card(lambda b: None, params, torch.device("cuda"), fraction=0.5, cap=1000)
    # fixed: 5 GB peak intercept - 4 GB resident + 3 x 64 MB optimizer = 1216 MB; (10240 - 1216) / 200 = 45.1
    assert figures == {"batch": 45, "free_mb": 20480, "per_sample_mb": 200.0, "fixed_mb": 1216}


def test_batch_size_accepts_auto_or_a_positive_number():
    cfg = TrainVideoConfig.from_dict({"batch_size": "auto", "clip_batch_size": "3"})
    assert cfg.batch_size == "auto" and cfg.clip_batch_size == 3
    for bad in ("lots", 0, -2, 1.5, True):
        with pytest.raises(InputError, match="batch_size must be"):
            TrainVideoConfig(batch_size=bad)


def test_auto_on_the_cpu_keeps_the_preset_batch_sizes():
    lines = []
    cfg = TrainSRConfig(batch_size="auto", clip_batch_size="auto")
    chosen = choose_batch_sizes(cfg, None, None, 8, torch.device("cpu"), lines.append)  # nothing is measured
    assert chosen == {"batch_size": 16, "clip_batch_size": 2, "measured": {}}
    assert len(lines) == 2 and "keeping the preset 16" in lines[0]
    fixed = choose_batch_sizes(TrainVideoConfig(batch_size=5, clip_batch_size=1), None, None, 8, torch.device("cpu"))
    assert fixed == {"batch_size": 5, "clip_batch_size": 1, "measured": {}}


def test_cli_passes_batch_sizes_to_the_config(monkeypatch, tmp_path):
    from vlogger_cli.cli.train import train

    seen = {}

    def fake_train(data, out, cfg, **kw):
        seen["cfg"] = cfg
        return {"steps": 0, "history": []}

    monkeypatch.setattr("vlogger_cli.train.video.train_video", fake_train)
    args = ["video", "--data", str(tmp_path), "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(train, args + ["--batch-size", "auto", "--clip-batch-size", "3"])
    assert result.exit_code == 0, result.output
    assert seen["cfg"].batch_size == "auto" and seen["cfg"].clip_batch_size == 3
    bad = CliRunner().invoke(train, args + ["--batch-size", "lots"])
    assert bad.exit_code == 2 and "batch_size must be" in bad.output


def test_a_run_records_the_batch_it_used(tmp_path):
    from vlogger_cli.train.video import train_video
    from vlogger_cli.train.video_data import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "data", clips=2, frames=4, size=32, seed=0)
    cfg = TrainVideoConfig(preset="tiny", phases=["base"], phase_steps=[1], batch_size="auto", device="cpu",
                           val_items=1, val_steps=1, log_every=1, val_every=1, ckpt_every=1)
    info = train_video(tmp_path / "data", tmp_path / "run", cfg, log=lambda s: None)
    assert info["batch_size"] == 16 and info["config"]["batch_size"] == "auto"
    assert json.loads((tmp_path / "run" / "final" / "training.json").read_text())["batch_size"] == 16
    state = json.loads((tmp_path / "run" / "checkpoints" / "step_00000001" / "state.json").read_text())
    assert state["batch_size"] == 16 and state["clip_batch_size"] == 2


def test_the_measuring_step_is_a_real_training_step_that_leaves_no_trace(monkeypatch, tmp_path):
    """The CUDA path with the card faked: the step closure trains the real tiny model at batch 1, 1, 2."""
    from vlogger_cli.train.video import _measure_phase, build_model
    from vlogger_cli.train.video_data import ClipSampler, load_clips, write_synthetic_dataset

    write_synthetic_dataset(tmp_path, clips=2, frames=4, size=32, seed=0)
    cfg = TrainVideoConfig(preset="tiny", clip_batch_size="auto")
    model = build_model(cfg)
    sampler = ClipSampler(load_clips(tmp_path, "train"), model.config)
    seen = []

    def fake_peak(step, device):
        def peak(batch):
            step(batch)
            seen.append((batch, any(p.grad is not None for p in model.parameters())))
            return GB + 10 * MB * batch
        return peak

    monkeypatch.setattr(bs, "cuda_peak_bytes", fake_peak)
    monkeypatch.setattr(bs, "free_cuda_bytes", lambda device: (2 * GB, GB))
    torch.manual_seed(5)
    figures = _measure_phase(cfg, model, sampler, "temporal", 4, torch.device("cpu"))
    assert seen == [(1, False), (1, False), (2, False)]  # gradients freed after every step
    trained = sum(p.numel() * 4 for p in model.temporal.parameters())
    assert figures["fixed_mb"] == round(3 * trained / MB) and figures["per_sample_mb"] == 10.0
    after = torch.rand(2)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(2))  # the global RNG is where the seed left it


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_auto_measures_a_real_step_on_cuda():
    import tempfile

    from vlogger_cli.train.video import build_model
    from vlogger_cli.train.video_data import ClipSampler, load_clips, write_synthetic_dataset

    with tempfile.TemporaryDirectory() as root:
        write_synthetic_dataset(root, clips=2, frames=4, size=32, seed=0)
        cfg = TrainVideoConfig(preset="tiny", batch_size="auto", clip_batch_size="auto", auto_max_batch=100_000)
        model = build_model(cfg).cuda()
        sampler = ClipSampler(load_clips(root, "train"), model.config)
        chosen = choose_batch_sizes(cfg, model, sampler, 4, torch.device("cuda"), lambda s: None)
    assert set(chosen["measured"]) == {"base", "control", "temporal"}
    assert all(m["per_sample_mb"] > 0 and m["batch"] >= 1 for m in chosen["measured"].values())
    assert chosen["batch_size"] == min(chosen["measured"][p]["batch"] for p in ("base", "control"))
    assert all(p.grad is None for p in model.parameters())


def test_a_resumed_run_keeps_its_recorded_batch_instead_of_choosing_again(tmp_path):
    from vlogger_cli.train.video import train_video
    from vlogger_cli.train.video_data import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "data", clips=2, frames=4, size=32, seed=0)
    cfg = TrainVideoConfig(preset="tiny", phases=["base"], phase_steps=[2], batch_size="auto", device="cpu",
                           val_items=1, val_steps=1, log_every=1, val_every=2, ckpt_every=1)
    train_video(tmp_path / "data", tmp_path / "run", cfg, log=lambda s: None, stop_at=1)
    state_file = tmp_path / "run" / "checkpoints" / "step_00000001" / "state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "batch_size": 3}))  # as if measured on a card at the start
    info = train_video(tmp_path / "data", tmp_path / "run", cfg, log=lambda s: None, resume=True)
    assert info["steps"] == 2 and info["batch_size"] == 3
