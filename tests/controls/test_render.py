"""The control maps of real anny meshes rendered with pyrender (tests/controls/conftest.py: the scene)."""

from __future__ import annotations

import numpy as np
import pytest

from vlogger_cli.body.model import CANONICAL_JOINTS, PART_INDEX, PARTS, head_rotation
from vlogger_cli.controls.render import ControlFrames, one_hot
from vlogger_cli.controls.sheet import save_contact_sheet
from vlogger_cli.controls.warp import warp_portrait

HEAD = CANONICAL_JOINTS.index("head")


@pytest.fixture(scope="module")
def sequence(scene):
    """Frame 0: the reference; 1: jawOpen 0.8; 2: head yaw 30 deg; 3: both."""
    params = scene.batch(4)
    jaw = scene.model.expression_names.index("jawOpen")
    params.expression[[1, 3], jaw] = 0.8
    params.pose[[2, 3], HEAD] = head_rotation(yaw=30)
    return scene.renderer.render(scene.frames(params))


def test_shapes_and_types(scene, sequence):
    h, w = scene.camera.height, scene.camera.width
    assert len(sequence) == 4
    assert sequence.position.shape == (4, h, w, 3) and sequence.position.dtype == np.float32
    assert sequence.parts.dtype == np.uint8 and sequence.parts.max() < len(PARTS)
    assert sequence.warped.shape == (4, h, w, 3) and sequence.warped.dtype == np.uint8
    assert sequence.flow.shape == (4, h, w, 2) and sequence.flow.dtype == np.float32
    assert (sequence.parts[sequence.mask] > 0).all() and (sequence.parts[~sequence.mask] == 0).all()
    assert 0.2 < sequence.mask[0].mean() < 0.9
    hot = one_hot(sequence.parts[:1])
    assert hot.shape == (1, h, w, len(PARTS)) and (hot.sum(-1) == 1).all()


def test_position_map_is_float_precision(scene, sequence):
    """C^d equals the camera-frame surface position (from the depth buffer) to a millimetre, and is not
    8-bit quantised."""
    pos, mask = sequence.position[0], sequence.mask[0]
    box = scene.renderer.box
    raster = scene.renderer.rasterizer(scene.vertices)
    rows, cols = np.nonzero(mask & (raster.depth > 0))
    uv = np.stack([cols + 0.5, rows + 0.5], -1)
    from_depth = scene.camera.unproject(uv, raster.depth[rows, cols], world=False)
    err = np.abs(pos[rows, cols] * box.scale + box.centre - from_depth)
    assert np.median(err) < 1e-3
    values = pos[mask][:, 2]
    quantised = np.abs(values * 127.5 - np.round(values * 127.5))  # distance to an 8-bit grid over [-1, 1]
    assert np.median(quantised) > 0.1
    assert len(np.unique(values)) > 0.5 * mask.sum()


def test_jaw_open_changes_the_mouth(scene, sequence):
    mouth = PART_INDEX["mouth_interior"]
    closed, opened = (sequence.parts[0] == mouth).sum(), (sequence.parts[1] == mouth).sum()
    assert opened > closed + 20
    changed = np.linalg.norm(sequence.position[1] - sequence.position[0], axis=-1) * scene.renderer.box.scale > 1e-3
    changed &= sequence.mask[0] & sequence.mask[1]
    lower_face = np.isin(sequence.parts[:2], [PART_INDEX[p] for p in ("face_skin", "lips", "mouth_interior", "neck")])
    eyes_row = np.nonzero(sequence.parts[0] == PART_INDEX["eyes"])[0].mean()
    rows, _ = np.nonzero(changed)
    assert changed.sum() > 50
    assert lower_face.any(0)[changed].mean() > 0.95 and (rows > eyes_row).mean() > 0.95
    # C^w: the opened mouth shows pixels the portrait never saw.
    inside = sequence.parts[1] == mouth
    assert (~sequence.warped_mask[1][inside]).mean() > 0.8


def test_head_yaw_moves_the_face_towards_image_right(scene, sequence):
    face = PART_INDEX["face_skin"]
    before = np.nonzero(sequence.parts[0] == face)[1].mean()
    after = np.nonzero(sequence.parts[2] == face)[1].mean()
    assert after - before > 0.01 * scene.camera.width
    torso = PART_INDEX["torso"]
    assert abs(int((sequence.parts[2] == torso).sum()) - int((sequence.parts[0] == torso).sum())) < 20


