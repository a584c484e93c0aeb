"""`renderer: diffusion` through the whole pipeline with a tiny random-weight cascade that the test
makes (the demo weights' quality is tested in tests/video); checks the wiring, the window chunks,
resume after a kill between windows, and the MP4."""

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
def tiny_weights(tmp_path_factory):
    import torch

    from vlogger_cli.video.config import preset
    from vlogger_cli.video.model import VideoDiffusionModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("weights")
    model = VideoDiffusionModel.from_config(preset("tiny", resolution=128, patch_size=4, block_out_channels=(48, 48),
                                                     conditioning_embedding_out_channels=(8, 8, 8), window=6))
    model.save_pretrained(folder / "video")
    (folder / "motion").symlink_to(ROOT / "weights" / "motion")  # the real stage-1 demo weights
    return folder


def _render(tmp_path) -> Path:
    """Render the one-job manifest (2 s of speech, 128², diffusion) into tmp_path/out; returns the job folder."""
    if not (tmp_path / "m.yaml").is_file():
        shutil.copy(ROOT / "manifests" / "media" / "astronaut.jpg", tmp_path / "face.jpg")
        (tmp_path / "m.yaml").write_text(
            "jobs:\n  - id: d\n    portrait: face.jpg\n    text: Two seconds of speech.\n"
            "    renderer: diffusion\n    resolution: 128\n    steps: 2\n    overlap: 0.5\n    seed: 1\n"
        )
    result = CliRunner().invoke(main, ["render", str(tmp_path / "m.yaml"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    return tmp_path / "out" / "d"


def _interrupted_after_controls(job: Path) -> None:
    """The job as a kill in its frames stage leaves it: the stages after "controls" not done, no MP4."""
    state = json.loads((job / "job.json").read_text())
    for stage in ("frames", "export"):
        state["stages"].pop(stage)
    state["state"] = "interrupted"
    (job / "job.json").write_text(json.dumps(state))
    (job / "d.mp4").unlink()


def test_diffusion_job_renders_windows_and_resumes_identically(tmp_path, tiny_weights, monkeypatch):
    monkeypatch.setenv("VLOGGER_WEIGHTS_DIR", str(tiny_weights))
    job = _render(tmp_path)
    info = json.loads((job / "frames.json").read_text())
    assert info == {**info, "renderer": "diffusion", "folder": "chunks/base"}
    windows = sorted((job / "chunks" / "base").glob("*.safetensors"))
    assert len(windows) > 2  # several outpainting windows
    video = probe_video(job / "d.mp4")
    assert (video.width, video.height) == (128, 128) and video.num_frames == info["frames"]
    frames = np.stack(list(read_frames(job / "d.mp4")))

    # Kill after the second window: drop the later windows and the stages after "controls".
    for path in windows[2:]:
        path.unlink()
    _interrupted_after_controls(job)
    _render(tmp_path)
    assert "controls: already done" in (job / "log.txt").read_text()
    assert np.array_equal(np.stack(list(read_frames(job / "d.mp4"))), frames)


def test_a_mouth_stage_in_the_weights_redraws_the_mouth_only_and_resumes(tmp_path, tiny_weights, monkeypatch):
    """weights/mouth/ present: the finished frames are the mouth stage's (chunks/mouth), equal to the cascade's
    outside the mouths' boxes; a window of it lost to a kill is redone the same."""
    import torch

    from vlogger_cli.video.mouth import MouthConfig, MouthRefiner, mouth_boxes

    weights = tmp_path / "weights"
    weights.mkdir()
    for name in ("video", "motion"):
        (weights / name).symlink_to((tiny_weights / name).resolve())
    refiner = MouthRefiner(MouthConfig(crop=16), channels=(8, 16))
    with torch.no_grad():  # as after training: a correction that is not zero
        for p in refiner.unet.conv_out.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)) * 0.5)
    refiner.save_pretrained(weights / "mouth")
    monkeypatch.setenv("VLOGGER_WEIGHTS_DIR", str(weights))
    job = _render(tmp_path)
    info = json.loads((job / "frames.json").read_text())
    assert info["folder"] == "chunks/mouth"
    from vlogger_cli.controls.store import ControlStore
    from vlogger_cli.frame_store import FrameStore

    n = info["frames"]
    cascade = FrameStore(job / "chunks" / "base").frames(0, n)
    mouth = FrameStore(job / "chunks" / "mouth").frames(0, n)
    controls = ControlStore(job / "controls").load(0, n)
    boxes = mouth_boxes(controls.parts if controls.parts.shape[1] == 128 else controls.parts[:, ::2, ::2],
                        refiner.config)
    changed = (mouth != cascade).any(-1)
    assert changed.any()
    for t in np.flatnonzero(changed.any(axis=(1, 2))):
        ys, xs = np.nonzero(changed[t])
        cx, cy, side = boxes[t]
        assert (abs(xs + 0.5 - cx) <= side / 2 + 1).all() and (abs(ys + 0.5 - cy) <= side / 2 + 1).all()
    frames = np.stack(list(read_frames(job / "d.mp4")))

    # killed in the mouth stage: its last window and the stages after "controls" gone
    windows = sorted((job / "chunks" / "mouth").glob("*.safetensors"))
    windows[-1].unlink()
    _interrupted_after_controls(job)
    _render(tmp_path)
    assert np.array_equal(FrameStore(job / "chunks" / "mouth").frames(0, n), mouth)
    assert np.array_equal(np.stack(list(read_frames(job / "d.mp4"))), frames)
