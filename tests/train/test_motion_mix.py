"""Mixed stage-1 data (train/motion_mix.py): `vlogger train motion --data A --data B:WEIGHT`."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vlogger_cli.cli.train import train
from vlogger_cli.errors import InputError
from vlogger_cli.train.motion import TrainMotionConfig, WindowSampler, train_motion
from vlogger_cli.train.motion_mix import motion_samplers

TINY = dict(preset="tiny", batch_size=4, window=32, warmup=5, lr=3e-3, log_every=5, val_every=10,
            ckpt_every=10, val_windows=16, model_overrides={"attention_window": 16})


@pytest.fixture(scope="module")
def second_dataset(tmp_path_factory):
    """Two clips of another corpus seed: the small dataset whose weight must win it its share."""
    from vlogger_cli.motion.corpus import build_corpus

    root = tmp_path_factory.mktemp("motion-small")
    build_corpus(root, clips=2, seed=11)
    return root


def _tracked_copy(dataset, tmp_path):
    """A copy of `dataset` whose index.json says it was made from tracked video (prepare-videos)."""
    import shutil

    from vlogger_cli.train.motion_mix import TRACKED_SOURCE

    tracked = tmp_path / "tracked"
    shutil.copytree(dataset, tracked)
    index = json.loads((tracked / "index.json").read_text())
    (tracked / "index.json").write_text(json.dumps({**index, "source": f"{TRACKED_SOURCE} (test)"}))
    return tracked


def _source(sampler, motion_rows, norm_samplers):
    """Which dataset each window of a batch came from: its motion equals a slice of one dataset's clips."""
    found = []
    for row in motion_rows:
        owner = [k for k, s in enumerate(norm_samplers)
                 if any(torch.equal(row[:4], m[i:i + 4]) for m in s.motion for i in range(len(m) - 3))]
        found.append(owner[0] if len(owner) == 1 else -1)
    return found


def test_windows_follow_the_weights(tiny_dataset, second_dataset):
    norm, sampler, _val, info = motion_samplers([tiny_dataset, f"{second_dataset}:3"], window=32)
    assert info["train_clips"] == sum(len(s.motion) for s in sampler.samplers)
    rng = np.random.default_rng(0)
    for _ in range(60):
        motion, audio, reference, valid, channels, by_teacher = sampler.batch(rng, 8)
        assert motion.shape[:2] == (8, 32) and audio.shape[:2] == (8, 32) and valid.shape == (8, 32)
        assert channels.shape == (8, motion.shape[-1]) and bool((channels == 1).all())
        assert by_teacher.shape == channels.shape and not bool(by_teacher.any())
    share = sampler.drawn / sampler.drawn.sum()
    assert abs(share[1] - 0.75) < 0.06, share  # 3 : 1 although the second set is a third the size
    # the drawn counts are the real origin of the windows
    rng = np.random.default_rng(1)
    before = sampler.drawn.copy()
    motion = sampler.batch(rng, 8)[0]
    assert np.bincount(_source(sampler, motion, sampler.samplers), minlength=2).tolist() == (sampler.drawn - before).tolist()


def test_one_dataset_samples_as_before(tiny_dataset):
    from vlogger_cli.motion.dataset import load_clips
    from vlogger_cli.motion.representation import Normalization

    norm, mixed, _val, _ = motion_samplers(tiny_dataset, window=32)
    clips = load_clips(tiny_dataset, "train")
    plain = WindowSampler(clips, Normalization.fit(np.concatenate([c.motion for c in clips])), 32)
    a, b = mixed.batch(np.random.default_rng(5), 6), plain.batch(np.random.default_rng(5), 6)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_train_motion_on_two_datasets(tiny_dataset, second_dataset, tmp_path):
    result = CliRunner().invoke(train, ["motion", "--data", str(tiny_dataset), "--data", f"{second_dataset}:0.5",
                                        "--out", str(tmp_path / "run"), "--steps", "10",
                                        *[a for k, v in TINY.items() if k != "model_overrides"
                                          for a in ("--set", f"{k}={v}")],
                                        "--set", 'model_overrides={"attention_window": 16}'])
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "run" / "final" / "train_info.json").read_text())
    assert info["data"] == [{"path": str(tiny_dataset), "weight": 1.0}, {"path": str(second_dataset), "weight": 0.5}]
    with pytest.raises(InputError, match="weight"):
        train_motion([f"{tiny_dataset}:x"], tmp_path / "bad", TrainMotionConfig(steps=2, **TINY), log=lambda s: None)


