import numpy as np
import pytest

from vlogger_cli.video.quality import seam_report, seams
from vlogger_cli.image_metrics import masked_psnr


def test_masked_psnr():
    ref = np.full((8, 8, 3), 100, np.uint8)
    frames = np.repeat(ref[None], 3, 0).copy()
    assert masked_psnr(frames, ref) == float("inf")
    frames[:, :4] += 10  # error only in the top half
    mask = np.zeros((8, 8), bool)
    mask[4:] = True
    assert masked_psnr(frames, ref, mask) == float("inf")
    assert masked_psnr(frames, ref, ~mask) == pytest.approx(10 * np.log10(255 ** 2 / 100))
    with pytest.raises(ValueError):
        masked_psnr(frames, ref, np.zeros((8, 8), bool))


def test_seam_report_finds_a_jump_at_a_seam():
    t = 12  # window 4, overlap 2 -> seams at 4, 6, 8, 10
    assert seams(t, 4, 2) == [4, 6, 8, 10]
    smooth = np.stack([np.full((4, 4, 3), 10 * i, np.uint8) for i in range(t)])
    assert seam_report(smooth, 4, 2)["seamless"]
    jumpy = smooth.copy()
    jumpy[6:] += 30  # a jump into frame 6, a seam
    r = seam_report(jumpy, 4, 2)
    assert not r["seamless"] and r["seam_max"] == pytest.approx(40) and r["within_max"] == pytest.approx(10)
