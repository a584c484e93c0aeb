"""The whole pipeline, end to end, on the demo portrait: fit -> motion -> controls -> frames -> MP4."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vlogger_cli.cli import main
from vlogger_cli.media import probe_video, read_frames

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("render")
    shutil.copy(ROOT / "manifests" / "media" / "astronaut.jpg", folder / "face.jpg")
    shutil.copy(ROOT / "manifests" / "media" / "welcome.mp3", folder / "speech.mp3")
    from skimage import data
    from PIL import Image

    Image.fromarray(data.coffee()).save(folder / "coffee.jpg")
    (folder / "m.yaml").write_text(
        "defaults:\n  resolution: 128\n  seed: 3\njobs:\n"
        "  - id: talk\n    portrait: face.jpg\n    renderer: warp\n    audio: speech.mp3\n"
        "  - id: needs_weights\n    portrait: face.jpg\n    text: Short one.\n    renderer: diffusion\n"
        "  - id: nobody\n    portrait: coffee.jpg\n    renderer: warp\n    text: Is anyone there?\n"
    )
    result = CliRunner().invoke(main, ["render", str(folder / "m.yaml"), "-o", str(folder / "out")])
    return folder / "out", result


def test_batch_reports_bad_jobs_in_one_line_and_renders_the_other(rendered):
    out, result = rendered
    assert result.exit_code == 1, result.output
    if not (ROOT / "weights" / "video" / "video_model.json").exists():
        assert "FAILED  needs_weights: job 'needs_weights': renderer 'diffusion': no stage-2 base model" in result.stdout
        assert "set renderer: warp" in result.stdout
    assert "FAILED  nobody: no person/face found in PORTRAIT" in result.stdout and "coffee.jpg" in result.stdout
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
    assert any((job / "controls").glob("*.npz")) and any((job / "chunks" / "warp").glob("w*.safetensors"))
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


def test_zero_residual_controls_reproduce_the_portrait(rendered):
    """Issue 3: with zero pose residual and the fitted expression, C^w is the portrait inside its mask."""
    import torch
    from PIL import Image

    from vlogger_cli.body.anny_model import anny_body
    from vlogger_cli.body.fit_io import load_fit
    from vlogger_cli.controls.texture import reference_texture
    from vlogger_cli.controls.render import ControlRenderer
    from vlogger_cli.pipeline.controls import render_camera
    from vlogger_cli.body.framing import Framing

    job = rendered[0] / "talk"
    fit, _ = load_fit(job)
    framing = Framing(**{k: v for k, v in json.loads((job / "framing.json").read_text()).items() if k != "size"})
    reference = np.asarray(Image.open(job / "reference.png").convert("RGB"))
    model = anny_body()
    camera = render_camera(fit, framing, reference.shape[0])
    with torch.no_grad():
        vertices = model(fit.params()).vertices.numpy()
    texture = reference_texture(reference, camera, vertices[0], model.faces)
    with ControlRenderer.for_model(model, camera, texture) as renderer:
        controls = renderer.render(vertices)
    valid = controls.warped_mask[0]
    assert valid.mean() > 0.15  # the body covers a good part of the frame
    err = (controls.warped[0][valid].astype(np.float64) - reference[valid]) ** 2
    psnr = 10 * np.log10(255.0**2 / max(err.mean(), 1e-12))
    assert psnr >= 25.0, psnr


def test_motion_artifacts_follow_the_speech(rendered):
    from vlogger_cli.motion.artifacts import load_motion

    job = rendered[0] / "talk"
    motion = load_motion(job / "motion.safetensors")
    assert motion.fps == 25.0 and motion.seed == 3 and "jawOpen" in motion.names
    assert motion.num_frames == json.loads((job / "job.json").read_text())["frames"]
    assert (job / "motion.png").stat().st_size > 10_000
