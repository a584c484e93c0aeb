"""The 2D controls of stage 2 (VLOGGER sec. 3.2): C^d, C^m, C^w (+ mask) and the dense flow, per frame.

One rasterisation per frame (raster.py: visible triangle + depth per pixel), then exact per-pixel shading
in numpy from perspective-correct barycentrics:

- C^d `position`: the surface point's camera-frame position, float32, normalised by the reference
  body's bounding box (centre -> 0, half its longest side -> 1); 0 on the background (`mask` says where).
- C^m `parts`: uint8 index into body.model.PARTS (0 = background); `one_hot` turns it into channels.
- C^w `warped`: the portrait's colour at the surface point's reference-view position where the portrait
  saw that point (`warped_mask`), else 0 — the reference texture rendered in the new pose, unlit.
- `flow`: backward flow to the portrait (warp.py), exact on the body, extrapolated smoothly outside.

Inside an open mouth the mesh has no teeth: there C^w and the flow follow mouth.py's two plates (teeth
rigid with the upper lip and with the jaw), and the gap between them is the `cavity`, unseen in C^w and
drawn dark by the warp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlogger_cli.body.model import PARTS
from vlogger_cli.camera import Camera
from vlogger_cli.controls.mouth import MOUTH, mouth_inside
from vlogger_cli.controls.raster import FaceRasterizer
from vlogger_cli.controls.warp import FALLOFF, extrapolate_flow, sample_bilinear


@dataclass
class ControlFrames:
    """Controls of T frames at H x W (numpy)."""

    position: np.ndarray     # (T, H, W, 3) float32 C^d
    mask: np.ndarray         # (T, H, W) bool, body pixels
    parts: np.ndarray        # (T, H, W) uint8 C^m
    warped: np.ndarray       # (T, H, W, 3) uint8 C^w
    warped_mask: np.ndarray  # (T, H, W) bool, pixels of C^w that got a reference colour
    flow: np.ndarray         # (T, H, W, 2) float32 backward flow to the portrait, pixels

    FIELDS = ("position", "mask", "parts", "warped", "warped_mask", "flow")

    def __len__(self) -> int:
        return int(self.position.shape[0])

    @property
    def cavity(self) -> np.ndarray:
        """(T, H, W) bool: the mouth's opening where the portrait shows nothing (mouth.py), drawn dark."""
        return (self.parts == MOUTH) & ~self.warped_mask

    def __getitem__(self, index) -> "ControlFrames":
        sl = index if isinstance(index, slice) else slice(index, index + 1)
        return ControlFrames(**{k: getattr(self, k)[sl] for k in self.FIELDS})

    @classmethod
    def concatenate(cls, items: list["ControlFrames"]) -> "ControlFrames":
        return cls(**{k: np.concatenate([getattr(c, k) for c in items]) for k in cls.FIELDS})


def one_hot(parts: np.ndarray, num_classes: int = len(PARTS)) -> np.ndarray:
    """(..., H, W) uint8 labels -> (..., H, W, num_classes) float32 one-hot (channel 0 = background)."""
    return np.eye(num_classes, dtype=np.float32)[parts]


@dataclass(frozen=True)
class PositionBox:
    """Normalisation of C^d: (p_camera - centre) / scale."""

    centre: np.ndarray
    scale: float

    @classmethod
    def around(cls, camera: Camera, vertices: np.ndarray) -> "PositionBox":
        cam = camera.to_camera(np.asarray(vertices, dtype=np.float64))
        lo, hi = cam.min(0), cam.max(0)
        return cls(centre=((lo + hi) / 2).astype(np.float32), scale=float(max((hi - lo).max() / 2, 1e-6)))


