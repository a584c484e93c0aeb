"""The edit options of `vlogger edit` and of `kind: edit` manifest jobs, parsed and checked once.

Each parser returns the normalised value or raises ValueError("what is wrong; the fix"), the form the
manifest's field checks use, so the command line and the manifest give the same one-line errors.

| option | values | changes |
| --- | --- | --- |
| `keep_lips` | bool | mouth pixels and lip/jaw motion stay as filmed |
| `eyes` | source, closed, open | eyeBlink* (and the lid closure channel) |
| `expression` | source, neutral, smile, or `name=value,...` (ARKit names, 0..1) | the face's expression channels |
| `head` | source, still, generate | head/body rotations (still: the reference frame's; generate: stage 1) |
| `frames` | `A:B` (frame numbers, B exclusive; either side may be empty) | only that range is edited |
"""

from __future__ import annotations

from dataclasses import dataclass

from vlogger_cli.motion.representation import ARKIT_NAMES

EYES = ("source", "closed", "open")
HEADS = ("source", "still", "generate")
EXPRESSION_PRESETS = ("source", "neutral", "smile")

# ARKit channel groups. MOUTH is what `keep_lips` keeps from the source; EYE_LIDS is what `eyes` sets;
# GAZE is never changed by an expression edit (where the person looks is not an expression).
MOUTH = tuple(n for n in ARKIT_NAMES if n.startswith(("jaw", "mouth")) or n in ("cheekPuff", "tongueOut"))
EYE_LIDS = ("eyeBlinkLeft", "eyeBlinkRight")
GAZE = tuple(n for n in ARKIT_NAMES if n.startswith("eyeLook"))
SMILE = {"mouthSmileLeft": 0.7, "mouthSmileRight": 0.7, "cheekSquintLeft": 0.35, "cheekSquintRight": 0.35,
         "eyeSquintLeft": 0.2, "eyeSquintRight": 0.2}
"""`--expression smile`: a moderate Duchenne smile (mouth corners, cheeks, a little eye squint)."""


@dataclass(frozen=True)
class Expression:
    """An expression edit: `preset` (source | neutral | smile | set) and, for `set`, {ARKit name: value}."""

    preset: str = "source"
    values: tuple[tuple[str, float], ...] = ()

    @property
    def is_edit(self) -> bool:
        return self.preset != "source"

    def targets(self) -> dict[str, float]:
        """{ARKit name: value} that the edit sets (neutral: every channel but gaze and lids to 0)."""
        if self.preset == "set":
            return dict(self.values)
        if self.preset == "source":
            return {}
        out = {n: 0.0 for n in ARKIT_NAMES if n not in GAZE and n not in EYE_LIDS}
        if self.preset == "smile":
            out.update(SMILE)
        return out

    def __str__(self) -> str:
        return self.preset if self.preset != "set" else ",".join(f"{k}={v:g}" for k, v in self.values)


def parse_expression(value) -> Expression:
    if isinstance(value, Expression):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be source, neutral, smile or ARKit name=value pairs, e.g. 'browInnerUp=0.6,mouthSmileLeft=0.3'")
    text = value.strip()
    if text in EXPRESSION_PRESETS:
        return Expression(text)
    pairs: dict[str, float] = {}
    for item in text.split(","):
        name, sep, number = (part.strip() for part in item.partition("="))
        if not sep:
            raise ValueError(f"'{item.strip()}' is not name=value; use source, neutral, smile or e.g. browInnerUp=0.6")
        if name not in ARKIT_NAMES:
            close = [n for n in ARKIT_NAMES if n.lower() == name.lower()]
            hint = f" (did you mean {close[0]}?)" if close else " (ARKit names such as browInnerUp, mouthSmileLeft, jawOpen)"
            raise ValueError(f"unknown expression '{name}'{hint}")
        try:
            amount = float(number)
        except ValueError:
            raise ValueError(f"{name}={number!r}: the value must be a number from 0 to 1") from None
        if not 0.0 <= amount <= 1.0:
            raise ValueError(f"{name}={amount:g}: the value must be from 0 to 1")
        pairs[name] = amount
    return Expression("set", tuple(sorted(pairs.items())))


def parse_frames(value) -> tuple[int, int | None] | None:
    """'A:B' -> (A, B) frame range (B exclusive, None = to the end); None/'' -> None (all frames)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (tuple, list)) and len(value) == 2:
        first, last = value
    elif isinstance(value, str) and value.count(":") == 1:
        a, b = (s.strip() for s in value.split(":"))
        try:
            first = int(a) if a else 0
            last = int(b) if b else None
        except ValueError:
            raise ValueError(f"{value!r}: frame numbers must be whole numbers, e.g. 30:90") from None
    else:
        raise ValueError(f"{value!r} is not a range A:B of frame numbers (B exclusive), e.g. 30:90 or 30:")
    if first < 0 or (last is not None and last <= first):
        raise ValueError(f"{value!r}: need 0 <= A < B, e.g. 30:90")
    return int(first), None if last is None else int(last)


def format_frames(frames: tuple[int, int | None] | None) -> str | None:
    if frames is None:
        return None
    return f"{frames[0]}:{'' if frames[1] is None else frames[1]}"


@dataclass(frozen=True)
class EditOptions:
    keep_lips: bool = False
    eyes: str = "source"
    expression: Expression = Expression()
    head: str = "source"
    frames: tuple[int, int | None] | None = None
    new_speech: bool = False   # --audio / --text: the lips (unless kept) and a generated head follow it

    def __post_init__(self):
        if self.eyes not in EYES:
            raise ValueError(f"eyes must be one of {', '.join(EYES)}, got {self.eyes!r}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")

    @property
    def edits_anything(self) -> bool:
        return (self.eyes != "source" or self.expression.is_edit or self.head != "source"
                or self.new_speech)

    def frame_range(self, num_frames: int) -> tuple[int, int]:
        """The edited frames [first, last) clipped to the video."""
        if self.frames is None:
            return 0, num_frames
        first, last = self.frames
        return min(first, num_frames), num_frames if last is None else min(last, num_frames)

    @classmethod
    def from_spec(cls, spec) -> "EditOptions":
        return cls(keep_lips=spec.keep_lips, eyes=spec.eyes, expression=parse_expression(spec.expression),
                   head=spec.head, frames=parse_frames(spec.frames),
                   new_speech=spec.text is not None or spec.audio is not None)
