"""The input stages: the portrait photo and the speech."""

from __future__ import annotations

from vlogger_cli.io import TMP_MARKER
from vlogger_cli.pipeline.base import Stage, StageContext


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
    ctx.results.features = compute_features(waveform, spec.fps)


def load_speech(ctx: StageContext) -> None:
    from vlogger_cli.audio import compute_features, load_audio

    waveform = load_audio(ctx.job.path("audio.wav"), max_seconds=ctx.spec.max_audio_seconds)
    ctx.results.features = compute_features(waveform, ctx.spec.fps)


# ---------------------------------------------------------------------------------------------- portrait


def run_portrait(ctx: StageContext) -> None:
    """Read the photo once (EXIF rotation, RGBA, greyscale, huge sizes) into the upright RGB
    reference every later stage uses, saved as `portrait.png`."""
    from PIL import Image

    from vlogger_cli.body.portrait import load_portrait
    from vlogger_cli.io import atomic_path

    image = load_portrait(ctx.spec.portrait)
    with atomic_path(ctx.job.path("portrait.png")) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    ctx.log.info("portrait: %s -> %dx%d", ctx.spec.portrait, image.shape[1], image.shape[0])
    ctx.results.portrait = image


def load_portrait_stage(ctx: StageContext) -> None:
    import numpy as np
    from PIL import Image

    with Image.open(ctx.job.path("portrait.png")) as img:
        ctx.results.portrait = np.asarray(img.convert("RGB"))


PORTRAIT = Stage("portrait", run_portrait, load_portrait_stage, ("portrait.png",))
SPEECH = Stage("speech", run_speech, load_speech, ("audio.wav",))
