"""Texture of the body from the reference photo: what the portrait shows of each vertex.

The reference view itself is the texture map: a vertex's texture coordinate is its projection into the
portrait (`uv`), and a surface point is textured iff it was visible there: its triangle shows in the
reference render (`face_visible`) and it passes a depth test against that render (`VISIBILITY_TOLERANCE`).
The triangle test keeps surfaces just behind visible ones (the mouth's inside behind closed lips) unseen. This keeps the photo's full detail (C^w with zero pose residual
reproduces the portrait exactly inside its mask), and also gives the coarse per-vertex colours
(`vertex_colors`, for previews and the fit artifacts) with their visibility mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlogger_cli.camera import Camera
from vlogger_cli.controls.warp import sample_bilinear

OVERSAMPLE = 4
"""The reference render that decides visibility is made at this many times the camera's resolution (at
most MAX_VISIBILITY_SIZE px): at the control-map size a face's triangles are smaller than a pixel, and a
triangle that covers no pixel centre would wrongly count as unseen."""

MAX_VISIBILITY_SIZE = 2048

VISIBILITY_TOLERANCE = 0.01
"""metres a point may lie behind the visible surface of the reference render and still count as seen
(absorbs depth-buffer sampling at the nearest pixel; lips vs. mouth interior are > 1 cm apart)."""


@dataclass
class ReferenceTexture:
    """The portrait as seen by `camera`, and where the reference-pose body lies in it.

    image:          (H, W, 3) uint8, the portrait at the camera's resolution.
    vertices:       (V, 3) float32 reference-pose vertices, world frame.
    uv:             (V, 2) float32 their pixel coordinates in `image`.
    depth:          (H*k, W*k) float32 depth of the reference render at `oversample` k (0 = no body).
    face_visible:   (F,) bool, triangle covers at least one pixel of that render.
    vertex_visible: (V,) bool, vertex seen in the portrait.
    vertex_colors:  (V, 3) uint8 portrait colour at visible vertices (0 elsewhere).
    """

    camera: Camera
    image: np.ndarray
    vertices: np.ndarray
    uv: np.ndarray
    depth: np.ndarray
    oversample: int
    face_visible: np.ndarray
    vertex_visible: np.ndarray
    vertex_colors: np.ndarray

    def visible_points(self, points: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) world points on triangles `faces` (N,) of the reference-pose surface -> ((N, 2) their
        reference pixels, (N,) bool whether the portrait shows them)."""
        uv, z = self.camera.project(points.astype(np.float32))
        return uv, self._seen(uv, z) & self.face_visible[faces]

    def _seen(self, uv: np.ndarray, z: np.ndarray) -> np.ndarray:
        h, w = self.depth.shape
        col = np.floor(uv[:, 0] * self.oversample).astype(np.int64)
        row = np.floor(uv[:, 1] * self.oversample).astype(np.int64)
        inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        surface = np.zeros(len(z), dtype=np.float32)
        surface[inside] = self.depth[row[inside], col[inside]]
        return inside & (surface > 0) & (z <= surface + VISIBILITY_TOLERANCE)


def visibility_scale(camera: Camera, oversample: int | None = None) -> int:
    """The factor k of the visibility render (OVERSAMPLE by default, capped at MAX_VISIBILITY_SIZE)."""
    k = OVERSAMPLE if oversample is None else oversample
    return max(1, min(k, MAX_VISIBILITY_SIZE // max(camera.width, camera.height)))


def reference_texture(image: np.ndarray, camera: Camera, vertices: np.ndarray, faces: np.ndarray, *,
                      oversample: int | None = None, rasterizer=None) -> ReferenceTexture:
    """Texture `vertices` (V, 3) (the fitted reference pose, world frame) with `image` seen by `camera`.

    `image` (any size, RGB uint8, or greyscale / RGBA which are converted) is resized to the camera's
    resolution; visibility comes from a render `oversample` times larger (default OVERSAMPLE, capped).
    rasterizer: an open FaceRasterizer of `faces` at that larger size, for callers that texture many frames
    (video editing: one texture per source frame) — one GL context instead of one per call.
    """
    from vlogger_cli.controls.raster import FaceRasterizer

    image = _as_rgb(image, camera.width, camera.height)
    vertices = np.asarray(vertices, dtype=np.float32)
    k = visibility_scale(camera, oversample)
    if rasterizer is not None:
        if (rasterizer.camera.width, rasterizer.camera.height) != (camera.width * k, camera.height * k):
            raise ValueError(f"the rasterizer must be {camera.width * k}x{camera.height * k} (oversample {k})")
        raster = rasterizer(vertices)
    else:
        with FaceRasterizer(faces, camera.scaled(camera.width * k, camera.height * k)) as own:
            raster = own(vertices)
    uv, z = camera.project(vertices)
    faces = np.asarray(faces, dtype=np.int64)
    face_visible = np.zeros(len(faces), bool)
    face_visible[raster.face[raster.face >= 0]] = True
    on_visible_face = np.zeros(len(vertices), bool)
    on_visible_face[faces[face_visible].ravel()] = True
    tex = ReferenceTexture(camera=camera, image=image, vertices=vertices, uv=uv.astype(np.float32),
                           depth=raster.depth, oversample=k, face_visible=face_visible,
                           vertex_visible=np.zeros(len(vertices), bool),
                           vertex_colors=np.zeros((len(vertices), 3), np.uint8))
    tex.vertex_visible = tex._seen(tex.uv, z) & on_visible_face
    colors = sample_bilinear(image, tex.uv[tex.vertex_visible])
    tex.vertex_colors[tex.vertex_visible] = np.clip(colors + 0.5, 0, 255).astype(np.uint8)
    return tex


def _as_rgb(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 RGB at (height, width); greyscale is repeated, alpha dropped, other sizes resized (Lanczos)."""
    from PIL import Image

    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0) + 0.5, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    img = img[..., :3]
    if img.shape[:2] != (height, width):
        img = np.asarray(Image.fromarray(img).resize((width, height), Image.LANCZOS))
    return np.ascontiguousarray(img)
