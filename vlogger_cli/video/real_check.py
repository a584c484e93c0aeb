"""Held-out real check of stage 2: re-render real clips from their own tracked motion, compare with the footage.

    .venv/bin/python -m vlogger_cli.video.real_check --videos V... [--renderer diffusion|warp] [--json OUT]
        [--frames N] [--weights weights] [--resolution 256] [--steps 10] [--seed 0] [--fps 25] [--strips DIR]

For each video (a clip held out from training): track it (cached per video), take its first usable frame as
the reference (framed as the render pipeline frames a portrait), render the next N frames' controls from the
tracked body (train/video_real.clip_controls: the code the real training data is built with) and re-render
those frames with each renderer: `warp` (the reference warped along the dense flow, `renderer: warp`) and
`diffusion` (the stage-2 cascade in --weights, windows chained as `renderer: diffusion` chains them). Scored
against the real frames cropped to the same square, on the frames whose tracking was not lost:
- face_psnr, face_ssim: inside the rendered face (C^m face skin, lips, mouth interior, eyes);
- mouth_psnr_open: inside the real mouth (the detected outer lip outline, filled) on the frames with the mouth
  open (tracked jawOpen > MOUTH_OPEN); null when no frame has it;
- flicker: frame-to-frame change inside the face that the real video does not have (quality.flicker);
- seconds_per_frame: the renderer alone (tracking and controls are the same for both), models loaded.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlogger_cli.video.demo_check import FACE_PARTS

MOUTH_OPEN = 0.25
"""Tracked jawOpen above which a frame's mouth counts as open."""
OUTER_LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
"""mediapipe face-mesh outer lip outline."""
REFERENCE_SLACK = 25
"""Frames tracked beyond the scored ones: room for the first usable (reference) frame to come late."""
METRICS = ("face_psnr", "face_ssim", "mouth_psnr_open", "flicker", "seconds_per_frame")
RENDERERS = ("warp", "diffusion")


@dataclass
class RealClip:
    """One held-out clip at size x size: real frames, the reference, controls and the scoring masks."""

    name: str
    targets: np.ndarray      # (T, S, S, 3) uint8 real frames, cropped to the reference's square
    reference: np.ndarray    # (S, S, 3) uint8 the first usable frame, same square
    controls: object         # ControlFrames of the T frames
    face: np.ndarray         # (T, S, S) bool rendered face region
    mouth: np.ndarray        # (T, S, S) bool real mouth (outer lip outline)
    mouth_open: np.ndarray   # (T,) bool tracked jawOpen > MOUTH_OPEN
    scored: np.ndarray       # (T,) bool tracking not lost
    first_frame: int


def load_real_clip(video, *, fps: float, size: int, frames: int, model) -> RealClip:
    from PIL import Image, ImageDraw

    from vlogger_cli.body.model import ARKIT_NAMES, PART_INDEX
    from vlogger_cli.body.track_cache import cached_track
    from vlogger_cli.errors import InputError
    from vlogger_cli.train.video_real import clip_controls, crop_frames
    from vlogger_cli.train.video_real_plan import ClipPlan, reference_framing, usable_frames

    video = Path(video)
    track, _ = cached_track(video, fps, max_frames=frames + REFERENCE_SLACK)  # no need to track the whole clip
    good = usable_frames(track)
    if not good.any() or np.argmax(good) + 1 >= track.num_frames:
        raise InputError(f"{video}: no usable tracked frame with frames after it; pass a longer talking clip")
    r0 = int(np.argmax(good))
    plan = ClipPlan(r0 + 1, min(track.num_frames - 1, r0 + frames), r0, reference_framing(track, r0))
    span = range(plan.first, plan.last + 1)
    crops = crop_frames(video, fps, {t: plan.framing for t in (r0, *span)}, size)
    reference, targets = crops[r0], np.stack([crops[t] for t in span])
    controls = clip_controls(model, track, plan, reference, size)
    face = np.isin(controls.parts, [PART_INDEX[p] for p in (*FACE_PARTS, "mouth_interior")])
    f, scale = plan.framing, size / plan.framing.side
    mouth = np.zeros(face.shape, bool)
    for k, t in enumerate(span):
        outline = (track.landmarks["face"][t, list(OUTER_LIPS), :2] - [f.left, f.top]) * scale
        image = Image.new("L", (size, size), 0)
        ImageDraw.Draw(image).polygon([tuple(p) for p in outline], fill=1)
        mouth[k] = np.asarray(image, bool)
    jaw = track.expression[plan.first:plan.last + 1, ARKIT_NAMES.index("jawOpen")]
    return RealClip(video.stem, targets, reference, controls, face, mouth, jaw > MOUTH_OPEN,
                    good[plan.first:plan.last + 1], plan.first)


