"""The held-out real check (video/real_check.py) on a short cut of ../shared/testdata's talking clip (its first
24 frames at 30 fps: 20 at 25 fps, tracked once and cached), both renderers with the repo's demo weights;
skipped where the folder is absent."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest

from vlogger_cli.video import real_check
from vlogger_cli.video.quality import flicker, masked_ssim

os.environ.setdefault("GLOG_minloglevel", "2")


@pytest.fixture(scope="module")
def clip(testdata, tmp_path_factory):
    from vlogger_cli.export import write_mp4
    from vlogger_cli.media import read_frames

    path = tmp_path_factory.mktemp("held-out") / "talk.mp4"
    write_mp4(list(itertools.islice(read_frames(testdata / "videos" / "videoretalking_face_4.mp4"), 24)), 30.0, path,
              crf=12)
    return path


def test_both_renderers_side_by_side(clip, tmp_path, capsys):
    out = tmp_path / "real.json"
    assert real_check.main(["--videos", str(clip), "--frames", "5", "--json", str(out), "--strips", str(tmp_path)]) == 0
    from PIL import Image

    strip = np.asarray(Image.open(tmp_path / "talk.png"))  # real | warp | diffusion: mouth + eyes each
    assert strip.shape[1] == 3 * (160 + 480 + 6) and strip.shape[0] % 160 == 0 and strip.std() > 10
    printed = capsys.readouterr().out
    assert "face_psnr" in printed and "diffusion" in printed and printed.splitlines()[-1].startswith("mean")
    results = json.loads(out.read_text())
    assert set(results) == {"diffusion", "warp"}
    for renderer, figures in results.items():
        assert set(figures["mean"]) == set(real_check.METRICS)
        row = figures["clips"]["talk"]
        assert row["frames"] == 5 and row["first_frame"] == 0 + 1  # scored after the reference frame
        assert 15 < row["face_psnr"] < 60 and 0.3 < row["face_ssim"] < 1 and row["flicker"] >= 0
        assert row["seconds_per_frame"] > 0
        assert row["mouth_psnr_open"] is None or row["mouth_psnr_open"] > 10
    # the same controls go to both renderers: the warp costs next to nothing, the diffusion model does not
    assert results["warp"]["mean"]["seconds_per_frame"] < results["diffusion"]["mean"]["seconds_per_frame"]


def test_a_perfect_renderer_scores_perfectly(clip):
    """The real frames themselves: infinite PSNR, SSIM 1, no flicker; the reference held still flickers less than
    the video moves but scores lower."""
    from vlogger_cli.body.anny_model import anny_body

    held = real_check.load_real_clip(clip, fps=25.0, size=128, frames=6, model=anny_body())
    assert held.targets.shape == (6, 128, 128, 3) and held.face.any(axis=(1, 2)).all()
    for k in range(6):  # the detected mouth lies on the rendered face (landmarks and controls share the square)
        assert held.mouth[k].sum() > 10 and (held.mouth[k] & held.face[k]).sum() >= 0.9 * held.mouth[k].sum()
    perfect = real_check.score(held.targets, held, seconds=1.0)
    assert perfect["face_psnr"] == float("inf") and perfect["face_ssim"] == pytest.approx(1.0)
    assert perfect["flicker"] == 0.0
    still = real_check.score(np.repeat(held.reference[None], 6, axis=0), held, seconds=1.0)
    assert still["face_psnr"] < 40 and still["face_ssim"] < 1


def test_flicker_counts_only_change_the_real_video_lacks():
    rng = np.random.default_rng(0)
    real = np.repeat(rng.integers(0, 200, (1, 16, 16, 3)), 4, axis=0).astype(np.uint8)
    real[2:] += 40  # the real video changes between frames 1 and 2
    masks = np.ones((4, 16, 16), bool)
    assert flicker(real, real, masks) == 0.0
    noisy = real.copy()
    noisy[1] += 5
    assert flicker(noisy, real, masks) == pytest.approx(10 / 3)  # +5 into frame 1, -5 out of it, over 3 steps
    assert masked_ssim(real, real, masks) == pytest.approx(1.0)
