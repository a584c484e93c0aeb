"""Reference texture: which vertices the portrait sees, and their colours."""

from __future__ import annotations

import numpy as np
import torch

from vlogger_cli.body.model import KEYPOINT_INDEX, PART_INDEX
from vlogger_cli.controls.texture import reference_texture
from vlogger_cli.camera import Camera
from vlogger_cli.controls.warp import sample_bilinear


def test_front_is_visible_back_is_not(anny):
    camera = Camera.for_image(128, 160, fov_deg=30)
    params = anny.zero_params(1, distance=1.2)
    params.transl[:, 1] = -0.45
    with torch.no_grad():
        out = anny(params)
    vertices, ears = out.vertices[0].numpy(), out.keypoints[0, KEYPOINT_INDEX["ear_l"]].numpy()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (320, 256, 3), dtype=np.uint8)  # twice the camera's size: resized
    tex = reference_texture(image, camera, vertices, anny.faces)
    assert tex.image.shape == (160, 128, 3)
    labels = anny.part_labels
    front = labels == PART_INDEX["face_skin"]
    back = labels == PART_INDEX["head_back"]
    behind = vertices[:, 2] < ears[2] - 0.03
    assert tex.vertex_visible[front].mean() > 0.6
    assert tex.vertex_visible[back & behind].mean() < 0.05
    assert tex.vertex_visible[labels == PART_INDEX["mouth_interior"]].mean() < 0.05  # closed mouth
    seen = tex.vertex_visible
    expected = sample_bilinear(tex.image, tex.uv[seen])
    assert np.abs(tex.vertex_colors[seen].astype(float) - expected).max() <= 0.5 + 1e-3
    assert (tex.vertex_colors[~seen] == 0).all()
    # Projections land where the camera says.
    uv, _ = camera.project(vertices[[0]])
    np.testing.assert_allclose(tex.uv[0], uv[0], atol=1e-4)