def test_tracked_datasets_teach_no_mouth_when_told(tiny_dataset, second_dataset, tmp_path):
    """tracked_mouth_weight 0: windows of a prepare-videos dataset carry zero weight on the jaw/mouth channels
    (and only those); the synthetic corpus' windows keep every channel; a zero weight takes a channel out of
    the loss entirely."""
    from vlogger_cli.motion.diffusion import diffusion_loss
    from vlogger_cli.motion.representation import ARKIT_NAMES, MOTION_DIM
    from vlogger_cli.train.motion_mix import mouth_channels

    tracked = _tracked_copy(second_dataset, tmp_path)
    mouth = mouth_channels()
    assert ARKIT_NAMES.index("jawOpen") in mouth and ARKIT_NAMES.index("eyeBlinkLeft") not in mouth
    _, sampler, _, _ = motion_samplers([tiny_dataset, str(tracked)], window=32, tracked_mouth_weight=0.0)
    channels = sampler.batch(np.random.default_rng(0), 16)[4]
    k = sampler.drawn[0]  # the synthetic windows come first
    assert bool((channels[:k] == 1).all())
    assert bool((channels[k:, mouth] == 0).all()) and bool((channels[k:].sum(1) == MOTION_DIM - len(mouth)).all())

    x0 = torch.randn(2, 20, MOTION_DIM)
    err = torch.zeros_like(x0)
    err[:, :, mouth] = torch.randn(2, 20, len(mouth))
    model = lambda x_t, t, audio, reference, **_: x0 + err  # a denoiser wrong on the mouth only
    weights = torch.ones(2, MOTION_DIM)
    weights[:, mouth] = 0
    args = (model, x0, torch.zeros(2, 20, 81), torch.zeros(2, 118))
    weighted = diffusion_loss(*args, channel_weights=weights, generator=torch.Generator().manual_seed(3))
    plain = diffusion_loss(*args, generator=torch.Generator().manual_seed(3))
    assert float(weighted["diff"]) == 0 and float(weighted["temp"]) == 0
    assert float(plain["diff"]) > 0.1 and float(plain["temp"]) > 0  # mouth channels: a fifth of D


def test_channels_a_dataset_does_not_teach_keep_the_other_datasets_statistics(tiny_dataset, second_dataset, tmp_path):
    from vlogger_cli.motion.dataset import load_clips
    from vlogger_cli.motion.representation import Normalization, channel_index
    tracked = _tracked_copy(second_dataset, tmp_path)
    synthetic = Normalization.fit(np.concatenate([c.motion for c in load_clips(tiny_dataset, "train")]))
    both = Normalization.fit(np.concatenate([c.motion for d in (tiny_dataset, tracked) for c in load_clips(d, "train")]))
    norm, *_ = motion_samplers([tiny_dataset, str(tracked)], window=32, tracked_mouth_weight=0.0)
    jaw, head = channel_index("jawOpen"), channel_index("head.rot6d.0")
    assert np.isclose(norm.mean[jaw], synthetic.mean[jaw]) and np.isclose(norm.std[jaw], synthetic.std[jaw])
    assert np.isclose(norm.mean[head], both.mean[head]) and np.isclose(norm.std[head], both.std[head])


