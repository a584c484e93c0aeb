"""The whole pipeline, end to end, on the demo portrait: fit -> motion -> controls -> frames -> MP4."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vlogger_cli.cli import main
from vlogger_cli.export import probe_video, read_frames

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("render")
    shutil.copy(ROOT / "manifests" / "media" / "astronaut.jpg", folder / "face.jpg")
    (folder / "m.yaml").write_text(
        "defaults:\n  resolution: 128\n  seed: 3\njobs:\n"
        "  - id: talk\n    portrait: face.jpg\n    renderer: warp\n"
        "    text: \"Hello there. I am talking, and my mouth moves with the words.\"\n"
        "  - id: needs_weights\n    portrait: face.jpg\n    text: Short one.\n"
    )
    result = CliRunner().invoke(main, ["render", str(folder / "m.yaml"), "-o", str(folder / "out")])
    return folder / "out", result


def test_batch_reports_the_job_without_stage2_weights_and_renders_the_other(rendered):
    out, result = rendered
    assert result.exit_code == 1, result.output
    assert "FAILED  needs_weights: job 'needs_weights': renderer 'diffusion' needs the stage-2 video weights" in result.stdout
    assert json.loads((out / "talk" / "job.json").read_text())["state"] == "done"


def test_every_artifact_is_written(rendered):
    out, _ = rendered
    job = out / "talk"
    state = json.loads((job / "job.json").read_text())
    assert state["pipeline"] == ["portrait", "speech", "fit", "motion", "controls", "frames", "export"]
    assert set(state["stages"]) == set(state["pipeline"])
    assert state["pipeline_note"] is None
    for name in ("audio.wav", "portrait.png", "reference.png", "fit.json", "fit.safetensors", "fit.png",
                 "motion.safetensors", "motion.png", "controls.png", "preview.png", "talk.mp4", "log.txt"):
        assert (job / name).is_file(), name
    assert any((job / "controls").glob("*.npz")) and any((job / "chunks").glob("*.npz"))
    assert json.loads((job / "fit.json").read_text())


def test_video_is_h264_aac_with_matching_durations_and_motion(rendered):
    out, _ = rendered
    job = out / "talk"
    frames = json.loads((job / "job.json").read_text())["frames"]
    info = probe_video(job / "talk.mp4")
    assert (info.width, info.height) == (128, 128)
    assert info.video_codec == "h264" and info.audio_codec == "aac" and info.pix_fmt == "yuv420p"
    assert info.num_frames == frames
    assert abs(info.audio_duration - info.duration) <= 1 / 25
    video = np.stack(list(read_frames(job / "talk.mp4"))).astype(np.float32)
    # The person moves: consecutive frames differ, and not only by encoding noise.
    change = np.abs(np.diff(video, axis=0)).mean(axis=(1, 2, 3))
    assert change.max() > 0.5
