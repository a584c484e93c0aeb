"""libespeak-ng through ctypes: speech PCM plus the time of every phoneme and word.

The `espeak-ng` command line gives no phoneme timings without mbrola voices; the C library does
(ENVIRONMENT.md "Audio and speech"). We initialise it once per process in synchronous mode with
phoneme events and IPA phoneme names, collect PCM and events in the synth callback, and hand back
plain Python values. The library keeps global state, so every call holds one process-wide lock.

Only the synthetic motion corpus uses this module; jobs speak through pyttsx3 (vlogger_cli.audio).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass, field

import numpy as np

from vlogger_cli.errors import JobError

# espeak_AUDIO_OUTPUT / options / events / parameters, from speak_lib.h (espeak-ng 1.51).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_EVENT_WORD = 1
_EVENT_SENTENCE = 2
_EVENT_END = 5
_EVENT_PHONEME = 7
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms from the start of this synthesis
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class PhonemeEvent:
    time: float  # seconds from the start of the utterance
    phoneme: str  # IPA as espeak-ng spells it (may hold stress marks ˈ ˌ and length ː)


@dataclass(frozen=True)
class WordEvent:
    time: float  # seconds
    text_position: int  # 1-based character position in the input text
    length: int  # characters


@dataclass
class Utterance:
    """One synthesised text: PCM at `sample_rate` and the timed events espeak-ng reported."""

    pcm: np.ndarray  # (S,) float32 in [-1, 1]
    sample_rate: int
    phonemes: list[PhonemeEvent] = field(default_factory=list)
    words: list[WordEvent] = field(default_factory=list)
    voice: str = ""

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate


class _Engine:
    """The process-wide libespeak-ng instance (lazily loaded)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError as err:
            raise JobError(f"libespeak-ng not found ({err}); install it with: apt-get install espeak-ng") from err
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        self.sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA
        )
        if self.sample_rate <= 0:
            raise JobError("libespeak-ng failed to initialise; check that espeak-ng-data is installed")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, bytes]] = []
        self._callback = _CALLBACK(self._on_synth)  # keep a reference: ctypes does not
        lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()

    def _on_synth(self, wav, n, events) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != 0:  # espeakEVENT_LIST_TERMINATED
            ev = events[i]
            raw = bytes(ev.id.string).split(b"\0", 1)[0] if ev.type == _EVENT_PHONEME else b""
            self._events.append((ev.type, ev.audio_position, ev.text_position, ev.length, raw))
            i += 1
        return 0  # 0 = continue synthesis

    def synth(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int) -> Utterance:
        lib = self.lib
        with self.lock:
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise JobError(f"espeak-ng voice {voice!r} not found; list voices with: espeak-ng --voices")
            lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
            lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
            lib.espeak_SetParameter(_PARAM_RANGE, int(pitch_range), 0)
            lib.espeak_SetParameter(_PARAM_VOLUME, 100, 0)
            self._chunks, self._events = [], []
            data = text.encode("utf-8") + b"\0"
            buf = ctypes.create_string_buffer(data)
            lib.espeak_Synth(buf, len(data), 0, 0, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
            lib.espeak_Synchronize()
            chunks, events = self._chunks, self._events
        pcm = (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)).astype(np.float32) / 32768.0
        phonemes = [
            PhonemeEvent(pos / 1000.0, raw.decode("utf-8", "replace"))
            for kind, pos, _tp, _ln, raw in events
            if kind == _EVENT_PHONEME
        ]
        words = [WordEvent(pos / 1000.0, tp, ln) for kind, pos, tp, ln, _ in events if kind == _EVENT_WORD]
        return Utterance(pcm, self.sample_rate, phonemes, words, voice)


_ENGINE: _Engine | None = None
_ENGINE_LOCK = threading.Lock()


def _engine() -> _Engine:
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _Engine()
        return _ENGINE


def synthesize(text: str, voice: str = "en-us", *, rate: int = 170, pitch: int = 50, pitch_range: int = 50) -> Utterance:
    """Speak `text` with libespeak-ng; return PCM (its native rate, 22,050 Hz) and timed events.

    voice: an espeak-ng voice name or file (`en-us`, `gmw/de`, `en-us+f3` for a variant).
    rate: words per minute (80-450). pitch, pitch_range: 0-100 (50 = the voice's default).
    """
    return _engine().synth(text, voice, rate, pitch, pitch_range)