def test_warped_reference_reproduces_the_portrait(scene, sequence):
    valid = sequence.warped_mask[0]
    assert valid.mean() > 0.9 * sequence.mask[0].mean()
    diff = sequence.warped[0].astype(np.float64) - scene.portrait
    mse = np.mean(np.square(diff[valid]))
    psnr = 10 * np.log10(255.0**2 / max(mse, 1e-10))
    assert psnr > 40
    assert (sequence.warped[0][~valid] == 0).all()


def test_flow_is_identity_without_motion_and_smooth_outside(scene, sequence):
    assert np.abs(sequence.flow[0]).max() < 0.05
    np.testing.assert_array_equal(warp_portrait(scene.portrait, sequence.flow[0]), scene.portrait)
    flow, mask = sequence.flow[2], sequence.mask[2]
    assert np.abs(flow[mask]).max() > 2.0                        # the head turn moves pixels
    # Away from the body (its own discontinuities, e.g. the turning jaw over the still neck, set the
    # steepest slopes), the fill has no jumps: every step is under a tenth of the largest motion.
    from scipy.ndimage import distance_transform_edt

    away = distance_transform_edt(~mask) >= 4
    step_y = np.abs(np.diff(flow, axis=0)).max(-1)[away[1:] & away[:-1]]
    step_x = np.abs(np.diff(flow, axis=1)).max(-1)[away[:, 1:] & away[:, :-1]]
    assert max(step_y.max(), step_x.max()) < 0.1 * np.abs(flow[mask]).max()
    # Hair moves with the head: just above the top of the head the flow follows the head's.
    head = np.isin(sequence.parts[2], [PART_INDEX["head_back"], PART_INDEX["face_skin"]])
    top = np.nonzero(head.any(1))[0][0]
    cols = np.nonzero(head[top])[0]
    above = flow[max(top - 3, 0), cols].mean(0)
    np.testing.assert_allclose(above, flow[top, cols].mean(0), rtol=0.3, atol=0.5)
    assert np.abs(flow[-3:, :3]).max() < 0.05                    # the far corner stays still


def test_renderer_reuse_is_deterministic(scene, sequence):
    again = scene.renderer.render(scene.frames(scene.batch(1)))
    assert (again.parts[0] != sequence.parts[0]).sum() <= 2  # same pose (batched anny differs by ~1e-7)
    same = again.mask[0] & sequence.mask[0]
    np.testing.assert_allclose(again.position[0][same], sequence.position[0][same], atol=1e-4)


def test_contact_sheet(tmp_path, scene, sequence):
    path = save_contact_sheet(tmp_path / "controls.png", sequence, portrait=scene.portrait)
    from PIL import Image

    img = np.asarray(Image.open(path))
    h, w = scene.camera.height, scene.camera.width
    assert img.shape[0] >= 3 * h and img.shape[1] == 5 * w
    assert isinstance(sequence[1:3], ControlFrames) and len(sequence[1:3]) == 2


def test_set_camera_moves_the_crop_like_a_new_renderer(scene):
    """A shifted crop of the same view (edit squares that follow the face): set_camera on one renderer gives
    what a renderer made for that camera gives; other cameras are refused."""
    from dataclasses import replace

    from vlogger_cli.controls.render import ControlRenderer

    shifted = replace(scene.camera, cx=scene.camera.cx - 7.0, cy=scene.camera.cy + 5.0)
    with ControlRenderer.for_model(scene.model, scene.camera, box=scene.renderer.box) as moving, \
            ControlRenderer.for_model(scene.model, shifted, box=scene.renderer.box) as fresh:
        moving.render(scene.vertices[None])  # rendered once at the first camera
        moving.set_camera(shifted)
        a, b = moving.render(scene.vertices[None]), fresh.render(scene.vertices[None])
        assert np.array_equal(a.parts, b.parts) and np.array_equal(a.mask, b.mask)
        assert np.allclose(a.position, b.position)
        with pytest.raises(ValueError, match="only moves the principal point"):
            moving.set_camera(replace(scene.camera, fx=scene.camera.fx * 1.1))
