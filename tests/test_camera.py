"""Camera maths: projection conventions, round trips, and agreement with what pyrender draws."""

from __future__ import annotations

import numpy as np
import torch

from vlogger_cli.camera import Camera
from vlogger_cli.controls.raster import FaceRasterizer


def test_projection_convention():
    cam = Camera.for_image(200, 100, focal=150.0)
    uv, depth = cam.project(np.array([[0.0, 0.0, -2.0], [0.2, 0.1, -2.0]]))
    np.testing.assert_allclose(uv[0], [100.0, 50.0])           # optical axis -> image centre
    np.testing.assert_allclose(uv[1], [115.0, 42.5])           # +x right, +y up (rows go down)
    np.testing.assert_allclose(depth, [2.0, 2.0])
    K = cam.intrinsics
    assert K[0, 0] == 150.0 and K[0, 2] == 100.0 and K[1, 2] == 50.0


def test_round_trip_numpy_and_torch_with_extrinsics():
    pose = np.eye(4)
    pose[:3, 3] = [0.1, -0.2, -0.5]
    angle = 0.3
    pose[:3, :3] = [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    cam = Camera.for_image(64, 48, fov_deg=40, world_to_camera=pose)
    pts = np.random.default_rng(0).normal(size=(20, 3)) * 0.2 + [0, 0, -2.0]
    uv, depth = cam.project(pts)
    np.testing.assert_allclose(cam.unproject(uv, depth), pts, atol=1e-9)
    uv_t, depth_t = cam.project(torch.tensor(pts, dtype=torch.float32, requires_grad=True))
    np.testing.assert_allclose(uv_t.detach().numpy(), uv, atol=1e-3)
    uv_t.sum().backward()  # differentiable for the fitter


def test_scaled_and_cropped_are_the_same_view():
    cam = Camera.for_image(400, 300, fov_deg=35)
    pts = np.array([[0.1, 0.05, -1.5]])
    uv, _ = cam.project(pts)
    np.testing.assert_allclose(cam.scaled(200, 150).project(pts)[0], uv / 2)
    np.testing.assert_allclose(cam.cropped(50, 20, 300, 260).project(pts)[0], uv - [50, 20])
    assert Camera.from_dict(cam.to_dict()) .fx == cam.fx


def test_pyrender_draws_where_project_says():
    """A small triangle around a point covers the pixel that `project` gives, at the right depth."""
    cam = Camera.for_image(96, 64, fov_deg=45)
    centre = np.array([0.13, -0.07, -1.3])
    s = 0.01
    verts = centre + np.array([[-s, -s, 0.0], [s, -s, 0.0], [0.0, s, 0.0]])
    with FaceRasterizer(np.array([[0, 1, 2]]), cam) as raster:
        out = raster(verts)
    uv, depth = cam.project(centre[None])
    col, row = int(uv[0, 0]), int(uv[0, 1])
    assert out.face[row, col] == 0
    assert abs(out.depth[row, col] - depth[0]) < 1e-3
    rows, cols = np.nonzero(out.face == 0)
    assert abs(cols.mean() + 0.5 - uv[0, 0]) < 1.0 and abs(rows.mean() + 0.5 - uv[0, 1]) < 1.5


def test_rasterizer_reuses_its_shader_and_buffer():
    """pyrender would compile (and keep) a new shader program every frame under OSMesa: ~0.4 MB a frame."""
    cam = Camera.for_image(32, 32, fov_deg=45)
    verts = np.array([[-0.1, -0.1, -1.0], [0.1, -0.1, -1.0], [0.0, 0.1, -1.0]], np.float32)
    with FaceRasterizer(np.array([[0, 1, 2]]), cam) as raster:
        first = raster(verts)
        for shift in (0.01, 0.02, 0.0):
            last = raster(verts + np.float32([shift, 0, 0]))
        programs = raster._renderer._renderer._program_cache._program_cache
        assert len(programs) == 1
    np.testing.assert_array_equal(first.face, last.face)  # the in-place vertex upload took effect
    np.testing.assert_array_equal(first.depth, last.depth)
