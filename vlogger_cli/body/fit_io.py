"""A fit's artifacts in a job folder: `fit.safetensors` (tensors), `fit.json` (camera, sizes, names,
errors) and `fit.png` (the overlay), each written atomically (CONTRACT.md "A job's folder").

The detected landmarks are saved with the fit, so the overlay can be redrawn and later stages (edit
mode, evaluation) can compare against what was detected without running mediapipe again.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vlogger_cli.body.fit import BodyFit
from vlogger_cli.body.landmarks import Landmarks
from vlogger_cli.body.model import CANONICAL_JOINTS, HAND_JOINTS, KEYPOINT_NAMES
from vlogger_cli.camera import Camera
from vlogger_cli.io import atomic_path, atomic_save_safetensors, atomic_write_json

FIT_TENSORS = "fit.safetensors"
FIT_JSON = "fit.json"
FIT_PNG = "fit.png"
FORMAT_VERSION = 1
_PARAMS = ("shape", "global_orient", "transl", "pose", "hand_pose", "expression")


def save_fit(folder: str | Path, fit: BodyFit, landmarks: Landmarks, *, image: np.ndarray | None = None,
             model=None) -> dict[str, Path]:
    """Write fit.safetensors + fit.json, and fit.png when `image` and `model` are given; returns the paths."""

    folder = Path(folder)
    tensors = {name: np.ascontiguousarray(getattr(fit, name), dtype=np.float32) for name in _PARAMS}
    tensors["face_errors"] = fit.face_errors.astype(np.float32)
    tensors["keypoint_errors"] = fit.keypoint_errors.astype(np.float32)
    for key, value in landmarks.to_arrays().items():
        tensors[f"landmarks.{key}"] = np.ascontiguousarray(value)
    paths = {"tensors": folder / FIT_TENSORS, "json": folder / FIT_JSON}
    atomic_save_safetensors(paths["tensors"], tensors, {"format_version": str(FORMAT_VERSION), "model": fit.model_name})
    atomic_write_json(paths["json"], _summary(fit, model))
    if image is not None and model is not None:
        paths["png"] = folder / FIT_PNG
        write_overlay(paths["png"], image, fit, landmarks, model)
    return paths


def _summary(fit: BodyFit, model) -> dict:
    kp = {name: (None if np.isnan(e) else round(float(e), 2)) for name, e in zip(KEYPOINT_NAMES, fit.keypoint_errors)}
    return {
        "format_version": FORMAT_VERSION,
        "model": fit.model_name,
        "image_size": {"height": fit.image_size[0], "width": fit.image_size[1]},
        "camera": fit.camera.to_dict(),
        "names": {
            "shape": list(model.shape_names) if model is not None else None,
            "expression": list(model.expression_names) if model is not None else None,
            "pose": list(CANONICAL_JOINTS),
            "hand_pose": list(HAND_JOINTS),
            "keypoints": list(KEYPOINT_NAMES),
        },
        "errors": {
            "face_mean_px": round(fit.mean_face_error, 3),
            "face_max_px": round(float(np.max(fit.face_errors)), 3),
            "face_diagonal_px": round(fit.face_diagonal, 3),
            "face_mean_relative": round(fit.relative_face_error, 5),
            "keypoints_px": kp,
        },
        "fit": fit.info,
    }


def load_fit(folder: str | Path) -> tuple[BodyFit, Landmarks]:
    """The fit and the landmarks it was fitted to, from a folder written by `save_fit`."""
    from safetensors.numpy import load_file

    folder = Path(folder)
    meta = json.loads((folder / FIT_JSON).read_text())
    tensors = load_file(str(folder / FIT_TENSORS))
    landmarks = Landmarks.from_arrays({k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("landmarks.")})
    size = meta["image_size"]
    fit = BodyFit(model_name=meta["model"], image_size=(int(size["height"]), int(size["width"])),
                  camera=Camera.from_dict(meta["camera"]), face_errors=tensors["face_errors"],
                  keypoint_errors=tensors["keypoint_errors"], face_diagonal=float(meta["errors"]["face_diagonal_px"]),
                  info=meta.get("fit", {}), **{name: tensors[name] for name in _PARAMS})
    return fit, landmarks


# --- overlay ---------------------------------------------------------------------------------------

DETECTED = (40, 220, 60)      # green: what mediapipe found
PROJECTED = (235, 40, 40)     # red: where the fitted model puts it
WIRE = (255, 255, 255)


def overlay_image(image: np.ndarray, fit: BodyFit, landmarks: Landmarks, model) -> np.ndarray:
    """(H, W, 3) uint8: the photo under a light wireframe of the fitted mesh's camera-facing triangles,
    detected landmarks (green) joined to the projected model points (red)."""
    import cv2
    import torch

    from vlogger_cli.body.correspondence import load_face_table

    height, width = image.shape[:2]
    scale = max(height, width) / 512.0
    thick = max(1, round(scale))
    radius = max(1, round(1.5 * scale))
    with torch.no_grad():
        out = model(fit.params())
        face3d = load_face_table(model).locate(out.vertices, model.faces)[0]
    verts = out.vertices[0].numpy()
    uv, depth = fit.camera.project(verts)
    face_uv, _ = fit.camera.project(face3d.numpy())
    kp_uv, _ = fit.camera.project(out.keypoints[0].numpy())

    # Wireframe: triangles facing the camera, drawn at 25 % opacity.
    tri = model.faces
    a, b, c = verts[tri[:, 0]], verts[tri[:, 1]], verts[tri[:, 2]]
    normal = np.cross(b - a, c - a)
    facing = np.einsum("fk,fk->f", normal, -(a + b + c) / 3) > 0
    polys = np.round(uv[tri[facing]] * 4).astype(np.int32)  # 2 bits of sub-pixel precision
    wire = image.copy()
    cv2.polylines(wire, list(polys), True, WIRE, 1, cv2.LINE_AA, shift=2)
    canvas = cv2.addWeighted(image, 0.75, wire, 0.25, 0)

    def pt(p):
        return int(round(p[0] * 4)), int(round(p[1] * 4))

    kp_det, kp_conf = landmarks.keypoints()
    pairs = [(landmarks.face[i, :2], face_uv[i]) for i in range(len(face_uv))]
    pairs += [(kp_det[k], kp_uv[k]) for k in range(len(kp_uv)) if kp_conf[k] >= 0.5]
    for det, proj in pairs:
        cv2.line(canvas, pt(det), pt(proj), (255, 220, 0), thick, cv2.LINE_AA, shift=2)
    for det, proj in pairs:
        cv2.circle(canvas, pt(det), radius * 4, DETECTED, -1, cv2.LINE_AA, shift=2)
        cv2.circle(canvas, pt(proj), radius * 4, PROJECTED, -1, cv2.LINE_AA, shift=2)
    text = f"face error {fit.mean_face_error:.1f} px = {100 * fit.relative_face_error:.1f}% of face diagonal"
    cv2.putText(canvas, text, (int(8 * scale), int(22 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.55 * scale,
                (255, 255, 255), thick + 1, cv2.LINE_AA)
    cv2.putText(canvas, text, (int(8 * scale), int(22 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.55 * scale,
                (20, 20, 20), thick, cv2.LINE_AA)
    return canvas


def write_overlay(path: str | Path, image: np.ndarray, fit: BodyFit, landmarks: Landmarks, model) -> Path:
    from PIL import Image

    canvas = overlay_image(image, fit, landmarks, model)
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG")
    return Path(path)
