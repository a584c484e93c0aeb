"""Stage "fit": landmarks -> body fit of the portrait, and the output framing.

Framing: the square crop every later stage works in (body/framing.py).
"""

from __future__ import annotations

import json
import numpy as np

from vlogger_cli.body.framing import Framing, choose_framing, crop_reference
from vlogger_cli.io import atomic_write_json
from vlogger_cli.pipeline.base import Stage, StageContext
from vlogger_cli.threads import small_op_threads

WARN_FIT_ERROR = 0.03  # mean face-landmark error / face diagonal above which the log warns


def run_fit(ctx: StageContext) -> None:
    from PIL import Image

    from vlogger_cli.body.anny_model import anny_body
    from vlogger_cli.body.fit import fit_portrait
    from vlogger_cli.body.fit_io import save_fit
    from vlogger_cli.body.landmarks import detect_landmarks
    from vlogger_cli.io import atomic_path

    image = ctx.results.portrait
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
    ctx.results.fit, ctx.results.framing, ctx.results.reference = fit, framing, reference


def load_fit_stage(ctx: StageContext) -> None:
    from PIL import Image

    from vlogger_cli.body.fit_io import load_fit

    fit, _landmarks = load_fit(ctx.job.root)
    data = json.loads(ctx.job.path("framing.json").read_text())
    with Image.open(ctx.job.path("reference.png")) as img:
        reference = np.asarray(img.convert("RGB"))
    ctx.results.fit, ctx.results.reference = fit, reference
    ctx.results.framing = Framing(data["left"], data["top"], data["side"])


FIT = Stage("fit", run_fit, load_fit_stage, ("fit.safetensors", "fit.json", "reference.png", "framing.json"))
