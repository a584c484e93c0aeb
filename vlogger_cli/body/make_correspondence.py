"""Make the face-landmark <-> mesh table of a body model (committed under body/data/).

    python -m vlogger_cli.body.make_correspondence --model anny

1. Pose the model at rest with a slightly open mouth (so that the inner-lip landmarks of the upper and
   lower lip land on different lips) and render its head with pyrender: plain skin, pinkish lips, white
   eyes with a dark iris, one light from the camera plus ambient light. mediapipe's FaceMesh finds all
   478 landmarks on such a render (ENVIRONMENT.md).
2. Cast a ray through every landmark onto the mesh: triangle + barycentric coordinates.
3. Repeat from a few head angles, map every hit back onto the unrotated mesh and average the hits of a
   landmark (less detector noise); the face-outline landmarks, which lie on the silhouette, come from the
   frontal view only. The average is snapped back to the closest point on the hit triangles.

The table depends only on the mesh's topology, not on pose, shape or expression.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from vlogger_cli.body.correspondence import (
    SurfacePoints, closest_on_triangles, nearest_to_rays, ray_mesh_hits, save_table, table_path,
)
from vlogger_cli.body.landmarks import FACE_OVAL, NUM_FACE

VIEWS = ((0.0, 0.0), (-12.0, 0.0), (12.0, 0.0), (0.0, -8.0), (0.0, 8.0))
"""(yaw, pitch) in degrees of the rendered head; the first is frontal."""
RENDER_SIZE = 512
JAW_OPEN = 0.2
AGREE_M = 0.004
"""Hits of a landmark further than this from its frontal hit are detector outliers and are not averaged."""

SKIN, LIPS, SCLERA, IRIS, MOUTH = (225, 175, 145), (200, 120, 110), (240, 240, 238), (70, 50, 40), (90, 40, 40)


def vertex_colours(model, vertices: np.ndarray) -> np.ndarray:
    """(V, 4) uint8: skin, lips, mouth interior, and eyes with a dark iris around each eyeball's front."""
    from vlogger_cli.body.model import PART_INDEX

    labels = model.part_labels
    colours = np.tile(np.array([*SKIN, 255], np.uint8), (len(labels), 1))
    colours[labels == PART_INDEX["lips"], :3] = LIPS
    colours[labels == PART_INDEX["mouth_interior"], :3] = MOUTH
    eyes = labels == PART_INDEX["eyes"]
    colours[eyes, :3] = SCLERA
    for side in (1.0, -1.0):  # +x = the subject's left
        idx = np.nonzero(eyes & (np.sign(vertices[:, 0]) == side))[0]
        if idx.size == 0:
            continue
        front = vertices[idx[np.argmax(vertices[idx, 2])]]
        radial = np.linalg.norm(vertices[idx, :2] - front[:2], axis=1)
        colours[idx[radial < 0.0058], :3] = IRIS  # adult iris radius ~5.8 mm
    return colours


def _rotation(yaw: float, pitch: float) -> np.ndarray:
    y, p = math.radians(yaw), math.radians(pitch)
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    return ry @ rx


def render_head(vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray, centre: np.ndarray,
                size: int = RENDER_SIZE, distance: float = 0.9, fov_deg: float = 16.0):
    """Render the mesh from a camera on the +z axis through `centre`; returns (rgb, Camera)."""
    from vlogger_cli.camera import Camera
    from vlogger_cli.gl import ensure_gl_platform

    ensure_gl_platform()
    import pyrender
    import trimesh

    pose = np.eye(4)
    pose[:3, 3] = centre + np.array([0.0, 0.0, distance])
    camera = Camera.for_image(size, size, fov_deg=fov_deg, world_to_camera=np.linalg.inv(pose))
    scene = pyrender.Scene(ambient_light=[0.35, 0.35, 0.35], bg_color=[0.45, 0.55, 0.65, 1.0])
    mesh = trimesh.Trimesh(vertices, faces, vertex_colors=colours, process=False)
    scene.add(pyrender.Mesh.from_trimesh(mesh, smooth=True))
    scene.add(pyrender.IntrinsicsCamera(camera.fx, camera.fy, camera.cx, camera.cy, znear=0.05, zfar=10.0), pose=pose)
    scene.add(pyrender.DirectionalLight(intensity=2.5), pose=pose)
    renderer = pyrender.OffscreenRenderer(size, size)
    try:
        rgb, _ = renderer.render(scene)
    finally:
        renderer.delete()
    return np.ascontiguousarray(rgb[..., :3]), camera