def test_a_fine_tune_starts_from_the_weights_and_keeps_their_normalisation(tiny_dataset, second_dataset, tmp_path):
    """--init: the run starts from the folder's denoiser and keeps its normalisation (the model's units), except
    on channels that never moved in the folder's data and move in the new data, which take the new statistics
    (at the 0.01 floor they would be targets of tens of standard units)."""
    import shutil

    from vlogger_cli.motion.dataset import load_clips
    from vlogger_cli.motion.representation import Normalization, channel_index
    from vlogger_cli.motion.weights import load_weights

    first = train_motion(tiny_dataset, tmp_path / "a", TrainMotionConfig(steps=4, **TINY), log=lambda s: None)
    init = tmp_path / "a" / "final"
    given = Normalization.load(init / "normalization.safetensors")
    frozen = channel_index("eyeBlinkLeft")  # pin one channel at the floor, as the synthetic corpus leaves the brows
    given.std[frozen], given.mean[frozen] = Normalization.STD_FLOOR, 0.0
    given.save(init / "normalization.safetensors")
    moved = tmp_path / "moved"
    shutil.copytree(second_dataset, moved)
    clips = load_clips(moved, "train")
    new = Normalization.fit(np.concatenate([c.motion for c in clips]))
    assert new.std[frozen] > Normalization.STD_FLOOR  # the second corpus moves it

    runner = CliRunner().invoke(train, ["motion", "--init", str(init), "--data", str(moved), "--out", str(tmp_path / "b"),
                                        "--steps", "0", *[a for k, v in TINY.items() if k != "model_overrides"
                                                          for a in ("--set", f"{k}={v}")]])
    assert runner.exit_code == 0, runner.output
    tuned = Normalization.load(tmp_path / "b" / "final" / "normalization.safetensors")
    other = channel_index("jawOpen")
    assert np.isclose(tuned.std[other], given.std[other]) and np.isclose(tuned.mean[other], given.mean[other])
    assert np.isclose(tuned.std[frozen], new.std[frozen]) and np.isclose(tuned.mean[frozen], new.mean[frozen])
    from vlogger_cli.train.motion_mix import _extend_normalization

    partly = np.zeros(len(given.mean), bool)
    partly[other] = True  # a channel this run re-learns from some of its datasets only takes their statistics
    extended = _extend_normalization(given, new, partly)
    assert np.isclose(extended.std[other], new.std[other]) and np.isclose(extended.std[frozen], new.std[frozen])
    keep = channel_index("head.rot6d.1")
    assert np.isclose(extended.std[keep], given.std[keep])
    start, _ = load_weights(init)
    after, _ = load_weights(tmp_path / "b" / "final")
    assert all(torch.equal(a, b) for a, b in zip(start.state_dict().values(), after.state_dict().values()))
    with pytest.raises(InputError, match="model_overrides"):
        TrainMotionConfig(init=str(init), model_overrides={"attention_window": 16})
    with pytest.raises(InputError, match="not a motion weights folder"):
        train_motion(tiny_dataset, tmp_path / "c", TrainMotionConfig(steps=1, init=str(tmp_path), preset="tiny"),
                     log=lambda s: None)
    assert first["steps"] == 4


def test_the_synthetic_corpus_teaches_no_head_next_to_tracked_video_when_told(tiny_dataset, second_dataset, tmp_path):
    """synthetic_head_weight 0: in a mix with a tracked dataset, the synthetic windows carry zero weight on the
    neck and head rotations (and only those); alone, the synthetic corpus keeps every channel."""
    from vlogger_cli.motion.representation import MOTION_DIM, channel_index
    from vlogger_cli.train.motion_mix import head_channels

    tracked = _tracked_copy(second_dataset, tmp_path)
    head = head_channels()
    assert channel_index("head.rot6d.0") in head and channel_index("neck.rot6d.5") in head and len(head) == 12
    _, sampler, _, _ = motion_samplers([tiny_dataset, str(tracked)], window=32, synthetic_head_weight=0.0)
    channels = sampler.batch(np.random.default_rng(0), 16)[4]
    k = sampler.drawn[0]
    assert 0 < k < 16
    assert bool((channels[:k, head] == 0).all()) and bool((channels[:k].sum(1) == MOTION_DIM - len(head)).all())
    assert bool((channels[k:] == 1).all())
    _, alone, _, _ = motion_samplers(tiny_dataset, window=32, synthetic_head_weight=0.0)
    channels = alone.batch(np.random.default_rng(0), 4)[4]
    assert bool((channels == 1).all())