class ControlRenderer:
    """Renders ControlFrames for sequences of posed vertices; one GL context for its lifetime.

    faces (F, 3), face_parts (F,) uint8 labels (BodyModel.part_faces()), camera (the control-map size),
    reference: the body's ReferenceTexture at this camera (None: no C^w, zero flow), box: C^d's
    normalisation (default: around the reference vertices, else around the first frame rendered).
    """

    def __init__(self, faces: np.ndarray, face_parts: np.ndarray, camera: Camera, reference=None, *,
                 box: PositionBox | None = None, falloff: float = FALLOFF):
        self.faces = np.asarray(faces, dtype=np.int64)
        self.face_parts = np.asarray(face_parts, dtype=np.uint8)
        self.camera = camera
        self.reference = reference
        if reference is not None and (reference.camera.width, reference.camera.height) != (camera.width, camera.height):
            raise ValueError("the reference texture must be built at the renderer's camera resolution")
        self.box = box if box is not None else (
            PositionBox.around(camera, reference.vertices) if reference is not None else None)
        self.falloff = falloff
        self.rasterizer = FaceRasterizer(self.faces, camera)
        self._pixels = camera.pixel_grid().reshape(-1, 2)  # (H * W, 2) pixel centres

    @classmethod
    def for_model(cls, model, camera: Camera, reference=None, **kwargs) -> "ControlRenderer":
        return cls(model.faces, model.part_faces(), camera, reference, **kwargs)

    def set_camera(self, camera: Camera) -> None:
        """Another crop of the same view (FaceRasterizer.set_camera); C^d's box stays (camera-frame positions
        do not depend on the crop)."""
        self.rasterizer.set_camera(camera)
        self.camera = camera

    def close(self) -> None:
        self.rasterizer.close()

    def __enter__(self) -> "ControlRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def render(self, vertices) -> ControlFrames:
        """vertices (T, V, 3) world frame (numpy or torch) -> ControlFrames of T frames."""
        if hasattr(vertices, "detach"):
            vertices = vertices.detach().cpu().numpy()
        vertices = np.asarray(vertices, dtype=np.float32)
        if vertices.ndim == 2:
            vertices = vertices[None]
        frames = [self.render_frame(v) for v in vertices]
        return ControlFrames(**{k: np.stack([f[k] for f in frames]) for k in ControlFrames.FIELDS})

    def render_frame(self, vertices: np.ndarray) -> dict:
        cam, h, w = self.camera, self.camera.height, self.camera.width
        if self.box is None:
            self.box = PositionBox.around(cam, vertices)
        raster = self.rasterizer(vertices)
        # Flat pixel indices of the body: 1-D fancy indexing is much faster than (rows, cols) pairs.
        pix = np.flatnonzero(raster.face >= 0)
        face = raster.face.ravel()[pix]
        tri = self.faces[face]  # (N, 3)

        # Perspective-correct barycentrics of each pixel centre in its triangle.
        uv, depth = cam.project(vertices)
        q = self._pixels[pix]
        bary, inside = _barycentrics(uv[tri], np.maximum(depth[tri], 1e-6), q)
        if not inside.all():  # drops multisampled edge pixels whose decoded id is not their triangle (EGL)
            pix, face, tri, bary, q = pix[inside], face[inside], tri[inside], bary[inside], q[inside]
        points = _interpolate(bary, vertices, tri)  # (N, 3) world

        mask = np.zeros(h * w, bool)
        mask[pix] = True
        position = np.zeros((h * w, 3), np.float32)
        position[pix] = (cam.to_camera(points) - self.box.centre) / self.box.scale
        parts = np.zeros(h * w, np.uint8)
        parts[pix] = self.face_parts[face]

        warped = np.zeros((h * w, 3), np.uint8)
        warped_mask = np.zeros(h * w, bool)
        flow = np.zeros((h * w, 2), np.float32)
        ref = self.reference
        if ref is not None:
            ref_uv, seen = ref.visible_points(_interpolate(bary, ref.vertices, tri), face)
            flow[pix] = ref_uv - q
            opening = parts[pix] == MOUTH
            if opening.any():  # the teeth plates and the cavity (mouth.py)
                plates, cavity = mouth_inside(parts.reshape(h, w), flow.reshape(h, w, 2))
                flow = plates.reshape(-1, 2)
                seen = np.where(opening, ~cavity.ravel()[pix], seen)
                ref_uv = np.where(opening[:, None], q + flow[pix], ref_uv)  # the rest exactly as projected
            colors = sample_bilinear(ref.image, ref_uv[seen])
            warped[pix[seen]] = np.clip(colors + 0.5, 0, 255).astype(np.uint8)
            warped_mask[pix[seen]] = True
            flow = extrapolate_flow(flow.reshape(h, w, 2), mask.reshape(h, w), falloff=self.falloff)
        return {"position": position.reshape(h, w, 3), "mask": mask.reshape(h, w),
                "parts": parts.reshape(h, w), "warped": warped.reshape(h, w, 3),
                "warped_mask": warped_mask.reshape(h, w), "flow": flow.reshape(h, w, 2)}


def _interpolate(bary: np.ndarray, vertices: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """(N, 3) barycentrics of triangles `tri` (N, 3) over `vertices` (V, 3) -> (N, 3) points."""
    return (bary[:, 0:1] * vertices[tri[:, 0]] + bary[:, 1:2] * vertices[tri[:, 1]]
            + bary[:, 2:3] * vertices[tri[:, 2]])


def _barycentrics(tri_uv: np.ndarray, tri_depth: np.ndarray, q: np.ndarray, tol: float = 0.5):
    """(N, 3, 2) triangle pixels, (N, 3) depths, (N, 2) points -> ((N, 3) perspective-correct barycentrics,
    (N,) bool whether the point lies in its triangle up to `tol`). Degenerate triangles give their centroid."""
    a, b, c = tri_uv[:, 0], tri_uv[:, 1], tri_uv[:, 2]
    e1, e2, d = b - a, c - a, q - a
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    ok = np.abs(area) > 1e-9
    safe = np.where(ok, area, 1.0)
    lb = (d[:, 0] * e2[:, 1] - d[:, 1] * e2[:, 0]) / safe
    lc = (e1[:, 0] * d[:, 1] - e1[:, 1] * d[:, 0]) / safe
    screen = np.stack([1.0 - lb - lc, lb, lc], axis=-1)
    screen = np.where(ok[:, None], screen, 1.0 / 3.0)
    inside = (screen >= -tol).all(-1)
    screen = np.clip(screen, 0.0, None)
    persp = screen / tri_depth  # interpolate 1/z-weighted (perspective-correct)
    persp /= np.maximum(persp.sum(-1, keepdims=True), 1e-12)
    return persp.astype(np.float32), inside
