"""The demo DATA RECIPE of stage 2 (`vlogger train video-data`): a video dataset (train/video_data.py
format) that the repo makes itself, from real still photos and rendered avatars, with the pipeline's
own fitting and control rendering. Nothing is downloaded; the only photographs are the ones that ship
with scikit-image (`skimage.data`).

Clip kinds (each clip: T frames at S x S, its reference.png, controls rendered by ControlRenderer):

- `photo-still`   zero pose residual: reference = the (augmented) astronaut crop, every target = the
                  reference itself, controls = the fitted pose with the fitted expression. Teaches
                  identity-preserving re-rendering (the issue's face-PSNR case).
- `photo-warp`    motion from the synthetic motion corpus (espeak speech -> visemes, nods, sway): the
                  photo's body driven by it, targets = the photo warped along each frame's dense flow
                  (the `renderer: warp` frame), so targets and controls agree exactly.
- `photo-restore` self-supervised reconstruction (issue 5): the photo is warped to a perturbed pose
                  p; that warped image W_p is the clip's reference (its texture is read at pose p) and
                  the targets are the ORIGINAL photo at the fitted pose, so the model learns to undo the
                  warp's distortions and fill what W_p does not show from the controls.
- `avatar`        the fitted anny body with random skin / clothing colours and lighting, rendered with
                  pyrender over a real photographic background that ships with scikit-image (coffee,
                  chelsea, rocket, ...), driven by corpus motion; reference = the avatar's first frame,
                  controls rendered with that reference's texture (mouth interior, disocclusions and
                  shading are real, not warped).

Photo augmentation: horizontal flip and scale/shift crops (each geometric variant is fitted once:
landmarks -> `fit_portrait`), colour jitter (gain, gamma, saturation, per-channel) per clip.
Everything is seeded: clip i comes from the generator (seed, i).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KINDS = ("photo-still", "photo-warp", "photo-restore", "avatar")
DEFAULT_MIX = {"photo-still": 0.15, "photo-warp": 0.3, "photo-restore": 0.2, "avatar": 0.35}
BACKGROUNDS = ("coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "camera",
               "moon", "brick", "grass", "gravel", "coins", "clock")
"""Photographs bundled inside scikit-image's wheel (none of these is fetched from the network)."""


@dataclass
class PhotoVariant:
    """One geometric variant of a photo, fitted: framing, reference crop, camera, reference vertices."""

    name: str
    fit: object
    reference: np.ndarray      # (S, S, 3) uint8 framed crop
    camera: object             # render camera at S x S
    vertices: np.ndarray       # (V, 3) reference-pose vertices


def _photo_variants(model, size: int, rng: np.random.Generator, count: int, log) -> list[PhotoVariant]:
    import torch
    from skimage import data

    from vlogger_cli.body.fit import fit_portrait
    from vlogger_cli.body.landmarks import detect_landmarks
    from vlogger_cli.errors import JobError
    from vlogger_cli.pipeline.controls import render_camera
    from vlogger_cli.body.framing import choose_framing, crop_reference

    photo = data.astronaut()
    variants = []
    for k in range(count):
        image = photo[:, ::-1] if k % 2 else photo
        if k >= 2:  # scale / shift: a random crop holding the head, resized back to 512
            side = int(rng.uniform(0.7, 0.95) * 512)
            left = int(rng.integers(0, 512 - side + 1))
            top = int(rng.integers(0, min(60, 512 - side) + 1))
            from PIL import Image

            image = np.asarray(Image.fromarray(np.ascontiguousarray(image[top:top + side, left:left + side]))
                               .resize((512, 512), Image.LANCZOS))
        image = np.ascontiguousarray(image)
        try:
            landmarks = detect_landmarks(image, source=f"astronaut variant {k}")
            fit = fit_portrait(image, landmarks, model)
        except (JobError, ValueError) as err:  # a crop without a detectable face: skip it
            log(f"video-data: photo variant {k} skipped ({err})")
            continue
        framing = choose_framing(image.shape[:2], landmarks.face_bbox())
        reference = crop_reference(image, framing, size)
        camera = render_camera(fit, framing, size)
        with torch.no_grad():
            vertices = model(fit.params()).vertices[0].numpy()
        variants.append(PhotoVariant(f"astronaut{k}", fit, reference, camera, vertices))
        log(f"video-data: fitted photo variant {k} (face error {100 * fit.relative_face_error:.1f} %)")
    if not variants:
        raise RuntimeError("no photo variant could be fitted")
    return variants


