"""Control-map fixtures: the anny body, a head-and-shoulders reference scene, its renderer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

SIZE = 160


@dataclass
class Scene:
    model: object
    camera: object
    params: object          # reference BodyParams (batch 1)
    vertices: np.ndarray    # (V, 3) reference vertices
    portrait: np.ndarray    # (SIZE, SIZE, 3) uint8 synthetic textured reference
    texture: object
    renderer: object

    def frames(self, params) -> np.ndarray:
        with torch.no_grad():
            return self.model(params).vertices.numpy()

    def batch(self, n: int):
        """n fresh copies of the reference parameters."""
        return self.params.expand(n).map(lambda t: t.clone())


def synthetic_portrait(size: int) -> np.ndarray:
    """A smooth colour gradient plus a fine checker: every pixel distinct enough to spot any shift."""
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.stack([(xx * 255) // size, (yy * 255) // size, ((xx // 4 + yy // 4) % 2) * 120 + 60], -1)
    return img.astype(np.uint8)


@pytest.fixture(scope="session")
def scene():
    from vlogger_cli.body.anny_model import anny_body
    from vlogger_cli.controls.texture import reference_texture
    from vlogger_cli.camera import Camera
    from vlogger_cli.controls.render import ControlRenderer

    model = anny_body()
    camera = Camera.for_image(SIZE, SIZE, fov_deg=30)
    params = model.zero_params(1, distance=1.0)
    params.transl[:, 1] = -0.5  # head and shoulders in view
    with torch.no_grad():
        vertices = model(params).vertices[0].numpy()
    portrait = synthetic_portrait(SIZE)
    texture = reference_texture(portrait, camera, vertices, model.faces)
    renderer = ControlRenderer.for_model(model, camera, texture)
    yield Scene(model, camera, params, vertices, portrait, texture, renderer)
    renderer.close()
