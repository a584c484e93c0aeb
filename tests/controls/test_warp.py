"""Flow extrapolation and the warp preview (pure numpy)."""

from __future__ import annotations

import numpy as np

from vlogger_cli.controls.warp import extrapolate_flow, pull_push, sample_bilinear, warp_portrait


def test_sample_bilinear_at_pixel_centres_and_between():
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(sample_bilinear(img, np.array([[0.5, 0.5], [3.5, 2.5]])), [0, 11])
    np.testing.assert_allclose(sample_bilinear(img, np.array([[1.0, 1.0]])), [2.5])


def test_pull_push_keeps_known_values_and_fills_constants():
    mask = np.zeros((37, 45), bool)
    mask[10:20, 5:9] = True
    values = np.zeros((37, 45, 2), np.float32)
    values[mask] = [3.0, -1.0]
    filled = pull_push(values, mask)
    np.testing.assert_allclose(filled, np.broadcast_to([3.0, -1.0], filled.shape), atol=1e-5)


def test_extrapolated_flow_is_smooth_and_fades():
    h = w = 96
    mask = np.zeros((h, w), bool)
    mask[30:60, 35:60] = True
    flow = np.zeros((h, w, 2), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    flow[..., 0] = np.where(mask, 4.0 + 0.05 * xx, 0)
    out = extrapolate_flow(flow, mask, falloff=0.1)
    np.testing.assert_array_equal(out[mask], flow[mask])
    grad = np.abs(np.diff(out[..., 0], axis=0)).max(), np.abs(np.diff(out[..., 0], axis=1)).max()
    assert max(grad) < 1.0                                   # no jumps, also across the mesh border
    assert abs(out[45, 60, 0] - out[45, 59, 0]) < 0.5         # continuous across the border
    assert np.abs(out[0:5, 0:5]).max() < 0.05                 # far background stays still
    assert not np.any(extrapolate_flow(flow, np.zeros((h, w), bool)))


def test_warp_portrait_identity_and_shift():
    rng = np.random.default_rng(0)
    portrait = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    flow = np.zeros((20, 30, 2), np.float32)
    np.testing.assert_array_equal(warp_portrait(portrait, flow), portrait)
    flow[..., 0] = 2.0  # every pixel shows the content 2 px to its right
    np.testing.assert_array_equal(warp_portrait(portrait, flow)[:, :25], portrait[:, 2:27])
    assert warp_portrait(portrait, np.stack([flow, flow])).shape == (2, 20, 30, 3)
