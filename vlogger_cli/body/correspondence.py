"""Points on a body mesh's surface named by (triangle, barycentric coordinates): the face-landmark table.

The 478 mediapipe FaceMesh landmarks are tied to the body model's mesh by a table the repo makes with its
own script (`python -m vlogger_cli.body.make_correspondence`, which renders the model, detects the landmarks
on the render and unprojects them onto the mesh) and commits under `body/data/<model>_face478.npz`.
A triangle + barycentric pair does not depend on pose, shape or expression, so one table serves every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vlogger_cli.errors import JobError

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class SurfacePoints:
    """N points on a mesh. triangles: (N,) int64 into the mesh's faces; barycentric: (N, 3) float32 (rows sum to 1)."""

    triangles: np.ndarray
    barycentric: np.ndarray

    def __len__(self) -> int:
        return int(self.triangles.shape[0])

    def corner_vertices(self, faces: np.ndarray) -> np.ndarray:
        """(N, 3) vertex indices of each point's triangle."""
        return faces[self.triangles]

    def locate(self, vertices: torch.Tensor, faces: np.ndarray) -> torch.Tensor:
        """(B, V, 3) vertices -> (B, N, 3) the points (differentiable in the vertices)."""
        corners = torch.as_tensor(self.corner_vertices(faces), device=vertices.device)  # (N, 3)
        weights = torch.as_tensor(self.barycentric, dtype=vertices.dtype, device=vertices.device)  # (N, 3)
        return torch.einsum("bnkd,nk->bnd", vertices[:, corners], weights)

    def locate_numpy(self, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """(V, 3) -> (N, 3)."""
        return np.einsum("nkd,nk->nd", vertices[self.corner_vertices(faces)], self.barycentric)


def table_path(model_name: str) -> Path:
    return DATA_DIR / f"{model_name}_face478.npz"


def save_table(path: Path, points: SurfacePoints, *, num_vertices: int, num_faces: int, **extra) -> None:
    from vlogger_cli.io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, triangles=points.triangles.astype(np.int32),
                                barycentric=points.barycentric.astype(np.float32),
                                num_vertices=np.int64(num_vertices), num_faces=np.int64(num_faces), **extra)


def load_face_table(model) -> SurfacePoints:
    """The face-landmark table of a BodyModel (by `model.name`), checked against its mesh."""
    path = table_path(model.name)
    if not path.is_file():
        raise JobError(f"no face-landmark table for body model {model.name!r} at {path}; "
                       f"make it with: python -m vlogger_cli.body.make_correspondence --model {model.name}")
    with np.load(path) as data:
        if int(data["num_vertices"]) != model.num_vertices or int(data["num_faces"]) != len(model.faces):
            raise JobError(f"face-landmark table {path} was made for another mesh of {model.name!r}; "
                           f"remake it with: python -m vlogger_cli.body.make_correspondence --model {model.name}")
        return SurfacePoints(triangles=data["triangles"].astype(np.int64),
                             barycentric=data["barycentric"].astype(np.float32))


# --- geometry used by the table's maker ----------------------------------------------------------

