import json

import torch

from vlogger_cli.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from vlogger_cli.train.ema import EMA


def _parts(seed):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    return model, opt


def test_save_then_load_restores_modules_optimizer_and_rng(tmp_path):
    model, opt = _parts(0)
    gen = torch.Generator().manual_seed(42)
    gen_state = gen.get_state()
    torch.manual_seed(7)
    save_checkpoint(tmp_path, 10, modules={"model": model}, optimizer=opt, generators={"g": gen}, state={"x": 1})
    expected_next = torch.rand(3)
    assert json.loads((tmp_path / "latest.json").read_text())["step"] == 10
    other, other_opt = _parts(1)
    gen2 = torch.Generator().manual_seed(0)
    state = load_checkpoint(latest_checkpoint(tmp_path), modules={"model": other}, optimizer=other_opt,
                            generators={"g": gen2})
    assert state == {"step": 10, "x": 1}
    assert torch.equal(other.weight, model.weight)
    assert torch.equal(other_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(gen2.get_state(), gen_state) and torch.equal(torch.rand(3), expected_next)


def test_keeps_the_last_checkpoints_and_no_temporaries(tmp_path):
    model, opt = _parts(0)
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, modules={"model": model}, optimizer=opt, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step_00000003", "step_00000004"]
    assert latest_checkpoint(tmp_path).name == "step_00000004"
    assert latest_checkpoint(tmp_path / "nothing") is None


def test_ema_follows_the_model_slowly():
    model, _ = _parts(0)
    ema = EMA(model, decay=0.9)
    before = ema.model.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    for _ in range(3):
        ema.update(model)
    assert not ema.model.weight.requires_grad
    assert (ema.model.weight > before).all() and (ema.model.weight < model.weight).all()


def test_ema_without_warm_up_keeps_decay_to_the_power_of_steps_of_the_start():
    """warmup=False (train/mouth.py): the average is start * d^n + model * (1 - d^n) after n updates toward a
    fixed model; with the warm-up the start is forgotten much faster."""
    model, _ = _parts(0)
    fixed, warmed = EMA(model, decay=0.9, warmup=False), EMA(model, decay=0.9)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    for _ in range(5):
        fixed.update(model)
        warmed.update(model)
    assert torch.allclose(fixed.model.weight, start * 0.9 ** 5 + model.weight * (1 - 0.9 ** 5), atol=1e-6)
    assert (warmed.model.weight - start).abs().min() > (fixed.model.weight - start).abs().max()
