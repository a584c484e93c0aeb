"""Stage "fit": landmarks -> body fit of the portrait, and the output framing.

Framing: VLOGGER makes square upper-body videos. The portrait can be any shape (a webcam frame,
a tall half-body photo, a full-body shot with a small face), so we choose one square crop of the
portrait around the head and shoulders — the region the video shows — and every later stage
works in that crop: the reference image, the render camera (the fit's camera, cropped and scaled)
and the control maps. The crop leaves room above the head and below the shoulders for motion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from vlogger_cli.io import atomic_write_json
from vlogger_cli.pipeline.base import Stage, StageContext
from vlogger_cli.threads import small_op_threads

# Square side as a multiple of the face height, and where the face sits in it (fractions of the side).
# 3.2 face heights show head, neck, shoulders and upper chest — the paper's "upper body" framing.
CROP_FACE_HEIGHTS = 3.2
FACE_TOP_AT = 0.16
WARN_FIT_ERROR = 0.03  # mean face-landmark error / face diagonal above which the log warns


@dataclass(frozen=True)
class Framing:
    """A square crop of the portrait: top-left (left, top) and side, in portrait pixels (may extend
    past the image only when the image is smaller than the square; the crop is then padded)."""

    left: float
    top: float
    side: float

    def to_dict(self) -> dict:
        return {"left": self.left, "top": self.top, "side": self.side}


def choose_framing(image_size: tuple[int, int], face_box: tuple[float, float, float, float]) -> Framing:
    """Square upper-body crop from the face box (x0, y0, x1, y1), kept inside the image where it fits."""
    height, width = image_size
    x0, y0, x1, y1 = face_box
    face_h = max(y1 - y0, x1 - x0, 1.0)
    side = min(CROP_FACE_HEIGHTS * face_h, float(min(width, height)))
    left = (x0 + x1) / 2 - side / 2
    top = y0 - FACE_TOP_AT * side
    left = float(np.clip(left, 0.0, width - side))
    top = float(np.clip(top, 0.0, height - side))
    return Framing(left, top, side)


def crop_reference(image: np.ndarray, framing: Framing, size: int) -> np.ndarray:
    """The framed square of the portrait at size x size (Lanczos)."""
    from PIL import Image

    box = (framing.left, framing.top, framing.left + framing.side, framing.top + framing.side)
    return np.asarray(Image.fromarray(image).resize((size, size), Image.LANCZOS, box=box))


def run_fit(ctx: StageContext) -> None:
    from PIL import Image

    from vlogger_cli.body.anny_model import anny_body
    from vlogger_cli.body.fit import fit_portrait
    from vlogger_cli.body.fit_io import save_fit
    from vlogger_cli.body.landmarks import detect_landmarks
    from vlogger_cli.io import atomic_path

    image = ctx.results["portrait"]
    landmarks = detect_landmarks(image, source=ctx.spec.portrait)
    model = anny_body()
    with small_op_threads():
        fit = fit_portrait(image, landmarks, model)
    error = fit.relative_face_error
    ctx.log.info("fit: mean face error %.2f %% of the face diagonal in %.1f s", 100 * error, fit.info.get("seconds", 0))
    if error > WARN_FIT_ERROR:
        ctx.log.warning("fit: face error %.1f %% is high; check fit.png", 100 * error)
    framing = choose_framing(image.shape[:2], landmarks.face_bbox())
    reference = crop_reference(image, framing, ctx.spec.resolution)
    save_fit(ctx.job.root, fit, landmarks, image=image, model=model)
    with atomic_path(ctx.job.path("reference.png")) as tmp:
        Image.fromarray(reference).save(tmp, format="PNG")
    # framing.json is written last: it marks the stage complete together with fit.*.
    atomic_write_json(ctx.job.path("framing.json"), {**framing.to_dict(), "size": ctx.spec.resolution})
    ctx.results.update(fit=fit, framing=framing, reference=reference)


def load_fit_stage(ctx: StageContext) -> None:
    from PIL import Image

    from vlogger_cli.body.fit_io import load_fit

    fit, _landmarks = load_fit(ctx.job.root)
    data = json.loads(ctx.job.path("framing.json").read_text())
    with Image.open(ctx.job.path("reference.png")) as img:
        reference = np.asarray(img.convert("RGB"))
    ctx.results.update(fit=fit, framing=Framing(data["left"], data["top"], data["side"]), reference=reference)


FIT = Stage("fit", run_fit, load_fit_stage, ("fit.safetensors", "fit.json", "reference.png", "framing.json"))