def ray_mesh_hits(origins: np.ndarray, directions: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                  chunk: int = 16, *, front_only: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First hit of each ray with the mesh (Möller-Trumbore); with `front_only`, only triangles whose
    front (counter-clockwise) side faces the ray count.

    origins, directions: (R, 3); returns triangles (R,) int64 (-1 for a miss), barycentric (R, 3), distance (R,).
    """
    v0 = vertices[faces[:, 0]]
    e1 = vertices[faces[:, 1]] - v0
    e2 = vertices[faces[:, 2]] - v0
    tri = np.full(len(origins), -1, np.int64)
    bary = np.zeros((len(origins), 3))
    dist = np.full(len(origins), np.inf)
    for start in range(0, len(origins), chunk):
        o = origins[start:start + chunk, None, :]
        d = directions[start:start + chunk, None, :]
        p = np.cross(d, e2[None])  # (r, F, 3)
        det = np.einsum("rfk,fk->rf", p, e1)
        ok = det > 1e-12 if front_only else np.abs(det) > 1e-12
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        s = o - v0[None]
        u = np.einsum("rfk,rfk->rf", s, p) * inv
        q = np.cross(s, e1[None])
        w = np.einsum("rk,rfk->rf", d[:, 0], q) * inv
        t = np.einsum("fk,rfk->rf", e2, q) * inv
        valid = ok & (u >= 0) & (w >= 0) & (u + w <= 1) & (t > 0)
        t = np.where(valid, t, np.inf)
        best = np.argmin(t, axis=1)
        rows = np.arange(len(best))
        hit = np.isfinite(t[rows, best])
        sl = slice(start, start + len(best))
        tri[sl] = np.where(hit, best, -1)
        bu, bw = u[rows, best], w[rows, best]
        bary[sl] = np.stack([1 - bu - bw, bu, bw], axis=-1) * hit[:, None]
        dist[sl] = t[rows, best]
    return tri, bary, dist


def nearest_to_rays(origins: np.ndarray, directions: np.ndarray, vertices: np.ndarray,
                    faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rays that graze past the mesh (silhouette points): the vertex nearest each ray, preferring the
    nearer of nearly equally close ones; returns triangles (R,) holding it and barycentric (R, 3)."""
    rel = vertices[None] - origins[:, None]                      # (R, V, 3)
    along = np.einsum("rvk,rk->rv", rel, directions)
    perp = np.linalg.norm(rel - along[..., None] * directions[:, None], axis=-1)
    used = np.zeros(len(vertices), bool)
    used[faces.ravel()] = True
    perp[:, ~used] = np.inf  # only vertices of the given triangles
    near = perp <= perp.min(axis=1, keepdims=True) + 1e-3
    vertex = np.argmin(np.where(near, along, np.inf), axis=1)
    first_face = np.full(len(vertices), -1, np.int64)
    for corner in range(3):
        unset = first_face[faces[:, corner]] < 0
        first_face[faces[unset, corner]] = np.nonzero(unset)[0]
    tri = first_face[vertex]
    bary = (faces[tri] == vertex[:, None]).astype(np.float64)
    return tri, bary


def closest_on_triangles(point: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                         candidates: np.ndarray) -> tuple[int, np.ndarray]:
    """The closest point to `point` (3,) on the candidate triangles: (triangle, barycentric (3,))."""
    best, best_bary, best_d = -1, None, np.inf
    for f in candidates:
        a, b, c = vertices[faces[f]]
        bary = _closest_barycentric(point, a, b, c)
        d = np.linalg.norm(bary @ np.stack([a, b, c]) - point)
        if d < best_d:
            best, best_bary, best_d = int(f), bary, d
    return best, best_bary


def _closest_barycentric(p, a, b, c) -> np.ndarray:
    """Barycentric coordinates of the point of triangle abc closest to p
    (Ericson, Real-Time Collision Detection, 5.1.5)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = ab @ ap, ac @ ap
    if d1 <= 0 and d2 <= 0:
        return np.array([1.0, 0.0, 0.0])
    bp = p - b
    d3, d4 = ab @ bp, ac @ bp
    if d3 >= 0 and d4 <= d3:
        return np.array([0.0, 1.0, 0.0])
    vc = d1 * d4 - d3 * d2
    if vc <= 0 and d1 >= 0 and d3 <= 0:
        v = d1 / (d1 - d3)
        return np.array([1 - v, v, 0.0])
    cp = p - c
    d5, d6 = ab @ cp, ac @ cp
    if d6 >= 0 and d5 <= d6:
        return np.array([0.0, 0.0, 1.0])
    vb = d5 * d2 - d1 * d6
    if vb <= 0 and d2 >= 0 and d6 <= 0:
        w = d2 / (d2 - d6)
        return np.array([1 - w, 0.0, w])
    va = d3 * d6 - d5 * d4
    if va <= 0 and (d4 - d3) >= 0 and (d5 - d6) >= 0:
        w = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        return np.array([0.0, 1 - w, w])
    denom = 1.0 / (va + vb + vc)
    v, w = vb * denom, vc * denom
    return np.array([1 - v - w, v, w])
