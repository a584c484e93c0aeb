import pytest

from vlogger_cli.edit.options import (
    EYE_LIDS,
    GAZE,
    MOUTH,
    EditOptions,
    Expression,
    format_frames,
    parse_expression,
    parse_frames,
)


def test_expression_presets_and_pairs():
    assert parse_expression("source") == Expression("source") and not Expression().is_edit
    neutral = parse_expression(" neutral ").targets()
    assert set(neutral).isdisjoint(GAZE) and set(neutral).isdisjoint(EYE_LIDS)
    assert all(v == 0 for v in neutral.values()) and "jawOpen" in neutral
    smile = parse_expression("smile").targets()
    assert smile["mouthSmileLeft"] > 0.5 and smile["browInnerUp"] == 0
    pairs = parse_expression("mouthSmileLeft=0.3, browInnerUp=1")
    assert pairs.targets() == {"browInnerUp": 1.0, "mouthSmileLeft": 0.3}
    assert parse_expression(str(pairs)) == pairs  # the normal form parses back


@pytest.mark.parametrize("text,needle", [
    ("happy", "not name=value"),
    ("browinnerup=0.5", "did you mean browInnerUp"),
    ("smirk=0.5", "unknown expression 'smirk'"),
    ("jawOpen=2", "from 0 to 1"),
    ("jawOpen=lots", "must be a number"),
    ("", "must be source"),
])
def test_expression_errors_say_the_fix(text, needle):
    with pytest.raises(ValueError, match=needle):
        parse_expression(text)


def test_frame_ranges():
    assert parse_frames("30:90") == (30, 90)
    assert parse_frames("30:") == (30, None)
    assert parse_frames(":10") == (0, 10)
    assert parse_frames(None) is None and format_frames(None) is None
    assert format_frames((30, None)) == "30:" and format_frames((0, 10)) == "0:10"
    for bad in ("90:30", "5:5", "-1:4", "a:b", "12", "1:2:3"):
        with pytest.raises(ValueError):
            parse_frames(bad)
    assert EditOptions(frames=(150, None), eyes="closed").frame_range(100) == (100, 100)
    assert EditOptions(frames=(10, 500), eyes="closed").frame_range(100) == (10, 100)


def test_options_say_what_they_change():
    assert not EditOptions().edits_anything
    assert not EditOptions(keep_lips=True).edits_anything
    assert EditOptions(eyes="closed").edits_anything and EditOptions(new_speech=True).edits_anything
    with pytest.raises(ValueError, match="eyes must be one of"):
        EditOptions(eyes="shut")
    with pytest.raises(ValueError, match="head must be one of"):
        EditOptions(head="nod")
    assert "jawOpen" in MOUTH and "eyeBlinkLeft" not in MOUTH