def _jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float32) / 255.0
    x = x ** rng.uniform(0.8, 1.25)
    grey = x.mean(-1, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.7, 1.3)
    x = x * rng.uniform(0.85, 1.15) * rng.uniform(0.93, 1.07, 3)
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _motion_segment(rng: np.random.Generator, frames: int, fit, *, amplify: float = 1.0):
    """A `frames`-long Motion cut from a synthetic corpus clip, pose residuals scaled by `amplify`."""
    import torch

    from vlogger_cli.motion.artifacts import Motion
    from vlogger_cli.motion.corpus import make_clip
    from vlogger_cli.motion.representation import POSE, POSE_JOINTS
    from vlogger_cli.rotations import axis_angle_to_rotation_6d, rotation_6d_to_axis_angle

    values = make_clip(rng)["motion"]
    while len(values) < frames:
        values = np.concatenate([values, values[::-1]])
    start = int(rng.integers(0, len(values) - frames + 1))
    values = values[start:start + frames].copy()
    if amplify != 1.0:
        d6 = torch.as_tensor(values[:, POSE]).reshape(frames, len(POSE_JOINTS), 6)
        aa = rotation_6d_to_axis_angle(d6) * amplify
        values[:, POSE] = axis_angle_to_rotation_6d(aa).reshape(frames, -1).numpy()
    return Motion(values.astype(np.float32), 25.0)


def _still_motion(frames: int, fit):
    """Zero pose residual with the fitted expression: the pose and face of the photo itself."""
    from vlogger_cli.motion.artifacts import Motion
    from vlogger_cli.motion.representation import EXPRESSION, neutral_motion

    values = neutral_motion(frames)
    expr = np.asarray(fit.expression, np.float32)
    values[:, EXPRESSION] = expr[: values[:, EXPRESSION].shape[1]]
    return Motion(values.astype(np.float32), 25.0)


def _vertices(model, fit, motion) -> np.ndarray:
    import torch

    from vlogger_cli.pipeline.controls import frame_params

    with torch.no_grad():
        return model(frame_params(fit, motion, 0, motion.num_frames - 1)).vertices.numpy()


def _controls(model, camera, reference_image, reference_vertices, vertices):
    from vlogger_cli.controls.texture import reference_texture
    from vlogger_cli.controls.render import ControlRenderer

    texture = reference_texture(reference_image, camera, reference_vertices, model.faces)
    with ControlRenderer.for_model(model, camera, texture) as renderer:
        return renderer.render(vertices)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    from PIL import Image
    from skimage import data

    name = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    img = np.asarray(getattr(data, name)())
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, -1)
    img = img[..., :3]
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255).astype(np.uint8) if img.max() <= 1 else img.astype(np.uint8)
    h, w = img.shape[:2]
    side = int(min(h, w) * rng.uniform(0.5, 1.0))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(np.ascontiguousarray(img[top:top + side, left:left + side]))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    out = np.asarray(crop.resize((size, size), Image.BICUBIC)).astype(np.float32)
    if rng.random() < 0.5:  # shallow depth of field
        from PIL import ImageFilter

        out = np.asarray(Image.fromarray(out.astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(1, 4)))).astype(np.float32)
    return np.clip(out * rng.uniform(0.6, 1.1), 0, 255).astype(np.uint8)


