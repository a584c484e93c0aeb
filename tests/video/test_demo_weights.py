"""The demo weights (weights/video/ + weights/sr/256/) on the astronaut, issue 5 "Done when": in frames
rendered with zero pose residual, face-region PSNR against the portrait >= 22 dB, and no jump at the
outpainting seams larger than within windows. Skipped when the weights are absent (a fresh clone
without them, or a checkout that trains its own)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "weights"

pytestmark = pytest.mark.skipif(not (WEIGHTS / "video" / "video_model.json").is_file()
                                or not (WEIGHTS / "sr" / "256" / "video_model.json").is_file(),
                                reason="no stage-2 demo weights in weights/video and weights/sr/256")


@pytest.fixture(scope="module")
def figures():
    from vlogger_cli.video.demo_check import measure

    return measure(WEIGHTS, resolution=256, frames=12)


def test_face_psnr_with_zero_pose_residual(figures):
    assert figures["base"]["face_psnr"] >= 22.0, figures
    assert figures["face_psnr"] >= 22.0, figures
    assert figures["sr256"]["face_psnr_min_frame"] >= 22.0, figures


def test_super_resolution_keeps_the_base_fidelity(figures):
    """The SR stage (detail transfer from the 256² warp, truncated sampling) loses at most 3 dB of the
    base's face PSNR (measured with the generated-data base: 51.2 -> 50.2 dB; with the real-footage base
    34.3 -> 34.0); SR over bicubic upsampling lost ~10 (39.3 -> 29.0). The real-footage base no longer returns
    the exact warp where nothing moves (weights/video/README.md, "The demo portrait"), but stays within ~4
    grey levels of it."""
    assert figures["face_psnr"] >= figures["base"]["face_psnr"] - 3.0, figures
    assert figures["face_psnr"] >= 33.0, figures


def test_little_flicker_on_a_still_target(figures):
    """Frames of a person holding still change by under 2 grey levels on average inside the face
    (measured 0.75 at 256²; sampling from pure noise gave 3-7)."""
    assert figures["sr256"]["seams"]["within_mean"] < 2.0, figures


def test_no_jump_at_window_seams(figures):
    for stage in ("base", "sr256"):
        report = figures[stage]["seams"]
        assert report["seams"], report  # the video has at least one seam
        # allow rounding-level differences (0.5 of a grey level) on a nearly static video
        assert report["seam_max"] <= report["within_max"] + 0.5, (stage, report)
