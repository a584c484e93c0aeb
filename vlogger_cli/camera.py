"""Pinhole camera maths for the whole project (pure; numpy or torch arrays alike).

THE camera convention (used by the fitter, the renderer and every stage that projects):

- World frame: metres, +x = the subject's left = image right, +y = up, +z = towards the camera
  (body/model.py). Camera frame: OpenGL / pyrender — +x right, +y up, the camera looks down -z;
  `world_to_camera` (4x4, default identity) maps world points into it. With the identity, the camera sits at
  the world origin and a body at z < 0 with identity orientation faces it.
- Image coordinates are continuous pixels with the origin at the TOP-LEFT CORNER of the image: pixel
  (row i, column j) covers [j, j+1) x [i, i+1), its centre is (j + 0.5, i + 0.5). mediapipe's normalised
  landmarks map to it as (x * width, y * height).
- Projection of a camera-frame point (X, Y, Z), Z < 0:  u = cx + fx * X / -Z,  v = cy - fy * Y / -Z.
  depth = -Z (metres in front of the camera). This is exactly what pyrender's IntrinsicsCamera renders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np


def _default_pose() -> np.ndarray:
    return np.eye(4)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: image size, intrinsics in pixels, extrinsics world->camera."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    world_to_camera: np.ndarray = field(default_factory=_default_pose)
    znear: float = 0.05
    zfar: float = 100.0

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def for_image(cls, width: int, height: int, *, fov_deg: float | None = None,
                  focal: float | None = None, world_to_camera: np.ndarray | None = None) -> "Camera":
        """Centred principal point; focal in pixels, or from the field of view across the LONGER side
        (default 35 deg, a ~50 mm portrait lens on full frame)."""
        if focal is None:
            fov = math.radians(35.0 if fov_deg is None else fov_deg)
            focal = 0.5 * max(width, height) / math.tan(0.5 * fov)
        pose = np.eye(4) if world_to_camera is None else np.asarray(world_to_camera, dtype=np.float64)
        return cls(int(width), int(height), float(focal), float(focal), width / 2.0, height / 2.0, pose)

    def scaled(self, width: int, height: int) -> "Camera":
        """The same view at another resolution (e.g. a portrait camera at the control-map size)."""
        sx, sy = width / self.width, height / self.height
        return replace(self, width=int(width), height=int(height), fx=self.fx * sx, fy=self.fy * sy,
                       cx=self.cx * sx, cy=self.cy * sy)

    def cropped(self, left: float, top: float, width: int, height: int) -> "Camera":
        """The camera of an image crop whose top-left corner is at (left, top) in this image."""
        return replace(self, width=int(width), height=int(height), cx=self.cx - left, cy=self.cy - top)

    @property
    def intrinsics(self) -> np.ndarray:
        """(3, 3) K in the usual y-down form: [u, v, 1]^T ~ K [X, -Y, -Z]^T for camera-frame points."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def to_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "fx": self.fx, "fy": self.fy, "cx": self.cx,
                "cy": self.cy, "world_to_camera": np.asarray(self.world_to_camera).tolist(),
                "znear": self.znear, "zfar": self.zfar}

    @classmethod
    def from_dict(cls, d: dict) -> "Camera":
        d = dict(d)
        d["world_to_camera"] = np.asarray(d.get("world_to_camera", np.eye(4)), dtype=np.float64)
        return cls(**d)

    # -- maths (numpy or torch) -----------------------------------------------------------------
    def to_camera(self, points):
        """(..., 3) world -> camera frame."""
        return _transform(self.world_to_camera, points)

    def project(self, points, *, world: bool = True):
        """(..., 3) points -> ((..., 2) pixel coordinates (u, v), (...,) depth = -Z)."""
        cam = self.to_camera(points) if world else points
        depth = -cam[..., 2]
        inv = 1.0 / _clamp_min(depth, 1e-6)
        u = self.cx + self.fx * cam[..., 0] * inv
        v = self.cy - self.fy * cam[..., 1] * inv
        return _stack([u, v], points), depth

    def unproject(self, uv, depth, *, world: bool = True):
        """(..., 2) pixels + (...,) depth -> (..., 3) points (world frame unless world=False)."""
        x = (uv[..., 0] - self.cx) / self.fx * depth
        y = -(uv[..., 1] - self.cy) / self.fy * depth
        cam = _stack([x, y, -depth], uv)
        return _transform(np.linalg.inv(self.world_to_camera), cam) if world else cam

    def pixel_grid(self) -> np.ndarray:
        """(H, W, 2) float32 pixel-centre coordinates (u, v)."""
        u = np.arange(self.width, dtype=np.float32) + 0.5
        v = np.arange(self.height, dtype=np.float32) + 0.5
        return np.stack(np.meshgrid(u, v), axis=-1)

    def projection_matrix(self) -> np.ndarray:
        """(4, 4) OpenGL projection matching `project` (what pyrender's IntrinsicsCamera builds)."""
        w, h, n, f = self.width, self.height, self.znear, self.zfar
        return np.array([
            [2 * self.fx / w, 0.0, 1.0 - 2 * self.cx / w, 0.0],
            [0.0, 2 * self.fy / h, 2 * self.cy / h - 1.0, 0.0],
            [0.0, 0.0, (f + n) / (n - f), 2 * f * n / (n - f)],
            [0.0, 0.0, -1.0, 0.0],
        ])


def look_at_distance(height_m: float, camera: Camera, *, fill: float = 0.8) -> float:
    """Distance at which an object `height_m` tall fills `fill` of the image height."""
    return camera.fy * height_m / (fill * camera.height)


def _transform(pose: np.ndarray, points):
    """(..., 3) points through a 4x4 rigid transform; written out (no BLAS call: (N, 3) x (3, 3) products
    are slow there), and a no-op for the identity."""
    pose = np.asarray(pose, dtype=np.float64)
    if np.array_equal(pose, np.eye(4)):
        return points
    r, t = pose[:3, :3].tolist(), pose[:3, 3].tolist()
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    return _stack([r[i][0] * x + r[i][1] * y + r[i][2] * z + t[i] for i in range(3)], points)


def _stack(items, ref):
    if isinstance(ref, np.ndarray):
        return np.stack(items, axis=-1)
    import torch

    return torch.stack(items, dim=-1)


def _clamp_min(x, lo: float):
    if isinstance(x, np.ndarray):
        return np.maximum(x, lo)
    return x.clamp(min=lo)