def _avatar_colours(model, vertices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(V, 4) uint8 vertex colours: skin tone, lips, eyes (make_correspondence), clothing with a pattern."""
    from vlogger_cli.body.make_correspondence import vertex_colours
    from vlogger_cli.body.model import PART_INDEX

    colours = vertex_colours(model, vertices).astype(np.float32)
    labels = model.part_labels
    tones = np.array([[255, 224, 196], [234, 192, 160], [198, 145, 110], [160, 110, 80], [110, 72, 50], [80, 52, 38]], np.float32)
    a = rng.uniform(0, len(tones) - 1)
    skin = tones[int(a)] * (1 - a % 1) + tones[min(int(a) + 1, len(tones) - 1)] * (a % 1)
    skin_parts = [PART_INDEX[p] for p in ("face_skin", "head_back", "neck", "hand_l", "hand_r", "forearm_l", "forearm_r")]
    is_skin = np.isin(labels, skin_parts)
    colours[is_skin, :3] = skin
    lips = labels == PART_INDEX["lips"]
    colours[lips, :3] = skin * np.array([0.85, 0.62, 0.62])
    hair = (labels == PART_INDEX["head_back"]) & (rng.random() < 0.8)
    if np.any(hair):  # a "hair cap": scalp above the ears in a hair colour
        top = vertices[:, 2] > np.percentile(vertices[labels == PART_INDEX["head_back"], 2], 35)
        hair_colour = rng.choice([[30, 22, 18], [70, 45, 25], [140, 100, 60], [200, 170, 110], [110, 110, 110]])
        colours[(labels == PART_INDEX["head_back"]) & top, :3] = hair_colour
    clothing = np.isin(labels, [PART_INDEX[p] for p in ("torso", "upper_arm_l", "upper_arm_r", "lower_body")])
    if rng.random() < 0.4:
        clothing |= np.isin(labels, [PART_INDEX["forearm_l"], PART_INDEX["forearm_r"]])
    cloth = rng.uniform(0, 255, 3)
    second = rng.uniform(0, 255, 3)
    v = vertices[clothing]
    pattern = rng.integers(0, 3)
    if pattern == 1:  # stripes
        w = (np.sin(v[:, 2] * rng.uniform(40, 120)) > 0)[:, None]
    elif pattern == 2:  # checks
        f = rng.uniform(30, 80)
        w = ((np.sin(v[:, 0] * f) > 0) ^ (np.sin(v[:, 2] * f) > 0))[:, None]
    else:
        w = np.zeros((len(v), 1), bool)
    colours[clothing, :3] = np.where(w, second, cloth)
    colours[:, :3] *= rng.uniform(0.95, 1.05, (len(colours), 1))  # subtle per-vertex variation
    return np.clip(colours, 0, 255).astype(np.uint8)


class AvatarRenderer:
    """pyrender colour renders of the body (lit, vertex-coloured) at a Camera; one GL context."""

    def __init__(self, camera):
        from vlogger_cli.gl import ensure_gl_platform

        ensure_gl_platform()
        import pyrender

        self.camera = camera
        self.renderer = pyrender.OffscreenRenderer(camera.width, camera.height)

    def close(self) -> None:
        self.renderer.delete()

    def render(self, vertices, faces, colours, rng_light: dict) -> tuple[np.ndarray, np.ndarray]:
        import pyrender
        import trimesh

        cam = self.camera
        pose = np.linalg.inv(cam.world_to_camera)
        scene = pyrender.Scene(ambient_light=rng_light["ambient"], bg_color=[0, 0, 0, 0])
        mesh = trimesh.Trimesh(vertices, faces, vertex_colors=colours, process=False)
        scene.add(pyrender.Mesh.from_trimesh(mesh, smooth=True))
        scene.add(pyrender.IntrinsicsCamera(cam.fx, cam.fy, cam.cx, cam.cy, znear=0.05, zfar=100.0), pose=pose)
        scene.add(pyrender.DirectionalLight(color=rng_light["colour"], intensity=rng_light["intensity"]),
                  pose=pose @ rng_light["rotation"])
        scene.add(pyrender.DirectionalLight(color=[1.0, 1.0, 1.0], intensity=rng_light["fill"]), pose=pose)
        rgb, depth = self.renderer.render(scene)
        return np.ascontiguousarray(rgb[..., :3]), depth > 0


def _light(rng: np.random.Generator) -> dict:
    yaw, pitch = rng.uniform(-0.8, 0.8), rng.uniform(-0.6, 0.3)
    ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    rot = np.eye(4)
    rot[:3, :3] = ry @ rx
    warm = rng.uniform(-0.15, 0.15)
    return {"ambient": [rng.uniform(0.25, 0.5)] * 3, "colour": [1.0, 1.0 - abs(warm) / 2, 1.0 - warm],
            "intensity": rng.uniform(1.5, 4.0), "fill": rng.uniform(0.0, 1.0), "rotation": rot}


def _smooth_mask(mask: np.ndarray) -> np.ndarray:
    """Slightly soft edges for compositing (pyrender under OSMesa has no anti-aliasing)."""
    from scipy.ndimage import uniform_filter

    return uniform_filter(mask.astype(np.float32), size=(1, 3, 3) if mask.ndim == 3 else 3)


def make_clip(kind: str, variant: PhotoVariant, model, rng: np.random.Generator, frames: int, size: int):
    """(frames (T, S, S, 3) uint8, reference (S, S, 3) uint8, ControlFrames) of one clip of `kind`."""
    from vlogger_cli.controls.render import ControlFrames
    from vlogger_cli.controls.warp import warp_portrait

    fit, camera = variant.fit, variant.camera
    if kind == "photo-still":
        reference = _jitter(variant.reference, rng)
        verts = _vertices(model, fit, _still_motion(1, fit))
        ctrl = _controls(model, camera, reference, variant.vertices, verts)
        ctrl = ControlFrames(**{k: np.repeat(getattr(ctrl, k), frames, axis=0) for k in ControlFrames.FIELDS})
        return np.repeat(reference[None], frames, axis=0), reference, ctrl
    if kind == "photo-warp":
        reference = _jitter(variant.reference, rng)
        motion = _motion_segment(rng, frames, fit, amplify=rng.uniform(0.8, 2.0))
        ctrl = _controls(model, camera, reference, variant.vertices, _vertices(model, fit, motion))
        return warp_portrait(reference, ctrl.flow, ctrl.cavity), reference, ctrl
    if kind == "photo-restore":
        original = _jitter(variant.reference, rng)
        # W_p: the photo warped to one perturbed pose p (a frame of a strongly amplified motion)
        motion = _motion_segment(rng, 1, fit, amplify=rng.uniform(1.5, 3.0))
        verts_p = _vertices(model, fit, motion)
        ctrl_p = _controls(model, camera, original, variant.vertices, verts_p)
        warped = warp_portrait(original, ctrl_p.flow[0], ctrl_p.cavity[0])
        # controls of the fitted pose, with W_p's texture read at pose p
        verts_0 = _vertices(model, fit, _still_motion(1, fit))
        ctrl = _controls(model, camera, warped, verts_p[0], verts_0)
        ctrl = ControlFrames(**{k: np.repeat(getattr(ctrl, k), frames, axis=0) for k in ControlFrames.FIELDS})
        return np.repeat(original[None], frames, axis=0), warped, ctrl
    if kind == "avatar":
        motion = _motion_segment(rng, frames, fit, amplify=rng.uniform(0.8, 2.0))
        verts = _vertices(model, fit, motion)
        colours = _avatar_colours(model, verts[0], rng)
        background = _background(rng, size).astype(np.float32)
        light = _light(rng)
        renderer = AvatarRenderer(camera)
        try:
            shots = [renderer.render(v, model.faces, colours, light) for v in verts]
        finally:
            renderer.close()
        rgb = np.stack([s[0] for s in shots]).astype(np.float32)
        alpha = _smooth_mask(np.stack([s[1] for s in shots]))[..., None]
        video = np.clip(rgb * alpha + background[None] * (1 - alpha) + 0.5, 0, 255).astype(np.uint8)
        reference = video[0]
        ctrl = _controls(model, camera, reference, verts[0], verts)
        return video, reference, ctrl
    raise ValueError(f"unknown clip kind {kind!r}; choose one of {', '.join(KINDS)}")


def write_recipe_dataset(root: str | Path, *, clips: int = 240, frames: int = 16, size: int = 256, seed: int = 0,
                         val_clips: int = 4, photo_variants: int = 6, mix: dict | None = None,
                         log: Callable[[str], None] = print) -> dict:
    """Write the demo video dataset to `root` (format: weights/README.md "Video dataset")."""
    import torch

    from vlogger_cli.body.anny_model import anny_body
    from vlogger_cli.train.video_data import write_clip, write_index

    torch.set_num_threads(1)
    mix = dict(DEFAULT_MIX if mix is None else mix)
    kinds, weights = list(mix), np.array(list(mix.values()), np.float64)
    if any(k not in KINDS for k in kinds):
        raise ValueError(f"unknown clip kinds in mix: {kinds}")
    root = Path(root)
    t0 = time.time()
    model = anny_body()
    variants = _photo_variants(model, size, np.random.default_rng([seed, 10 ** 6]), photo_variants, log)
    entries, counts = [], {k: 0 for k in kinds}
    for i in range(clips):
        rng = np.random.default_rng([seed, i])
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        if i >= clips - val_clips:  # validation: the un-augmented astronaut, one of each kind
            kind = ("photo-warp", "avatar", "photo-still", "photo-restore")[(clips - 1 - i) % 4]
            variant = variants[0]
        else:
            variant = variants[int(rng.integers(len(variants)))]
        video, reference, ctrl = make_clip(kind, variant, model, rng, frames, size)
        clip_id = f"{kind}-{i:05d}"
        entry = write_clip(root, clip_id, video, reference, ctrl)
        entry.update(split="val" if i >= clips - val_clips else "train", kind=kind, source=variant.name)
        entries.append(entry)
        counts[kind] = counts.get(kind, 0) + 1
        if (i + 1) % 10 == 0 or i + 1 == clips:
            log(f"video-data: {i + 1}/{clips} clips, {time.time() - t0:.0f} s")
    write_index(root, fps=25.0, size=size, clips=entries, source="vlogger video-data recipe", seed=seed,
                kinds=counts)
    return {"clips": len(entries), "frames": len(entries) * frames, "kinds": counts, "seconds": round(time.time() - t0, 1)}