def render(clip: RealClip, renderer: str, models=None, *, steps: int | None = None, seed: int = 0,
           mouth=None) -> tuple:
    """((T, S, S, 3) uint8 frames, seconds) of one renderer on the clip's controls. mouth: the weights' mouth
    stage (video/mouth.py), run on the cascade's frames as `renderer: diffusion` runs it."""
    import torch

    from vlogger_cli.controls.warp import warp_portrait
    from vlogger_cli.video.render import render_cascade

    n = len(clip.targets)
    start = time.perf_counter()
    if renderer == "warp":
        frames = warp_portrait(clip.reference, clip.controls.flow, clip.controls.cavity)
    else:
        with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
            store = render_cascade(models, clip.controls, clip.reference, n, Path(tmp), seed=seed,
                                   **({"steps": steps} if steps else {}))
            frames = np.asarray(store.frames(0, n))
        if mouth is not None:
            from vlogger_cli.video.mouth import refine_mouths

            frames = refine_mouths(mouth, frames, clip.controls, portrait=clip.reference)
    return frames, time.perf_counter() - start


def score(frames: np.ndarray, clip: RealClip, seconds: float) -> dict:
    from vlogger_cli.video.quality import flicker, masked_ssim
    from vlogger_cli.image_metrics import masked_psnr

    keep = clip.scored
    face, mouth, real, got = clip.face[keep], clip.mouth[keep], clip.targets[keep], frames[keep]
    open_ = clip.mouth_open[keep]
    return {"face_psnr": round(masked_psnr(got, real, face), 3), "face_ssim": round(masked_ssim(got, real, face), 4),
            "mouth_psnr_open": round(masked_psnr(got[open_], real[open_], mouth[open_]), 3)
            if open_.any() and mouth[open_].any() else None,
            "flicker": round(flicker(got, real, face), 3), "seconds_per_frame": round(seconds / len(frames), 4),
            "frames": int(keep.sum()), "open_frames": int(open_.sum()), "first_frame": clip.first_frame}