def make_table(model, *, views=VIEWS, log=print) -> tuple[SurfacePoints, dict]:
    import torch

    from vlogger_cli.body.landmarks import detect_landmarks
    from vlogger_cli.body.model import PART_INDEX

    params = model.zero_params(1)
    if "jawOpen" in model.expression_names:
        params.expression = model.expression_vector(1, jawOpen=JAW_OPEN)
    with torch.no_grad():
        rest = model(params).vertices[0].double().numpy()
    faces = model.faces
    labels = model.part_labels
    face_parts = np.isin(labels, [PART_INDEX[p] for p in ("face_skin", "lips", "eyes")])
    centre = rest[face_parts].mean(axis=0)
    colours = vertex_colours(model, rest)
    # Rays through the parted lips would land deep in the mouth: the mouth interior is see-through here
    # and only camera-facing triangles count (not the inside of the head behind it), so the inner-lip
    # landmarks land on the lips (or, grazing past them, snap to the nearest lip vertex).
    solid = np.nonzero(~(labels[faces] == PART_INDEX["mouth_interior"]).any(axis=1))[0]
    solid_faces = faces[solid]

    hits = np.full((len(views), NUM_FACE, 3), np.nan)   # on the unrotated mesh
    tris = np.full((len(views), NUM_FACE), -1, np.int64)
    for k, (yaw, pitch) in enumerate(views):
        rot = _rotation(yaw, pitch)
        verts = (rest - centre) @ rot.T + centre
        rgb, camera = render_head(verts, faces, colours, centre)
        try:
            found = detect_landmarks(rgb, source=f"render of {model.name} (yaw {yaw}, pitch {pitch})")
        except Exception as exc:  # noqa: BLE001 - a view without a face only loses that view
            log(f"view yaw={yaw} pitch={pitch}: {exc}")
            continue
        uv = found.face[:, :2].astype(np.float64)
        origin = np.linalg.inv(camera.world_to_camera)[:3, 3]
        far = camera.unproject(uv, np.ones(len(uv)))
        directions = far - origin
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        tri, bary, _ = ray_mesh_hits(np.broadcast_to(origin, directions.shape).copy(), directions, verts,
                                     solid_faces, front_only=True)
        ok = tri >= 0
        if k == 0 and not ok.all():  # frontal points just off the surface (silhouette, lip gap): nearest vertex
            tri[~ok], bary[~ok] = nearest_to_rays(np.broadcast_to(origin, directions[~ok].shape),
                                                  directions[~ok], verts, solid_faces)
            log(f"{int((~ok).sum())} landmarks grazing the surface snapped to the nearest vertex")
            ok = tri >= 0
        tri = np.where(ok, solid[np.maximum(tri, 0)], -1)
        tris[k, ok] = tri[ok]
        hits[k, ok] = np.einsum("nkd,nk->nd", rest[faces[tri[ok]]], bary[ok])
        log(f"view yaw={yaw:+.0f} pitch={pitch:+.0f}: {ok.sum()} of {NUM_FACE} landmarks on the mesh")

    if (tris[0] < 0).any():
        raise RuntimeError(f"the frontal render left {int((tris[0] < 0).sum())} landmarks off the mesh")
    out_tri = np.zeros(NUM_FACE, np.int64)
    out_bary = np.zeros((NUM_FACE, 3))
    spread = np.zeros(NUM_FACE)
    oval = set(FACE_OVAL)
    for i in range(NUM_FACE):
        use = [0] if i in oval else [k for k in range(len(views))
                                     if tris[k, i] >= 0 and np.linalg.norm(hits[k, i] - hits[0, i]) < AGREE_M]
        target = hits[use, i].mean(axis=0)
        spread[i] = float(np.linalg.norm(hits[use, i] - target, axis=1).max())
        out_tri[i], out_bary[i] = closest_on_triangles(target, rest, faces, np.unique(tris[use, i]))
    info = {"views": np.asarray(views, np.float32), "spread_m": spread.astype(np.float32)}
    log(f"views agree within {spread.mean() * 1000:.2f} mm on average (max {spread.max() * 1000:.2f} mm)")
    return SurfacePoints(triangles=out_tri, barycentric=out_bary.astype(np.float32)), info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="anny", choices=["anny"], help="body model to make the table for")
    parser.add_argument("--out", type=Path, default=None, help="output .npz (default: body/data/<model>_face478.npz)")
    args = parser.parse_args(argv)
    from vlogger_cli.body.anny_model import anny_body

    model = anny_body()
    points, info = make_table(model)
    out = args.out or table_path(model.name)
    save_table(out, points, num_vertices=model.num_vertices, num_faces=len(model.faces),
               command=np.asarray("python -m vlogger_cli.body.make_correspondence --model anny"), **info)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
