"""The mouth stage (video/mouth.py): where it crops, what it pastes back, what it leaves alone.

Controls: tests/conftest.py `face_controls` (a face disc with lips and an open mouth)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlogger_cli.body.model import PART_INDEX
from vlogger_cli.video.mouth import (MouthConfig, MouthRefiner, crop, load_mouth, mouth_boxes, paste, refine_mouths,
                                     refiner_inputs)


def test_boxes_follow_the_mouth_with_subpixel_centres(face_controls):
    config = MouthConfig(crop_scale=2.0)
    controls = face_controls(mouth_x=30.25, width=16)
    boxes = mouth_boxes(controls.parts, config)
    mouth = (controls.parts == PART_INDEX["lips"]) | (controls.parts == PART_INDEX["mouth_interior"])
    for t in range(3):
        ys, xs = np.nonzero(mouth[t])
        assert boxes[t, 0] == pytest.approx(xs.mean() + 0.5) and boxes[t, 1] == pytest.approx(ys.mean() + 0.5)
        assert boxes[t, 2] == pytest.approx(2.0 * (xs.max() - xs.min() + 1))
    assert np.diff(boxes[:, 0]) == pytest.approx([1, 1], abs=0.01)  # it moves with the mouth
    tiny = face_controls(width=4)
    assert np.isnan(mouth_boxes(tiny.parts, MouthConfig(min_width=8))).all()  # too small: left alone


def test_crop_then_paste_lands_on_the_mouth_and_nowhere_else(face_controls):
    config = MouthConfig(crop=32)
    controls = face_controls(frames=1, size=64)
    boxes = torch.from_numpy(mouth_boxes(controls.parts, config))
    frames = torch.zeros(1, 3, 64, 64)
    frames[0, 0] = torch.linspace(-1, 1, 64)[None, :]  # a horizontal ramp: the crop must see its own slice
    cropped = crop(frames, boxes, config.crop)
    cx, side = float(boxes[0, 0]), float(boxes[0, 2])
    x = cx - side / 2 + (np.arange(32) + 0.5) / 32 * side  # where each crop column samples the frame
    assert cropped[0, 0, 16].numpy() == pytest.approx(-1 + 2 * (x - 0.5) / 63, abs=1e-4)  # the ramp there
    change = torch.zeros(1, 3, 32, 32)
    change[..., 8:24, 8:24] = 0.5
    out = paste(frames, change, boxes)
    moved = (out - frames).abs().sum(1)[0] > 1e-6
    ys, xs = np.nonzero(moved.numpy())
    # the change covers the middle half of the box, centred on the mouth
    assert xs.mean() + 0.5 == pytest.approx(cx, abs=0.5) and ys.mean() + 0.5 == pytest.approx(float(boxes[0, 1]), abs=0.5)
    assert xs.max() - xs.min() + 1 == pytest.approx(side / 2, abs=2)


def test_an_untrained_refiner_leaves_every_frame_bit_identical(face_controls):
    controls = face_controls()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    portrait = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)  # any size: resized to the frames'
    model = MouthRefiner(MouthConfig(crop=16), channels=(8, 16)).eval()
    assert np.array_equal(refine_mouths(model, frames, controls, portrait=portrait), frames)


def _trained_looking(model: MouthRefiner, seed: int = 0) -> MouthRefiner:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.unet.conv_out.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return model


def test_the_refiner_changes_only_the_mouth_and_keeps_known_pixels(tmp_path, face_controls):
    config = MouthConfig(crop=16)
    controls = face_controls()
    frames = np.full((3, 64, 64, 3), 128, np.uint8)
    portrait = np.full((64, 64, 3), 90, np.uint8)
    model = _trained_looking(MouthRefiner(config, channels=(8, 16)))
    out = refine_mouths(model, frames, controls, portrait=portrait)
    changed = (out != frames).any(-1)
    assert changed.any()
    boxes = mouth_boxes(controls.parts, config)
    for t in range(3):
        ys, xs = np.nonzero(changed[t])
        cx, cy, side = boxes[t]
        assert (abs(xs + 0.5 - cx) <= side / 2 + 1).all() and (abs(ys + 0.5 - cy) <= side / 2 + 1).all()
    known = np.zeros((3, 64, 64), bool)
    known[:, 40:, :32] = True  # the left half of the mouth is kept (video editing)
    source = np.full((3, 64, 64, 3), 7, np.uint8)
    kept = refine_mouths(model, frames, controls, portrait=portrait, known=(source, known))
    assert (kept[known] == 7).all() and np.array_equal(kept[~known], out[~known])
    # saved and loaded: the same frames (float32), or within a level or two (float16, the default)
    model.save_pretrained(tmp_path / "w" / "mouth", dtype=torch.float32)
    assert np.array_equal(refine_mouths(load_mouth(tmp_path / "w"), frames, controls, portrait=portrait), out)
    model.save_pretrained(tmp_path / "h" / "mouth")
    half = refine_mouths(load_mouth(tmp_path / "h"), frames, controls, portrait=portrait)
    assert np.abs(half.astype(int) - out).max() <= 2
    assert load_mouth(tmp_path / "nothing") is None


def test_inputs_carry_the_frame_the_warp_and_the_mouth_masks(face_controls):
    config = MouthConfig(crop=16)
    controls = face_controls(frames=1)
    boxes = torch.from_numpy(mouth_boxes(controls.parts, config))
    frame, warped = torch.full((1, 3, 64, 64), 0.25), torch.full((1, 3, 64, 64), -0.5)
    inputs, alpha = refiner_inputs(frame, warped, controls.parts, controls.cavity, boxes, config)
    assert inputs.shape == (1, 10, 16, 16) and alpha.shape == (1, 1, 16, 16)
    assert inputs[0, :3].mean() == pytest.approx(0.25, abs=0.05) and inputs[0, 3:6].mean() == pytest.approx(-0.5, abs=0.05)
    assert inputs[0, 9, 8, 8] > 0.5        # the crop's centre is the open mouth (cavity)
    assert alpha[0, 0, 8, 8] > 0.99 and alpha[0, 0, 0].max() == 0  # full at the mouth, nothing at the border
