"""Text to speech, offline: pyttsx3 driving the espeak-ng library, with the voice and rate verified.

pyttsx3 2.99's espeak driver has traps (ENVIRONMENT.md, "Audio and speech"), all measured here:
  1. `runAndWait()` ends its loop with `espeak_Cancel()` whenever espeak's command queue is still
     busy. Cancel drops queued `SetParameter(rate)` commands and restores the parameters saved at
     the previous synthesis, so 1-5 % of syntheses silently come out at the driver's default
     200 wpm (also after `getProperty('voices')`, the bug ENVIRONMENT.md reports), and the first
     synthesis in a process is sometimes silent (the saved volume is still 0).
     We let espeak's queue drain, apply voice, rate and volume to an idle engine, let the queue
     drain again, and only then synthesise, so Cancel never fires.
  2. In the driver's usual flow `runAndWait()` returns before the WAV is written (synthesis runs
     on espeak's own thread); we also wait for the "finished-utterance" notification.
`pyttsx3.init()` would also hand back a cached engine; every call here builds a fresh `Engine`.

Verification ("voice and rate honoured and checked"):
  * voice: after synthesis, espeak's current voice must be the requested identifier.
  * rate: the duration is compared with the same text rendered by the `espeak-ng` command line,
    which sets its parameters synchronously. Both use the same engine, so the lengths agree within
    ~1 % (measured: 8 texts, 4 languages, 80-450 wpm). A word-count estimate of words per minute
    was measured too and rejected: it varies 0.7-2.4x across ordinary texts (numbers, long
    words), too loose to notice 170 wpm coming out at 200. The tolerance here (6 % + 0.15 s for
    the end pause; the worst case measured was 2 %) catches 170 wpm coming out at 200 in any text
    over ~3 s, and 120 or 260 wpm coming out at 200 in any text over ~1 s.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import soundfile as sf

from vlogger_cli.audio.load import SILENCE_PEAK_DBFS
from vlogger_cli.errors import JobError
from vlogger_cli.io import atomic_path

MIN_RATE, MAX_RATE = 80, 450
"""espeak-ng's documented speed range in words per minute."""
DURATION_TOLERANCE = (0.06, 0.15)
"""(relative, seconds) allowed between our synthesis and the espeak-ng CLI reference."""
SYNTH_TIMEOUT_S = 120.0
"""espeak renders ~1,000x real time here; this only guards against a lost completion event."""
ATTEMPTS = 2
"""A failed check is retried once with a fresh engine before the job fails."""
SILENCE_PEAK = 10 ** (SILENCE_PEAK_DBFS / 20)
"""the loader's silence floor as a linear peak: speech quieter than this would be rejected later."""

_INSTALL_HINT = "install it with `apt-get install espeak-ng`"
# espeak-ng keeps one global state per process (voice, rate, synth callback): one synthesis at a time.
_ENGINE_LOCK = threading.Lock()


def list_voices() -> list[str]:
    """espeak-ng voice identifiers (as `espeak-ng --voices` lists them, lower-case): 'gmw/en-us', ..."""
    return [voice.identifier for voice in _voice_table(_espeak_exe())]


def synthesize_speech(
    text: str, out_path: str | os.PathLike, *, voice: str = "gmw/en-us", rate: int = 170
) -> Path:
    """Speak `text` with espeak-ng into a WAV at `out_path` (16-bit mono, 22,050 Hz), atomically.

    voice: an espeak-ng identifier ('gmw/en-us', 'roa/fr'), a language code ('en-us', 'de') or a
        voice name ('German'); see `list_voices()` or `espeak-ng --voices`.
    rate: words per minute, 80-450.
    Raises `JobError` for empty text, an unknown voice, a rate out of range, a missing espeak-ng,
    or synthesis whose voice or rate cannot be verified.
    """
    if not text or not text.strip():
        raise JobError("TTS text is empty: give the text to speak in the manifest")
    whole = isinstance(rate, (int, np.integer)) and not isinstance(rate, bool)
    if not whole or not MIN_RATE <= rate <= MAX_RATE:
        raise JobError(
            f"TTS rate {rate!r} is out of range: use a whole number of words per minute, "
            f"{MIN_RATE}-{MAX_RATE}"
        )
    exe = _espeak_exe()
    identifier = resolve_voice(voice)
    text = text.strip()
    out_path = Path(out_path)

    reference_s, reference_peak = _reference(exe, text, identifier, int(rate))
    if reference_peak < SILENCE_PEAK:
        raise JobError(f"TTS text {text[:40]!r} has nothing to speak: give text with words in it")
    problem = ""
    for _ in range(ATTEMPTS):
        try:
            with atomic_path(out_path, suffix=".wav") as tmp:
                used_voice = _synthesize_with_pyttsx3(text, tmp, identifier, int(rate))
                audio, sample_rate = sf.read(str(tmp), dtype="float32")
                problem = _check(audio, sample_rate, used_voice, identifier, reference_s, int(rate))
                if problem:
                    raise _Rejected(problem)  # leaving atomic_path by an exception discards the file
            return out_path
        except _Rejected:
            continue
    raise JobError(
        f"TTS output for {out_path} failed its check {ATTEMPTS} times ({problem}): "
        f"a pyttsx3/espeak-ng fault; retry the job, or report it"
    )


