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


def test_diffusion_job_renders_windows_and_resumes_identically(tmp_path, tiny_weights, monkeypatch):
    monkeypatch.setenv("VLOGGER_WEIGHTS_DIR", str(tiny_weights))
    shutil.copy(ROOT / "manifests" / "media" / "astronaut.jpg", tmp_path / "face.jpg")
    (tmp_path / "m.yaml").write_text(
        "jobs:\n  - id: d\n    portrait: face.jpg\n    text: Two seconds of speech.\n"
        "    renderer: diffusion\n    resolution: 128\n    steps: 2\n    overlap: 0.5\n    seed: 1\n"
    )
    out = tmp_path / "out"
    first = CliRunner().invoke(main, ["render", str(tmp_path / "m.yaml"), "-o", str(out)])
    assert first.exit_code == 0, first.output
    job = out / "d"
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
    state = json.loads((job / "job.json").read_text())
    for stage in ("frames", "export"):
        state["stages"].pop(stage)
    state["state"] = "interrupted"
    (job / "job.json").write_text(json.dumps(state))
    (job / "d.mp4").unlink()
    again = CliRunner().invoke(main, ["render", str(tmp_path / "m.yaml"), "-o", str(out)])
    assert again.exit_code == 0, again.output
    assert "controls: already done" in (job / "log.txt").read_text()
    assert np.array_equal(np.stack(list(read_frames(job / "d.mp4"))), frames)