def test_head_weight_scales_the_head_channels_of_every_dataset(tiny_dataset, second_dataset):
    """head_weight (TrainMotionConfig): the neck/head rotations' loss weight, alone or in a mix, on top of
    synthetic_head_weight; 1 leaves the sampler exactly as before (no channel weights)."""
    from vlogger_cli.motion.representation import MOTION_DIM
    from vlogger_cli.train.motion_mix import channel_weights, head_channels

    head = head_channels()
    assert len(head) == 12  # neck + head, 6D rotations
    assert channel_weights({"source": "synthetic"}, 1.0, head_weight=1.0, mixed=False) is None
    w = channel_weights({"source": "synthetic"}, 1.0, synthetic_head_weight=0.5, mixed=True, head_weight=3.0)
    assert np.allclose(w[head], 1.5) and (np.delete(w, head) == 1).all()
    _, sampler, val, _ = motion_samplers([tiny_dataset, second_dataset], window=32, head_weight=4.0)
    channels = sampler.batch(np.random.default_rng(0), 8)[4]
    assert channels.shape == (8, MOTION_DIM)
    assert bool((channels[:, head] == 4).all()) and int((channels != 1).sum()) == 8 * len(head)
    assert bool((val.batch(np.random.default_rng(0), 2)[4][:, head] == 4).all())
    cfg = TrainMotionConfig.from_dict({"head_weight": 2.5, "body_snr_max": 5})
    assert cfg.head_weight == 2.5 and cfg.loss_weights().body_snr_max == 5 and cfg.loss_weights().face_snr_max == 1


def test_snr_max_weighs_low_noise_windows_up_to_the_cap():
    """LossWeights.face_snr_max / body_snr_max: each window's terms x clamp(SNR(t), 1, max) on the face / body
    channels; 1 (default) changes nothing."""
    from diffusers import DDPMScheduler

    from vlogger_cli.motion.diffusion import SCHEDULE, LossWeights, diffusion_loss
    from vlogger_cli.motion.representation import MOTION_DIM, face_mask

    abar = DDPMScheduler(**SCHEDULE).alphas_cumprod
    low, mid, high = 5, int((abar / (1 - abar) > 3).nonzero().max()), 900  # SNR huge, ~3, < 1
    x0 = torch.randn(1, 20, MOTION_DIM)
    face = face_mask(torch.float32).bool()

    def loss(t, face_snr_max=1.0, body_snr_max=1.0, wrong=None):
        err = torch.zeros_like(x0)
        err[..., wrong] = 0.1 * torch.randn(1, 20, int(wrong.sum()), generator=torch.Generator().manual_seed(0))
        model = lambda x_t, t, audio, reference, **_: x0 + err  # the same error at any noise level
        return diffusion_loss(model, x0, torch.zeros(1, 20, 81), torch.zeros(1, 118), timesteps=torch.tensor([t]),
                              weights=LossWeights(face_snr_max=face_snr_max, body_snr_max=body_snr_max),
                              noise=torch.zeros_like(x0))

    snr = float(abar[mid] / (1 - abar[mid]))
    assert 3 <= snr < 5
    for wrong, other in ((~face, face), (face, ~face)):
        plain = loss(low, wrong=wrong)
        for t in (mid, high):
            assert torch.equal(loss(t, wrong=wrong)["loss"], plain["loss"])  # an x0 loss: t does not matter
        on = dict(body_snr_max=5.0) if wrong is not face else dict(face_snr_max=5.0)
        off = dict(face_snr_max=5.0) if wrong is not face else dict(body_snr_max=5.0)
        for key in ("diff", "temp"):
            assert torch.allclose(loss(low, wrong=wrong, **on)[key], 5 * plain[key])  # capped
            assert torch.allclose(loss(mid, wrong=wrong, **on)[key], snr * plain[key])
            assert torch.allclose(loss(high, wrong=wrong, **on)[key], plain[key])  # SNR < 1: weight 1
            assert torch.allclose(loss(low, wrong=wrong, **off)[key], plain[key])  # the other group's weight