def resolve_voice(voice: str) -> str:
    """Map an identifier, language code or voice name to an espeak-ng identifier, or raise `JobError`."""
    wanted = str(voice).strip().lower()
    table = _voice_table(_espeak_exe())
    for match in (
        lambda v: v.identifier == wanted,
        lambda v: v.language == wanted,
        lambda v: wanted in v.other_languages,
        lambda v: v.name.lower() == wanted,
    ):
        # The CLI lists voices sorted by language; for a language the lowest priority number wins.
        hits = sorted((v for v in table if match(v)), key=lambda v: v.priority)
        if hits:
            return hits[0].identifier
    raise JobError(
        f"unknown TTS voice {voice!r}: use an espeak-ng voice such as 'gmw/en-us' or a language "
        f"code such as 'en-us'; list them with `espeak-ng --voices`"
    )


class _Rejected(Exception):
    """Internal: a synthesis that failed `_check`; raised inside `atomic_path` to discard it."""


class _Voice:
    __slots__ = ("priority", "language", "name", "identifier", "other_languages")

    def __init__(self, priority: int, language: str, name: str, identifier: str, other: tuple[str, ...]):
        self.priority, self.language, self.name = priority, language, name
        self.identifier, self.other_languages = identifier, other


def _espeak_exe() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise JobError(f"espeak-ng is not installed, so text cannot be spoken: {_INSTALL_HINT}")
    return exe


@functools.lru_cache(maxsize=4)
def _voice_table(exe: str) -> tuple[_Voice, ...]:
    """Parse `espeak-ng --voices`: 'Pty Language Age/Gender VoiceName File Other Languages'.

    The command line is used instead of pyttsx3's getProperty('voices') because listing voices
    through the library is what upsets a later rate setting (module docstring).
    """
    proc = subprocess.run([exe, "--voices"], capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise JobError(f"`espeak-ng --voices` failed ({proc.stderr.strip()[:200]}): reinstall espeak-ng")
    voices = []
    for line in proc.stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 5 or not parts[0].isdigit():
            continue
        # "Other Languages" reads "(zh-cmn 5)(zh 5)": alias codes with their priorities.
        tokens = " ".join(parts[5:]).replace("(", " ").replace(")", " ").split()
        other = tuple(tok.lower() for tok in tokens if not tok.isdigit())
        voices.append(_Voice(int(parts[0]), parts[1].lower(), parts[3], parts[4].lower(), other))
    if not voices:
        raise JobError(f"espeak-ng lists no voices: reinstall espeak-ng ({_INSTALL_HINT})")
    return tuple(voices)


def _reference(exe: str, text: str, identifier: str, rate: int) -> tuple[float, float]:
    """(duration in s, peak) of `text` rendered by the espeak-ng CLI with the same voice and rate."""
    proc = subprocess.run(
        [exe, "-v", identifier, "-s", str(rate), "--stdout", "--", text],
        capture_output=True,
        timeout=SYNTH_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout:
        reason = proc.stderr.decode(errors="replace").strip()[:200]
        raise JobError(f"espeak-ng failed on voice {identifier!r} ({reason}): reinstall espeak-ng")
    # The WAV header on stdout carries a placeholder length; libsndfile counts the real samples.
    samples, sample_rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    return samples.shape[0] / sample_rate, peak


def _synthesize_with_pyttsx3(text: str, wav_path: Path, identifier: str, rate: int) -> str:
    """Render `text` into `wav_path` in a child process; returns the voice espeak used.

    espeak-ng keeps global state between utterances in a process (measured: the same sentence came
    out a few samples longer after a German sentence had been spoken), so the same job gave
    different audio depending on what the process had said before. A fresh process per utterance
    (about 0.2 s) makes speech a pure function of (text, voice, rate): re-runs, resumed runs and
    Ray workers produce bit-identical audio.
    """
    import json
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "vlogger_cli.audio.tts", identifier, str(rate), str(wav_path)],
        input=text, capture_output=True, text=True, timeout=SYNTH_TIMEOUT_S + 30,
    )
    lines = proc.stdout.strip().splitlines()
    try:
        reply = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise JobError(f"espeak-ng synthesis crashed ({proc.stderr.strip()[-200:] or proc.returncode}); retry the job") from None
    if "error" in reply:
        raise JobError(reply["error"])
    return reply["voice"]


