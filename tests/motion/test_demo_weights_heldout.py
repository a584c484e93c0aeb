"""The shipped stage-1 weights on held-out real speech (issue 12: trained on synthetic + real footage, the
held-out figures not worse, the heads livelier): the testdata clip and the two corpus clips no weights were
trained on. Their speech goes in; the tracked motion of their frames is what real heads do. Runs where
../shared/testdata and ../shared/corpus exist and skips cleanly elsewhere (tracking the three clips whole the
first time: ~3.5 minutes on 2 CPU cores; cached after that).

The bounds are what the weights before the issue's work gave, with the shipped figures well inside them
(weights/motion/README.md, 100 seeds): lip sync 0.829 before, 0.841 shipped; head rotation std 1.51° before,
2.43° shipped, 3.66° tracked from the footage (20 seeds, as here: 0.840 and 2.49°).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vlogger_cli.motion.heldout import heldout_figures

os.environ.setdefault("GLOG_minloglevel", "2")

SHARED = Path(__file__).resolve().parents[3] / "shared"
VIDEOS = (SHARED / "testdata" / "videos" / "videoretalking_face_4.mp4",
          SHARED / "corpus" / "videos" / "pcavs_Audio_Source_00015.mp4",
          SHARED / "corpus" / "videos" / "retalking_5.mp4")
SEEDS = 20
LIP_SYNC_BEFORE = 0.829
"""Mean jawOpen~loudness of the weights before issue 12's work on these clips (the bar: not worse)."""
HEAD_STD_MIN = 2.3
"""Degrees of head rotation std the generated heads must reach: 1.51° before, 2.43° shipped, 3.66° tracked."""

pytestmark = pytest.mark.skipif(not all(v.is_file() for v in VIDEOS),
                                reason="needs ../shared/testdata and ../shared/corpus (held-out real clips)")


def test_heldout_real_speech_keeps_lip_sync_and_moves_the_head_more():
    figures = heldout_figures(VIDEOS, seeds=SEEDS)
    mean = figures["mean"]
    assert mean["lip_sync"] >= LIP_SYNC_BEFORE, figures
    assert mean["head_std"] >= HEAD_STD_MIN, figures
    assert mean["head_std"] < mean["head_std_tracked"], figures  # not livelier than real people
    for clip in figures["clips"].values():  # every clip's jaw follows its speech (shipped: 0.75 to 0.89)
        assert clip["lip_sync"] > 0.7, figures
