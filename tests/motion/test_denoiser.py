import torch

from vlogger_cli.motion.denoiser import AUDIO_DIM, MotionDenoiser, PRESETS, build_denoiser, prepare_audio
from vlogger_cli.motion.diffusion import sample
from vlogger_cli.motion.representation import MOTION_DIM, REFERENCE_DIM


def tiny(**kw):
    torch.manual_seed(0)
    return build_denoiser("tiny", attention_window=16, **kw).eval()


def inputs(t=40, b=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, t, MOTION_DIM, generator=g), torch.randn(b, t, AUDIO_DIM, generator=g),
            torch.randn(b, REFERENCE_DIM, generator=g))


def test_presets_build_and_predict_x0_shape():
    assert {"tiny", "small", "base"} <= set(PRESETS)
    x, a, r = inputs(b=2)
    assert tiny()(x, torch.tensor([3, 900]), a, r).shape == x.shape


def test_prepare_audio_is_per_frame_and_blind_to_the_db_reference():
    mel = torch.randn(1, 10, 80) * 10 - 30
    energy = torch.rand(1, 10)
    a = prepare_audio(mel, energy)
    assert a.shape == (1, 10, AUDIO_DIM)
    assert torch.allclose(prepare_audio(mel - 17.0, energy)[..., :80], a[..., :80])  # ref=max vs ref=1
    mel2 = mel.clone()
    mel2[:, 5:] += torch.randn(1, 5, 80)
    assert torch.equal(prepare_audio(mel2, energy)[:, :5], a[:, :5])


def test_causal_mask_one_forward():
    model, (x, a, r) = tiny(), inputs()
    t = 17
    a2 = a.clone()
    a2[:, t + 1:] = torch.randn_like(a2[:, t + 1:])
    x2 = x.clone()
    x2[:, t + 1:] = torch.randn_like(x2[:, t + 1:])
    with torch.no_grad():
        y1 = model(x, torch.tensor([500]), a, r)
        y2 = model(x2, torch.tensor([500]), a2, r)
    assert torch.allclose(y1[:, : t + 1], y2[:, : t + 1], atol=1e-6)
    assert not torch.allclose(y1[:, t + 1:], y2[:, t + 1:], atol=1e-3)


def test_causal_sampling_changing_audio_after_t_keeps_frames_up_to_t():
    """The issue's test: fixed noise, audio changed after frame t -> frames <= t unchanged."""
    model, (_, a, r) = tiny(), inputs(t=60)
    noise = torch.randn(1, 60, MOTION_DIM, generator=torch.Generator().manual_seed(1))
    t = 30
    a2 = a.clone()
    a2[:, t + 1:] = torch.randn_like(a2[:, t + 1:]) * 3
    for sampler in ("ddim", "dpm"):
        m1 = sample(model, a, r, sampler=sampler, steps=5, noise=noise)
        m2 = sample(model, a2, r, sampler=sampler, steps=5, noise=noise)
        assert torch.allclose(m1[:, : t + 1], m2[:, : t + 1], atol=1e-5), sampler
        assert not torch.allclose(m1[:, t + 1:], m2[:, t + 1:], atol=1e-3), sampler
    # and audio *before* t does matter (the model is not ignoring audio)
    a3 = a.clone()
    a3[:, :t] = torch.randn_like(a3[:, :t]) * 3
    assert not torch.allclose(sample(model, a3, r, sampler="ddim", steps=5, noise=noise)[:, :t],
                              sample(model, a, r, sampler="ddim", steps=5, noise=noise)[:, :t], atol=1e-3)


def test_runs_on_windows_longer_than_training_crops():
    model, (x, a, r) = tiny(), inputs(t=300)
    with torch.no_grad():
        assert torch.isfinite(model(x, torch.tensor([10]), a, r)).all()


def test_save_pretrained_round_trip_offline(tmp_path):
    model, (x, a, r) = tiny(), inputs()
    model.save_pretrained(tmp_path)
    loaded = MotionDenoiser.from_pretrained(tmp_path, local_files_only=True).eval()
    assert loaded.config.attention_window == 16 and loaded.config.hidden_size == PRESETS["tiny"]["hidden_size"]
    with torch.no_grad():
        assert torch.allclose(model(x, torch.tensor([7]), a, r), loaded(x, torch.tensor([7]), a, r), atol=1e-6)