def _child_main(argv: list[str]) -> None:
    """`python -m vlogger_cli.audio.tts IDENTIFIER RATE WAV` with the text on stdin (see above)."""
    import json
    import sys

    identifier, rate, wav_path = argv[0], int(argv[1]), Path(argv[2])
    try:
        voice = _synthesize_in_process(sys.stdin.read(), wav_path, identifier, rate)
        print(json.dumps({"voice": voice}))
    except JobError as err:
        print(json.dumps({"error": str(err)}))


def _synthesize_in_process(text: str, wav_path: Path, identifier: str, rate: int) -> str:
    """Render `text` into `wav_path` with a fresh pyttsx3 engine; returns the voice espeak used."""
    try:
        from pyttsx3.drivers import _espeak  # loads libespeak-ng.so.1
        from pyttsx3.engine import Engine
    except (ImportError, OSError, RuntimeError) as err:
        raise JobError(
            f"the espeak-ng library could not be loaded ({err}): {_INSTALL_HINT} and pip install pyttsx3"
        ) from err

    finished = threading.Event()
    errors: list[BaseException] = []
    with _ENGINE_LOCK:
        # Not pyttsx3.init(): it returns a cached engine with whatever voice and rate it last had.
        engine = Engine("espeak")
        try:
            # The driver's constructor queues its defaults (voice, rate 200, volume) on espeak's
            # thread. If runAndWait finds them still queued it calls espeak_Cancel, which resets
            # every parameter to the values saved at the last synthesis: all zeros in a fresh
            # process, i.e. volume 0 and a silent file. Wait for the queue to drain first.
            _espeak.Synchronize()
            engine.connect("finished-utterance", lambda name, completed: finished.set())
            engine.connect("error", lambda name, exception: errors.append(exception))
            # The driver prints "Audio saved to ..." from espeak's thread; keep the CLI's stdout clean.
            with contextlib.redirect_stdout(io.StringIO()):
                engine.runAndWait()  # an empty run leaves the proxy idle, so setProperty applies at once
                engine.setProperty("voice", identifier)
                engine.setProperty("rate", rate)
                engine.setProperty("volume", 1.0)  # explicitly: a Cancel elsewhere may have zeroed it
                _espeak.Synchronize()  # let espeak's queue apply the rate before runAndWait can cancel it
                engine.save_to_file(text, str(wav_path))
                engine.runAndWait()
                done = finished.wait(SYNTH_TIMEOUT_S)
            used_voice = str(engine.getProperty("voice") or "")
        finally:
            # Drop the engine while we hold the lock: its destructor clears espeak's global synth
            # callback, which must not happen in the middle of another thread's synthesis.
            del engine
    if errors:
        raise JobError(
            f"espeak-ng failed with voice {identifier!r}: {errors[0]}; check the voice with `espeak-ng --voices`"
        )
    if not done:
        raise JobError(f"espeak-ng did not finish within {SYNTH_TIMEOUT_S:g} s: shorten the text or retry")
    return used_voice


def _check(
    audio: np.ndarray, sample_rate: int, used_voice: str, identifier: str, reference_s: float, rate: int
) -> str:
    """'' when the synthesis is what was asked for, else a short description of what is wrong."""
    if audio.size == 0 or float(np.max(np.abs(audio))) < SILENCE_PEAK:
        # The CLI spoke this text (checked first), so silence here is the engine's fault.
        return "the engine produced silence"
    seconds = audio.shape[0] / sample_rate
    if used_voice.lower() != identifier:
        return f"voice {used_voice!r} was used instead of {identifier!r}"
    relative, absolute = DURATION_TOLERANCE
    if abs(seconds - reference_s) > relative * reference_s + absolute:
        return (
            f"{seconds:.2f} s of speech where {reference_s:.2f} s is expected at {rate} wpm: "
            f"the rate was not applied"
        )
    return ""


if __name__ == "__main__":
    import sys

    _child_main(sys.argv[1:])
