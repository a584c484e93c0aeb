"""Quality figures of a stage-2 cascade on the astronaut (issue 5 "Done when"), printed as JSON:

    .venv/bin/python -m vlogger_cli.video.demo_check [--weights weights] [--resolution 256] [--frames 24]

The portrait (`skimage.data.astronaut()`) goes through the pipeline's own fit and framing; the controls
are rendered for `frames` frames with ZERO pose residual and the fitted expression (the person holds
the portrait's pose), and the cascade renders them window by window (temporal outpainting) exactly as
`renderer: diffusion` does. Reported:
- face PSNR (dB) of the frames against the framed portrait inside the face region (C^m face skin, lips,
  eyes), per stage (base at its resolution, final), and of the warp preview for comparison;
- the seam report (quality.seam_report) inside the face region;
- seconds per output frame of each stage (after loading).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

FACE_PARTS = ("face_skin", "lips", "eyes")


def astronaut_setup(resolution: int, frames: int):
    """(reference (R, R, 3) uint8, ControlFrames of `frames` zero-residual frames at R, face mask (R, R))."""
    import torch
    from skimage import data

    from vlogger_cli.body.anny_model import anny_body
    from vlogger_cli.body.fit import fit_portrait
    from vlogger_cli.body.landmarks import detect_landmarks
    from vlogger_cli.body.model import PART_INDEX
    from vlogger_cli.controls.render import ControlFrames
    from vlogger_cli.pipeline.controls import render_camera
    from vlogger_cli.body.framing import choose_framing, crop_reference
    from vlogger_cli.train.video_recipe import _controls, _still_motion, _vertices

    image = data.astronaut()
    model = anny_body()
    landmarks = detect_landmarks(image, source="astronaut")
    fit = fit_portrait(image, landmarks, model)
    framing = choose_framing(image.shape[:2], landmarks.face_bbox())
    reference = crop_reference(image, framing, resolution)
    camera = render_camera(fit, framing, resolution)
    with torch.no_grad():
        ref_vertices = model(fit.params()).vertices[0].numpy()
    ctrl = _controls(model, camera, reference, ref_vertices, _vertices(model, fit, _still_motion(1, fit)))
    ctrl = ControlFrames(**{k: np.repeat(getattr(ctrl, k), frames, axis=0) for k in ControlFrames.FIELDS})
    face = np.isin(ctrl.parts[0], [PART_INDEX[p] for p in FACE_PARTS])
    return reference, ctrl, face


def _shrink(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.BOX))


def measure(weights: str | Path = "weights", *, resolution: int = 256, frames: int = 24, steps: int | None = None,
            seed: int = 0, setup=None, sheet: str | Path | None = None) -> dict:
    """The figures as a dict; `sheet`: also save portrait | first frame | last frame there (PNG)."""
    import torch

    from vlogger_cli.controls.warp import warp_portrait
    from vlogger_cli.video.quality import seam_report
    from vlogger_cli.image_metrics import masked_psnr
    from vlogger_cli.video.render import load_cascade, render_cascade, stage_name

    torch.set_num_threads(1)
    reference, ctrl, face = setup or astronaut_setup(resolution, frames)
    t0 = time.time()
    models = load_cascade(weights, resolution)
    load_s = time.time() - t0
    out = {"weights": str(weights), "resolution": resolution, "frames": frames, "load_seconds": round(load_s, 2),
           "warp_face_psnr": round(masked_psnr(warp_portrait(reference, ctrl.flow, ctrl.cavity), reference, face), 2)}
    stage_seconds = {}

    class Timer:
        last = time.time()

    def on_window(stage, state):
        now = time.time()
        stage_seconds[stage] = stage_seconds.get(stage, 0.0) + now - Timer.last
        Timer.last = now

    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        kw = {"steps": steps} if steps else {}
        Timer.last = time.time()
        render_cascade(models, ctrl, reference, frames, Path(tmp), seed=seed, on_window=on_window, **kw)
        from vlogger_cli.video.chunks import window_store

        for i, model in enumerate(models):
            name = stage_name(model, i)
            video = window_store(Path(tmp) / name).frames(0, frames)
            size = model.config.resolution
            ref, mask = _shrink(reference, size), _shrink((face * 255).astype(np.uint8), size) > 127
            c = model.config
            out[name] = {"resolution": size, "face_psnr": round(masked_psnr(video, ref, mask), 2),
                         "face_psnr_min_frame": round(min(masked_psnr(f, ref, mask) for f in video), 2),
                         "seconds_per_frame": round(stage_seconds.get(name, 0.0) / frames, 3),
                         "seams": seam_report(video, c.window, c.overlap_frames, mask)}
            if i == len(models) - 1:
                out["face_psnr"] = out[name]["face_psnr"]
                if sheet:
                    from PIL import Image

                    Image.fromarray(np.concatenate([reference, video[0], video[-1]], 1)).save(sheet)
    out["seconds_per_frame"] = round(sum(stage_seconds.values()) / frames, 3)
    return out


def dataset_report(weights: str | Path, data: str | Path, *, split: str = "val", steps: int | None = None,
                   seed: int = 0) -> list[dict]:
    """Face PSNR of the cascade vs the warp preview on a dataset's clips (targets in NEW poses: warped photos,
    the original photo restored from a perturbed-pose warp, avatars), at the dataset's size."""
    import torch

    from vlogger_cli.body.model import PART_INDEX
    from vlogger_cli.controls.warp import warp_portrait
    from vlogger_cli.train.video_data import load_clips
    from vlogger_cli.video.chunks import window_store
    from vlogger_cli.image_metrics import masked_psnr
    from vlogger_cli.video.render import load_cascade, render_cascade, stage_name

    torch.set_num_threads(1)
    rows = []
    for clip in load_clips(data, split):
        frames, ctrl, reference = np.asarray(clip.frames()), clip.controls(), clip.reference()
        size = frames.shape[1]
        models = load_cascade(weights, size)
        face = np.isin(ctrl.parts, [PART_INDEX[p] for p in FACE_PARTS])
        with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
            render_cascade(models, ctrl, reference, len(frames), Path(tmp), seed=seed,
                           **({"steps": steps} if steps else {}))
            video = window_store(Path(tmp) / stage_name(models[-1], len(models) - 1)).frames(0, len(frames))
            base = (np.asarray(window_store(Path(tmp) / stage_name(models[0], 0)).frames(0, len(frames)))
                    if len(models) > 1 else None)
        warp = warp_portrait(reference, ctrl.flow, ctrl.cavity)
        row = {"clip": clip.id, "model_face_psnr": round(masked_psnr(video, frames, face), 2),
               "warp_face_psnr": round(masked_psnr(warp, frames, face), 2),
               "model_psnr": round(masked_psnr(video, frames), 2),
               "warp_psnr": round(masked_psnr(warp, frames), 2)}
        if base is not None:  # the base stage alone, at its size: targets and the warp shrunk (box) to it
            small = base.shape[1]
            shrink = lambda v: np.stack([_shrink(f, small) for f in v])
            small_face = shrink(np.repeat((face[..., None] * 255).astype(np.uint8), 3, -1))[..., 0] > 127
            row["base_face_psnr"] = round(masked_psnr(base, shrink(frames), small_face), 2)
            row["base_warp_face_psnr"] = round(masked_psnr(shrink(warp), shrink(frames), small_face), 2)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="weights")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sheet", default=None, help="save portrait | first | last frame to this PNG")
    parser.add_argument("--data", default=None, help="also report on this video dataset's validation clips")
    args = parser.parse_args(argv)
    if args.data:
        print(json.dumps(dataset_report(args.weights, args.data, steps=args.steps, seed=args.seed), indent=2))
    print(json.dumps(measure(args.weights, resolution=args.resolution, frames=args.frames, steps=args.steps,
                             seed=args.seed, sheet=args.sheet), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
