"""The stages of one job, in order (DESIGN.md "The data flow").

A stage writes its artifacts into the job folder (atomically) and leaves its in-memory hand-off in
`ctx.results`; when a resumed run finds a stage already done, the stage's `load` restores that
hand-off from the artifacts instead of recomputing. Later issues append stages (fit, motion,
controls, video, sr, export) to `STAGES`; `make demo` always runs all that exist.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from vlogger_cli.jobs.atomic import TMP_MARKER
from vlogger_cli.jobs.store import JobDir
from vlogger_cli.manifest import JobSpec


@dataclass
class StageContext:
    spec: JobSpec
    job: JobDir
    device: str                      # "cpu" or "cuda" (resolved from --device before the job starts)
    log: logging.Logger
    results: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[StageContext], None]
    load: Callable[[StageContext], None]
    outputs: tuple[str, ...]         # artifacts, relative to the job folder, that a finished stage leaves


# ---------------------------------------------------------------------------------------------- speech


def run_speech(ctx: StageContext) -> None:
    """Text -> TTS, or the user's audio -> 16 kHz mono `audio.wav`; then per-frame features."""
    from vlogger_cli.audio import compute_features, load_audio, synthesize_speech, write_wav

    spec = ctx.spec
    if spec.text is not None:
        # The raw TTS file is only a temporary (named like our atomic temps, so a killed run's
        # leftover is cleaned up); what we keep is the converted speech the later stages use.
        tts_path = ctx.job.path(".tts" + TMP_MARKER + ".wav")
        try:
            synthesize_speech(spec.text, tts_path, voice=spec.voice, rate=spec.rate)
            ctx.log.info("speech: spoke %d characters with voice %s at %d wpm", len(spec.text), spec.voice, spec.rate)
            waveform = load_audio(tts_path, max_seconds=spec.max_audio_seconds)
        finally:
            tts_path.unlink(missing_ok=True)
    else:
        waveform = load_audio(spec.audio, max_seconds=spec.max_audio_seconds)
        ctx.log.info("speech: read %s", spec.audio)
    write_wav(ctx.job.path("audio.wav"), waveform)
    ctx.results["features"] = compute_features(waveform, spec.fps)


def load_speech(ctx: StageContext) -> None:
    from vlogger_cli.audio import compute_features, load_audio

    waveform = load_audio(ctx.job.path("audio.wav"), max_seconds=ctx.spec.max_audio_seconds)
    ctx.results["features"] = compute_features(waveform, ctx.spec.fps)


# ---------------------------------------------------------------------------------------------- portrait


def run_portrait(ctx: StageContext) -> None:
    """Read the photo once (EXIF rotation, RGBA, greyscale, huge sizes) into the upright RGB
    reference every later stage uses, saved as `portrait.png`."""
    from PIL import Image

    from vlogger_cli.body.portrait import load_portrait
    from vlogger_cli.jobs.atomic import atomic_path

    image = load_portrait(ctx.spec.portrait)
    with atomic_path(ctx.job.path("portrait.png")) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    ctx.log.info("portrait: %s -> %dx%d", ctx.spec.portrait, image.shape[1], image.shape[0])
    ctx.results["portrait"] = image


def load_portrait_stage(ctx: StageContext) -> None:
    import numpy as np
    from PIL import Image

    with Image.open(ctx.job.path("portrait.png")) as img:
        ctx.results["portrait"] = np.asarray(img.convert("RGB"))


def final_stage_note(stages) -> str | None:
    """What a user should know when the pipeline in this version stops short of a video."""
    names = [s.name for s in stages]
    if "export" in names:
        return None
    return f"this version's pipeline ends after stage '{names[-1]}': no video is made yet (see CHANGELOG.md)"


STAGES: tuple[Stage, ...] = (
    Stage("portrait", run_portrait, load_portrait_stage, ("portrait.png",)),
    Stage("speech", run_speech, load_speech, ("audio.wav",)),
)
