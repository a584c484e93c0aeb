"""`vlogger eval`: table, JSON and plot for a video; a render's output folder; n/a and error cases.

The constructed videos come from conftest.py (the astronaut speaking espeak-ng speech).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from vlogger_cli.cli import main

GROUPS = ("identity", "sharpness", "lip_sync", "motion", "file")


def _run(*args):
    return CliRunner().invoke(main, ["eval", *map(str, args)])


def test_video_table_json_and_plot(talking_video, tmp_path):
    out_json, out_png = tmp_path / "talk.json", tmp_path / "talk.png"
    result = _run(talking_video, "--json", out_json, "--plot", out_png)
    assert result.exit_code == 0, result.output
    (measured,) = json.loads(out_json.read_text())
    assert set(GROUPS) <= set(measured) and "reference" not in measured
    # no portrait given: identity to the portrait is n/a with the fix, identity to frame 0 is measured
    assert measured["identity"]["to_portrait_mean"] is None
    assert "--portrait" in measured["identity"]["reasons"]["to_portrait_mean"]
    assert measured["identity"]["to_first_mean"] < 0.3
    assert measured["lip_sync"]["score"] > 0.5 and abs(measured["lip_sync"]["offset_ms"]) <= 40
    assert measured["motion"]["face_found"] == 1.0 and measured["file"]["fps"] == 25
    assert len(measured["per_frame"]["mouth_opening"]) == measured["file"]["frames"]
    for line in ("lip_sync   offset_ms", "identity   to_portrait_mean", "n/a dist  (no portrait: pass --portrait", "wrote"):
        assert line in result.output
    with Image.open(out_png) as png:
        assert png.size[0] > 600 and png.size[1] > 600


def test_output_root_scores_each_finished_job(tmp_path, face_image, speech, make_video):
    # A render's output folder: a finished job whose picture never moves (lossless: a lossy codec's
    # refinements over the first frames of a still would read as 0.1 % jitter), and a failed job.
    image, _ = face_image
    wav, _ = speech
    frozen = make_video("frozen", [image] * 50, wav, crf=0)
    job = tmp_path / "out" / "still"
    job.mkdir(parents=True)
    shutil.copy(frozen, job / "still.mp4")
    shutil.copy(wav, job / "audio.wav")
    Image.fromarray(image).save(job / "portrait.png")
    (job / "job.json").write_text(json.dumps({"id": "still", "state": "done"}))
    failed = tmp_path / "out" / "broken"
    failed.mkdir()
    (failed / "job.json").write_text(json.dumps({"id": "broken", "state": "failed"}))

    result = _run(tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "skipped broken: failed, not done" in result.output
    assert "id→portrait" in result.output and "\nstill.mp4 " in result.output  # the summary table
    measured = json.loads((job / "eval.json").read_text())
    assert (job / "eval.png").is_file()
    assert measured["portrait"].endswith("portrait.png") and measured["audio"].endswith("audio.wav")
    assert measured["motion"]["jitter"] == 0 and measured["motion"]["blinks"] == 0
    assert measured["motion"]["head_yaw_std"] == pytest.approx(0, abs=1e-9)
    assert measured["identity"]["to_portrait_mean"] < 0.1 and measured["identity"]["same_person"] == 1.0
    assert measured["lip_sync"]["score"] == 0  # the mouth never moves: nothing to predict


def test_video_without_audio_has_no_lip_sync(face_image, make_video, tmp_path):
    video = make_video("mute", [face_image[0]] * 10, None)
    result = _run(video, "--json", tmp_path / "m.json", "--identity-frames", 3)
    assert result.exit_code == 0, result.output
    (measured,) = json.loads((tmp_path / "m.json").read_text())
    assert measured["lip_sync"]["score"] is None
    assert "no audio track" in measured["lip_sync"]["reasons"]["score"]
    assert measured["file"]["audio_duration_s"] is None
    # identity on 3 frames spread over the 10: the first, the middle, the last
    distances = measured["per_frame"]["identity_to_first"]
    assert [i for i, d in enumerate(distances) if d is not None] == [0, 4, 9]


def test_video_without_a_face_is_one_error_line(make_video, talking_video, tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (5, 96, 96, 3), dtype=np.uint8)
    video = make_video("noface", list(noise), None)
    result = _run(video, "--json", tmp_path / "r.json")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {video}: no face found in any of its 5 frames; "
                      "vlogger eval measures videos of a talking face"]
    (entry,) = json.loads((tmp_path / "r.json").read_text())
    assert entry["error"] == errors[0][len("error: "):]


def test_invalid_arguments_exit_2(talking_video, tmp_path):
    assert _run(talking_video, talking_video, "--audio", talking_video).exit_code == 2
    assert _run(tmp_path / "missing.mp4").exit_code == 2
    assert _run(talking_video, "--json", tmp_path / "x.txt").exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run(empty).exit_code == 2


def test_help_has_examples():
    result = CliRunner().invoke(main, ["eval", "--help"])
    assert result.exit_code == 0 and "Example" in result.output
    assert "eval" in CliRunner().invoke(main, ["--help"]).output
