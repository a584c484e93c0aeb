"""The shipped stage-2 cascade on real talking clips no weight ever trained on (issue 12's held-out real check,
`python -m vlogger_cli.video.real_check`): the testdata clip and the two corpus clips the demo weights' recipe
holds out (weights/video/README.md). Runs where ../shared/testdata and ../shared/corpus exist and skips cleanly
elsewhere; ~3 minutes on 2 CPU cores (tracking the first 49 frames of each clip, then both renderers).

The figures asserted are issue 12's bar, which the shipped weights pass (weights/mouth/README.md, "Held-out real
clips"): the `diffusion` renderer (the cascade, then the mouth stage) paints open mouths at least 1 dB better
than the flow-warp (which copies the reference frame's mouth and teeth, with a flat cavity between), with a
higher face SSIM and no more frame-to-frame flicker than the warp on any clip.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vlogger_cli.video import real_check

os.environ.setdefault("GLOG_minloglevel", "2")

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
HELD_OUT = ("pcavs_Audio_Source_00015.mp4", "retalking_5.mp4")
"""The corpus clips the demo weights were built without (--holdout in weights/video/README.md's recipe)."""
FRAMES = 24
MOUTH_GAIN = 1.0
"""dB of open-mouth PSNR over the warp: issue 12's bar. The cascade alone is +0.69 dB over today's warp (which
draws the inside of the mouth itself, controls/mouth.py); with the mouth stage +1.29 dB on these 24 frames
(weights/mouth/README.md, the clips tracked whole), +1.26 dB with face SSIM +0.0016 when this test tracks only
their first 49 frames on a fresh cache."""

pytestmark = pytest.mark.skipif(not (WEIGHTS / "video" / "video_model.json").is_file(),
                                reason="no stage-2 demo weights in weights/video")


@pytest.fixture(scope="module")
def figures(testdata, corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("real-heldout") / "real.json"
    videos = [testdata / "videos" / "videoretalking_face_4.mp4", *(corpus / name for name in HELD_OUT)]
    assert real_check.main(["--videos", *map(str, videos), "--frames", str(FRAMES), "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_the_diffusion_renderer_paints_open_mouths_better_than_the_warp(figures):
    d, w = figures["diffusion"]["mean"], figures["warp"]["mean"]
    print("\nheld-out real clips, diffusion vs warp:", {k: (d[k], w[k]) for k in real_check.METRICS})
    assert len(figures["diffusion"]["clips"]) == 3
    assert d["mouth_psnr_open"] >= w["mouth_psnr_open"] + MOUTH_GAIN
    assert d["face_psnr"] >= w["face_psnr"] - 0.3


def test_face_ssim_beats_the_warps(figures):
    """Issue 12's SSIM bar: the mean face SSIM of the three clips above the warp's (shipped: +0.0013)."""
    d, w = figures["diffusion"]["mean"], figures["warp"]["mean"]
    assert d["face_ssim"] > w["face_ssim"]


def test_no_more_flicker_than_the_warp(figures):
    d, w = figures["diffusion"]["clips"], figures["warp"]["clips"]
    for clip in d:
        assert d[clip]["flicker"] <= w[clip]["flicker"], clip
