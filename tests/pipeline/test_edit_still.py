"""`vlogger edit` refuses a still image (or a one-frame file) given as the video, with one line naming it."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from PIL import Image

from vlogger_cli.cli import main


def test_a_still_image_or_one_frame_is_not_a_video(tmp_path):
    from vlogger_cli.export import write_mp4

    still = tmp_path / "photo.mp4"  # a PNG named like a video: ffmpeg reads it as one frame
    Image.fromarray(np.full((64, 80, 3), 128, np.uint8)).save(still, format="PNG")
    one = tmp_path / "one.mp4"
    write_mp4([np.full((64, 80, 3), 128, np.uint8)], 25.0, one)
    for video, needle in ((still, "is a still image (png, 80x64), not a video"),
                          (one, "holds a single frame (h264, 80x64), not a video")):
        out = tmp_path / f"{video.stem}-edited.mp4"
        result = CliRunner().invoke(main, ["edit", str(video), "-o", str(out), "--eyes", "closed", "--renderer", "warp"])
        assert result.exit_code == 1, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and needle in errors[0] and str(video) in errors[0], result.output
        assert not out.exists()