def save_strip(clip: RealClip, rendered: dict, path: Path, picks: int = 4) -> None:
    """A PNG to look at: for the `picks` frames with the mouth open widest (tracked order), the real frame's
    mouth and eyes, then each renderer's, side by side (rows: frames; columns: real, then the renderers)."""
    from PIL import Image

    from vlogger_cli.io import atomic_path

    order = np.flatnonzero(clip.mouth_open & clip.scored)
    order = order if len(order) else np.flatnonzero(clip.scored)
    ts = sorted(order[np.linspace(0, len(order) - 1, min(picks, len(order))).round().astype(int)]) if len(order) else []
    size = clip.targets.shape[1]
    rows = []
    for t in ts:
        ys, xs = np.nonzero(clip.mouth[t]) if clip.mouth[t].any() else (np.array([size * 0.7]), np.array([size / 2]))
        cy, cx, half = int(ys.mean()), int(xs.mean()), max(12, int(1.1 * (xs.max() - xs.min() + 1)) // 2)
        mouth = np.s_[max(0, cy - half):cy + half, max(0, cx - half):cx + half]
        eye_y = max(0, cy - int(2.4 * half))  # the eyes: about two mouth widths above it (whole-face band)
        eyes = np.s_[max(0, eye_y - half):eye_y + half, max(0, cx - 3 * half):cx + 3 * half]
        tiles = []
        for frames in [clip.targets] + [rendered[r] for r in rendered]:
            m = Image.fromarray(np.ascontiguousarray(frames[t][mouth])).resize((160, 160), Image.LANCZOS)
            e = Image.fromarray(np.ascontiguousarray(frames[t][eyes])).resize((480, 160), Image.LANCZOS)
            tiles += [np.asarray(m), np.asarray(e), np.full((160, 6, 3), 255, np.uint8)]
        rows.append(np.concatenate(tiles, axis=1))
    if rows:
        with atomic_path(path) as tmp:
            Image.fromarray(np.concatenate(rows, axis=0)).save(tmp, format="PNG")


def real_check(videos, renderers=RENDERERS, *, weights="weights", resolution: int = 256, frames: int = 48,
               steps: int | None = 10, seed: int = 0, fps: float = 25.0, strips: Path | None = None,
               log=print) -> dict:
    """{renderer: {"mean": {metric: value}, "clips": {name: {metric: value, ...}}}} (module docstring).
    strips: write `<clip>.png` there (save_strip: real, then each renderer, mouth and eyes)."""
    import torch

    from vlogger_cli.body.anny_model import anny_body
    from vlogger_cli.video.mouth import load_mouth
    from vlogger_cli.video.render import load_cascade

    torch.set_num_threads(1)
    models = load_cascade(weights, resolution) if "diffusion" in renderers else None
    mouth = load_mouth(weights) if "diffusion" in renderers else None
    model = anny_body()
    results = {r: {"mean": {}, "clips": {}} for r in renderers}
    for video in videos:
        clip = load_real_clip(video, fps=fps, size=resolution, frames=frames, model=model)
        rendered = {}
        for renderer in renderers:
            out, seconds = render(clip, renderer, models, steps=steps, seed=seed, mouth=mouth)
            results[renderer]["clips"][clip.name] = score(out, clip, seconds)
            rendered[renderer] = out
            log(f"{clip.name} {renderer}: {results[renderer]['clips'][clip.name]}")
        if strips is not None:
            Path(strips).mkdir(parents=True, exist_ok=True)
            save_strip(clip, rendered, Path(strips) / f"{clip.name}.png")
    for renderer in renderers:
        rows = results[renderer]["clips"].values()
        for metric in METRICS:
            values = [r[metric] for r in rows if r[metric] is not None]
            results[renderer]["mean"][metric] = round(float(np.mean(values)), 4) if values else None
    return results


def table(results: dict) -> str:
    """The renderers side by side: one row per clip (and the mean), `warp | diffusion` per metric."""
    renderers = list(results)
    clips = list(next(iter(results.values()))["clips"])
    head = f"{'clip':<32}" + "".join(f"{m:>{12 * len(renderers) + 2}}" for m in METRICS)
    sub = f"{'':<32}" + "".join("  " + "".join(f"{r:>12}" for r in renderers) for _ in METRICS)
    lines = [head, sub]
    for name, row in [(c, {r: results[r]["clips"][c] for r in renderers}) for c in clips] + \
            [("mean", {r: results[r]["mean"] for r in renderers})]:
        cells = "".join("  " + "".join(f"{_fmt(row[r][m]):>12}" for r in renderers) for m in METRICS)
        lines.append(f"{name[:32]:<32}{cells}")
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def main(argv: list[str] | None = None) -> int:
    from vlogger_cli.errors import VloggerError

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", nargs="+", required=True, help="held-out talking videos")
    parser.add_argument("--renderer", choices=RENDERERS, action="append",
                        help="one renderer (repeatable); default both side by side")
    parser.add_argument("--json", dest="json_out", default=None, help="write the figures to this JSON file")
    parser.add_argument("--frames", type=int, default=48, help="frames scored per clip, after the reference frame")
    parser.add_argument("--weights", default=None, help="weights folder (default: the repo's weights/)")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="stage-2 sampler steps (the demo manifest's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fps", type=float, default=25.0, help="rate the clips are tracked and scored at")
    parser.add_argument("--strips", default=None, metavar="DIR",
                        help="write DIR/<clip>.png: mouth and eyes of open-mouth frames, real | each renderer")
    args = parser.parse_args(argv)
    if args.frames < 2:
        parser.error("--frames must be at least 2")
    from vlogger_cli.paths import weights_dir

    renderers = tuple(dict.fromkeys(args.renderer or RENDERERS))
    try:
        results = real_check(args.videos, renderers, weights=args.weights or weights_dir(),
                             resolution=args.resolution, frames=args.frames, steps=args.steps, seed=args.seed,
                             fps=args.fps, strips=args.strips)
    except VloggerError as err:
        print(f"error: {err}")
        return 1
    print(table(results))
    if args.json_out:
        from vlogger_cli.io import atomic_write_json

        atomic_write_json(Path(args.json_out), results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
