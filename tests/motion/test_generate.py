"""Stage-1 entry point with the committed demo weights (weights/motion)."""

import numpy as np
import pytest

from vlogger_cli.motion.artifacts import Motion, load_motion, plot_motion, save_motion
from vlogger_cli.motion.generate import generate_motion, reference_vector
from vlogger_cli.motion.representation import CHANNEL_NAMES, MOTION_DIM, REFERENCE_DIM
from vlogger_cli.motion.weights import default_weights_dir

pytestmark = pytest.mark.skipif(not (default_weights_dir() / "config.json").is_file(), reason="no demo motion weights")


@pytest.fixture(scope="module")
def speech():
    from vlogger_cli.audio import compute_features
    from vlogger_cli.motion.corpus import make_clip

    clip = make_clip(np.random.default_rng([99, 0]), voices=(("it", None),))
    return compute_features(clip["waveform"], 25.0)


def test_same_seed_same_motion_other_seed_other_motion(speech):
    a = generate_motion(speech, None, seed=3, steps=4)
    b = generate_motion(speech, None, seed=3, steps=4)
    c = generate_motion(speech, None, seed=4, steps=4)
    assert a.values.shape == (speech.num_frames, MOTION_DIM)
    np.testing.assert_array_equal(a.values, b.values)
    assert np.abs(a.values - c.values).mean() > 1e-3
    # diversity lives in the non-verbal channels too (head, blinks), not just noise in the mouth
    assert np.abs(a.joint_axis_angle("head") - c.joint_axis_angle("head")).max() > 1e-3


def _seam_excess(motion, seams):
    """Per part: (seam |velocity| / mean |velocity|, same for acceleration), each channel scaled by its std."""
    from vlogger_cli.motion.representation import POSE_JOINTS

    parts = {
        "face": np.concatenate([motion.expression, motion.gaze, motion.blink[:, None]], 1),
        "body": np.concatenate([motion.joint_axis_angle(j) for j in POSE_JOINTS] + [motion.hands], 1),
    }
    out = {}
    for name, y in parts.items():
        x = (y - y.mean(0)) / (y.std(0) + 1e-4)
        v = np.abs(np.diff(x, axis=0)).mean(1)  # v[t] = |x[t+1] - x[t]|
        a = np.abs(np.diff(x, n=2, axis=0)).mean(1)  # a[t] = |x[t+2] - 2x[t+1] + x[t]|
        out[name] = (v[seams - 1].mean() / v.mean(), a[seams - 2].mean() / a.mean())
    return out


def test_outpainting_seams_are_invisible():
    """At the first new frame of every window, value and velocity change no more than anywhere else."""
    from vlogger_cli.audio import compute_features
    from vlogger_cli.motion.corpus import make_clip

    waves = [make_clip(np.random.default_rng([77, i]))["waveform"] for i in range(4)]
    feats = compute_features(np.concatenate(waves), 25.0)
    window = 100
    seams = np.arange(window, feats.num_frames - 1, window // 2)
    assert len(seams) >= 8
    outpainted = generate_motion(feats, None, seed=2, steps=6, window=window, overlap=0.5)
    for part, (v, a) in _seam_excess(outpainted, seams).items():
        assert v < 1.5 and a < 1.5, (part, v, a)
    # the same windows drawn independently (no overlap) do show their seams: the test has teeth
    independent = generate_motion(feats, None, seed=2, steps=6, window=window // 2, overlap=0.0)
    assert all(v > 2.5 for v, _ in _seam_excess(independent, seams).values())


def test_best_of_keeps_the_best_scoring_sample(speech):
    m = generate_motion(speech, None, seed=0, steps=4, best_of=3)
    assert len(m.meta["scores"]) == 3 and m.meta["chosen"] == int(np.argmax(m.meta["scores"]))


def test_reference_expression_shifts_the_resting_face(speech):
    smile = {"expression": {"mouthSmileLeft": 0.4, "mouthSmileRight": 0.4}}
    a = generate_motion(speech, smile, seed=2, steps=4).channel("mouthSmileLeft").mean()
    b = generate_motion(speech, None, seed=2, steps=4).channel("mouthSmileLeft").mean()
    assert a > b + 0.1
    assert reference_vector({"pose": {"head": np.eye(3), "eye_l": [0, 1, 0]}}).shape == (REFERENCE_DIM,)


def test_save_load_round_trip_and_plot(speech, tmp_path):
    m = generate_motion(speech, None, seed=5, steps=4)
    save_motion(tmp_path / "motion.safetensors", m)
    back = load_motion(tmp_path / "motion.safetensors")
    np.testing.assert_array_equal(back.values, m.values)
    assert back.fps == 25.0 and back.seed == 5 and back.names == CHANNEL_NAMES and back.meta == m.meta
    from safetensors import safe_open

    with safe_open(str(tmp_path / "motion.safetensors"), framework="numpy") as fh:
        assert "jawOpen" in fh.metadata()["names"]
    plot_motion(m, speech, tmp_path / "motion.png")
    assert (tmp_path / "motion.png").read_bytes()[:4] == b"\x89PNG"


def test_corrupt_motion_file_is_a_one_line_error(tmp_path):
    from vlogger_cli.errors import InputError

    (tmp_path / "m.safetensors").write_bytes(b"nonsense")
    with pytest.raises(InputError, match="regenerate"):
        load_motion(tmp_path / "m.safetensors")
    assert isinstance(Motion(np.zeros((1, MOTION_DIM), np.float32), 25.0).blink, np.ndarray)


def test_whole_stage_is_causal_across_windows(speech):
    """Features changed after frame t (in a later window) leave every frame <= t as it was."""
    from vlogger_cli.types import AudioFeatures

    t = 130
    mel, energy = speech.mel.copy(), speech.energy.copy()
    mel[t + 1:] = mel[t + 1:][::-1]
    energy[t + 1:] = energy[t + 1:][::-1]
    changed = AudioFeatures(speech.waveform, mel, energy, speech.fps)
    kw = dict(seed=1, steps=4, window=80, overlap=0.5)
    a, b = generate_motion(speech, None, **kw), generate_motion(changed, None, **kw)
    assert speech.num_frames > 200
    np.testing.assert_allclose(a.values[: t + 1], b.values[: t + 1], atol=1e-5)
    assert np.abs(a.values[t + 1:] - b.values[t + 1:]).max() > 1e-2
