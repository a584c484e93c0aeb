import numpy as np
import pytest

from vlogger_cli.edit.motion import RAMP_SECONDS, edit_motion, edit_weights, needs_generated
from vlogger_cli.edit.options import EditOptions, parse_expression
from vlogger_cli.motion.artifacts import Motion
from vlogger_cli.motion.representation import ARKIT_NAMES, BLINK, EXPRESSION, GAZE, POSE, neutral_motion

FPS = 25.0
N = 60


def _motion(seed: int) -> Motion:
    rng = np.random.default_rng(seed)
    values = neutral_motion(N)
    values[:, EXPRESSION] = rng.uniform(0, 1, (N, len(ARKIT_NAMES)))
    values[:, POSE] += rng.normal(0, 0.05, values[:, POSE].shape)
    values[:, GAZE] = rng.normal(0, 0.1, (N, 2))
    values[:, BLINK] = rng.uniform(0, 0.3, (N, 1))
    return Motion(values.astype(np.float32), FPS, seed, {"source": "track"})


def col(motion, name):
    return motion.values[:, ARKIT_NAMES.index(name)]


def test_eyes_closed_keeps_everything_else():
    src = _motion(0)
    out = edit_motion(src, EditOptions(eyes="closed", keep_lips=True))
    assert np.all(col(out, "eyeBlinkLeft") == 1) and np.all(out.values[:, BLINK] == 1)
    changed = np.flatnonzero(np.any(out.values != src.values, axis=0))
    assert set(changed) == {ARKIT_NAMES.index("eyeBlinkLeft"), ARKIT_NAMES.index("eyeBlinkRight"), BLINK.start}
    assert out.meta["edit"]["eyes"] == "closed" and out.num_frames == N and out.fps == FPS
    opened = edit_motion(src, EditOptions(eyes="open"))
    assert np.all(col(opened, "eyeBlinkRight") == 0) and np.all(opened.values[:, BLINK] == 0)


def test_new_speech_drives_the_mouth_unless_lips_are_kept():
    src, gen = _motion(0), _motion(1)
    dub = edit_motion(src, EditOptions(new_speech=True), gen)
    assert np.array_equal(col(dub, "jawOpen"), col(gen, "jawOpen"))
    assert np.array_equal(col(dub, "browInnerUp"), col(src, "browInnerUp"))
    assert np.array_equal(dub.values[:, POSE], src.values[:, POSE])  # head as filmed unless --head generate
    kept = edit_motion(src, EditOptions(new_speech=True, keep_lips=True, head="generate"), gen)
    assert np.array_equal(col(kept, "jawOpen"), col(src, "jawOpen"))
    assert np.array_equal(kept.values[:, POSE], gen.values[:, POSE])
    assert needs_generated(EditOptions(head="generate")) and not needs_generated(EditOptions(new_speech=True, keep_lips=True))
    with pytest.raises(ValueError, match="needs a motion generated"):
        edit_motion(src, EditOptions(new_speech=True))


def test_expression_edits_respect_gaze_lids_and_kept_lips():
    src = _motion(0)
    neutral = edit_motion(src, EditOptions(expression=parse_expression("neutral"), keep_lips=True))
    assert np.all(col(neutral, "browInnerUp") == 0) and np.all(col(neutral, "cheekSquintLeft") == 0)
    for name in ("jawOpen", "mouthSmileLeft", "eyeLookInLeft", "eyeBlinkLeft"):
        assert np.array_equal(col(neutral, name), col(src, name)), name
    smile = edit_motion(src, EditOptions(expression=parse_expression("smile")))
    assert np.all(col(smile, "mouthSmileLeft") == pytest.approx(0.7))
    named = edit_motion(src, EditOptions(expression=parse_expression("browInnerUp=0.8")))
    assert np.allclose(col(named, "browInnerUp"), 0.8)
    assert np.array_equal(col(named, "browDownLeft"), col(src, "browDownLeft"))


def test_head_still_is_the_reference_pose():
    out = edit_motion(_motion(0), EditOptions(head="still"))
    assert np.array_equal(out.values[:, POSE], neutral_motion(N)[:, POSE])


def test_frame_range_fades_in_and_out():
    options = EditOptions(eyes="closed", frames=(20, 40))
    w = edit_weights(options, N, FPS)
    ramp = round(RAMP_SECONDS * FPS)
    assert np.all(w[:20] == 0) and np.all(w[40:] == 0)
    assert np.all(w[20 + ramp:40 - ramp] == 1)
    assert np.all(np.diff(w[20:20 + ramp + 1]) > 0) and np.all(np.diff(w[40 - ramp - 1:40]) < 0)
    src = _motion(0)
    out = edit_motion(src, options)
    assert np.array_equal(out.values[:20], src.values[:20]) and np.array_equal(out.values[40:], src.values[40:])
    assert np.all(col(out, "eyeBlinkLeft")[20 + ramp:40 - ramp] == 1)
    # a range starting at frame 0 needs no fade-in there
    assert edit_weights(EditOptions(eyes="closed", frames=(0, 30)), N, FPS)[0] == 1
    assert np.all(edit_weights(EditOptions(eyes="closed"), N, FPS) == 1)