def test_a_teacher_sets_the_mouth_targets_of_tracked_windows(tiny_dataset, second_dataset, tmp_path):
    """tracked_mouth_teacher: the jaw/mouth channels of tracked windows (and only those) are the teacher's; their
    target is the teacher's prediction from the same noisy input, so a student that predicts what the teacher
    does there has no loss on them whatever the tracked lips are; without a teacher they count for nothing."""
    from vlogger_cli.motion.diffusion import diffusion_loss
    from vlogger_cli.motion.representation import MOTION_DIM
    from vlogger_cli.train.motion_mix import mouth_channels

    tracked = _tracked_copy(second_dataset, tmp_path)
    mouth = mouth_channels()
    _, sampler, _, _ = motion_samplers([tiny_dataset, str(tracked)], window=32, tracked_mouth_teacher=2.0)
    *_, channels, by_teacher = sampler.batch(np.random.default_rng(0), 16)
    k = sampler.drawn[0]
    assert 0 < k < 16
    assert not bool(by_teacher[:k].any()) and bool((channels[:k] == 1).all())
    assert bool((by_teacher[k:, mouth] == 1).all()) and int(by_teacher[k:].sum()) == (16 - k) * len(mouth)
    assert bool((channels[k:, mouth] == 2).all())  # the teacher's targets carry its weight
    # a fine-tune's normalisation: the teacher's channels stay in its units (its predictions are their targets),
    # where leaving them out (weight 0) refits them from the datasets that teach them
    from vlogger_cli.motion.representation import Normalization

    fitted, *_ = motion_samplers([tiny_dataset, str(tracked)], window=32, tracked_mouth_weight=0.0)
    given = Normalization(fitted.mean + 0.5, fitted.std * 2)
    kept, *_ = motion_samplers([tiny_dataset, str(tracked)], window=32, tracked_mouth_teacher=2.0, norm=given)
    refit, *_ = motion_samplers([tiny_dataset, str(tracked)], window=32, tracked_mouth_weight=0.0, norm=given)
    assert np.allclose(kept.mean[mouth], given.mean[mouth]) and np.allclose(kept.std[mouth], given.std[mouth])
    assert np.allclose(refit.mean[mouth], fitted.mean[mouth])

    x0 = torch.randn(2, 20, MOTION_DIM, generator=torch.Generator().manual_seed(0))
    teacher_of = lambda x_t: 0.7 * torch.tanh(x_t) + 0.2  # a prediction from the noisy input alone
    teacher = lambda x_t, t, audio, reference, **_: teacher_of(x_t)
    taught = torch.zeros(2, MOTION_DIM)
    taught[:, mouth] = 1

    def student(mouth_from, taught_rows=(0, 1)):
        """x0 everywhere, except the mouth of `taught_rows`, which comes from `mouth_from(x_t)`."""
        def model(x_t, t, audio, reference, **_):
            out = x0.clone()
            for r in taught_rows:
                out[r, :, mouth] = mouth_from(x_t)[r][:, mouth]
            return out
        return model

    args = (torch.zeros(2, 20, 81), torch.zeros(2, 118))
    run = lambda model, **kw: diffusion_loss(model, x0, *args, generator=torch.Generator().manual_seed(3), **kw)
    like_teacher = student(teacher_of)
    assert float(run(like_teacher, teacher=teacher, teacher_channels=taught)["loss"]) < 1e-10
    assert float(run(like_teacher)["loss"]) > 0.1  # against the data's mouth it is wrong
    like_data = student(lambda x_t: x0)
    assert float(run(like_data, teacher=teacher, teacher_channels=taught)["loss"]) > 0.1
    assert float(run(like_teacher, teacher_channels=taught)["loss"]) < 1e-10  # no teacher: the mouth counts 0
    known = torch.zeros(2, 20)
    known[:, :5] = 1  # outpainting: known frames are the data's, for the teacher's targets too
    assert float(run(like_teacher, teacher=teacher, teacher_channels=taught, known_mask=known)["loss"]) < 1e-10
    one = taught.clone()
    one[1] = 0  # a batch of a taught window and a window of the data: each has its own targets
    assert float(run(student(teacher_of, taught_rows=(0,)), teacher=teacher, teacher_channels=one)["loss"]) < 1e-10
    assert float(run(like_teacher, teacher=teacher, teacher_channels=one)["loss"]) > 0.1


def test_train_motion_with_a_teacher(tiny_dataset, second_dataset, tmp_path):
    """A fine-tune with tracked_mouth_teacher runs (the teacher: a frozen copy of init) and needs init."""
    tracked = _tracked_copy(second_dataset, tmp_path)
    quiet = lambda s: None
    base = train_motion(tiny_dataset, tmp_path / "base", TrainMotionConfig(steps=4, **TINY), log=quiet)
    assert base["steps"] == 4
    tiny = {k: v for k, v in TINY.items() if k != "model_overrides"}
    cfg = TrainMotionConfig(steps=4, init=str(tmp_path / "base" / "final"), tracked_mouth_teacher=1.0, **tiny)
    result = train_motion([str(tiny_dataset), f"{tracked}:0.5"], tmp_path / "student", cfg, log=quiet)
    assert result["steps"] == 4 and (tmp_path / "student" / "final" / "config.json").exists()
    with pytest.raises(InputError, match="init"):
        TrainMotionConfig(tracked_mouth_teacher=1.0)
