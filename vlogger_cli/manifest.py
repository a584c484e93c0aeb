"""Manifest: YAML -> frozen, fully validated job specs.

The whole manifest is validated before any work starts; every problem found is reported (not just
the first), each as one line naming the manifest file, the line, the job, the field and the fix.
Only `yaml.SafeLoader` is used: a manifest cannot construct Python objects.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import yaml

from vlogger_cli.errors import ManifestError

JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOP_LEVEL_KEYS = ("defaults", "jobs")
RENDERERS = ("diffusion", "warp")
RESOLUTIONS = (128, 256, 512)


KINDS = ("render", "edit")
DEFAULT_FPS = 25.0
EDIT_FIELDS = ("video", "keep_lips", "eyes", "expression", "head", "frames")


@dataclass(frozen=True)
class JobSpec:
    """One job, every field resolved (defaults applied, paths absolute).

    Render jobs (`kind: render`, the default) make a video from `portrait` + speech; edit jobs (`kind:
    edit`) change a talking `video` (edit/options.py: keep_lips, eyes, expression, head, frames), with
    optional new speech (`text` / `audio`).
    The defaults are the paper's where it gives one (50 % outpainting overlap) and the demo preset's
    otherwise; each is a constructor argument so a preset or the manifest's `defaults:` can change it.
    """

    id: str
    portrait: Path | None = None  # render jobs
    text: str | None = None
    audio: Path | None = None
    kind: str = "render"          # render | edit
    voice: str = "gmw/en-us"      # espeak-ng voice (text jobs); `espeak-ng --voices` lists them
    rate: int = 170               # words per minute (text jobs)
    seed: int = 0                 # seeds every random choice of the job (motion, video)
    fps: float | None = None      # video frame rate (render: 25; edit: the source video's unless set)
    resolution: int = 256         # output side in pixels (base 128 -> cascaded SR)
    overlap: float = 0.5          # temporal outpainting: fraction of each window conditioned on the last
    steps: int = 25               # diffusion sampling steps
    best_of: int = 1              # motion samples drawn; the best by a ground-truth-free score is kept
    renderer: str = "diffusion"   # diffusion | warp (fast, diffusion-free preview)
    max_audio_seconds: float = 600.0  # longer speech is refused (split it or raise this)
    video: Path | None = None     # edit jobs: the talking video to edit
    keep_lips: bool = False       # edit: mouth pixels and lip motion as filmed
    eyes: str = "source"          # edit: source | closed | open
    expression: str = "source"    # edit: source | neutral | smile | ARKit name=value,...
    head: str = "source"          # edit: source | still | generate
    frames: str | None = None     # edit: "A:B" edits frames A..B-1 only

    def __post_init__(self):
        if self.fps is None and self.kind == "render":
            object.__setattr__(self, "fps", DEFAULT_FPS)

    def config(self) -> dict[str, Any]:
        """The resolved config as plain JSON types (what job.json stores and the hash covers).
        A render job's config has no edit fields (and an edit job's no portrait), so adding edit jobs
        did not change the hash, and the done state, of any render job."""
        out = {}
        for key, value in asdict(self).items():
            if self.kind == "render" and key in EDIT_FIELDS:
                continue
            if self.kind == "edit" and key == "portrait":
                continue
            out[key] = str(value) if isinstance(value, Path) else value
        return out


@dataclass(frozen=True)
class Manifest:
    path: Path
    jobs: tuple[JobSpec, ...] = field(default_factory=tuple)

    def select(self, ids: list[str]) -> tuple[JobSpec, ...]:
        known = {job.id: job for job in self.jobs}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ManifestError(
                f"{self.path}: --jobs names unknown job(s) {', '.join(unknown)}; "
                f"the manifest has: {', '.join(known) or '(none)'}"
            )
        return tuple(known[i] for i in ids)


# ----------------------------------------------------------------------------------------------
# field checkers: each returns the converted value or raises ValueError("what is wrong; the fix")


def _int_in(lo: int, hi: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number from {lo} to {hi}, got {value!r}")
        if not lo <= value <= hi:
            raise ValueError(f"must be from {lo} to {hi}, got {value}")
        return value

    return check


def _float_in(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number from {lo} to {hi}, got {value!r}")
        if value < lo or value > hi or (lo_open and value == lo):
            raise ValueError(f"must be {'above' if lo_open else 'from'} {lo} {'and at most' if lo_open else 'to'} {hi}, got {value}")
        return float(value)

    return check


def _choice(options: tuple) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(map(str, options))}, got {value!r}")
        return value

    return check


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be non-empty text, e.g. text: \"Hello, I'm Ana.\"")
    return value.strip()


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty name, e.g. gmw/en-us (list them with `espeak-ng --voices`)")
    return value.strip()


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _expression(value: Any) -> str:
    from vlogger_cli.edit.options import parse_expression

    return str(parse_expression(value))


def _frames(value: Any) -> str:
    from vlogger_cli.edit.options import format_frames, parse_frames

    if value is None:
        raise ValueError("must be a range A:B of frame numbers, e.g. 30:90")
    return format_frames(parse_frames(value))


FIELD_CHECKS: dict[str, Callable[[Any], Any]] = {
    "kind": _choice(KINDS),
    "keep_lips": _bool,
    "eyes": _choice(("source", "closed", "open")),
    "expression": _expression,
    "head": _choice(("source", "still", "generate")),
    "frames": _frames,
    "text": _text,
    "voice": _name,
    "rate": _int_in(80, 450),
    "seed": _int_in(0, 2**32 - 1),
    "fps": _float_in(1, 60),
    "resolution": _choice(RESOLUTIONS),
    "overlap": _float_in(0.0, 0.9),
    "steps": _int_in(1, 1000),
    "best_of": _int_in(1, 16),
    "renderer": _choice(RENDERERS),
    "max_audio_seconds": _float_in(0.0, 24 * 3600, lo_open=True),
}
PATH_FIELDS = ("portrait", "audio", "video")
JOB_KEYS = {f.name for f in fields(JobSpec)}
DEFAULTABLE_KEYS = JOB_KEYS - {"id"}


# ----------------------------------------------------------------------------------------------


class _Problems:
    """Collects one-line problems; `raise_if_any` reports them all at once."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: list[str] = []

    def add(self, line: int | None, message: str, *, job: str | None = None, key: str | None = None) -> None:
        parts = [f"{self.path}:{line}" if line else str(self.path)]
        subject = " ".join(p for p in (f"job '{job}'" if job else "", f"field '{key}'" if key else "") if p)
        if subject:
            parts.append(subject)
        self.lines.append(": ".join(parts + [message]))

    def raise_if_any(self) -> None:
        if self.lines:
            err = ManifestError(self.lines[0])
            err.problems = list(self.lines)  # type: ignore[attr-defined]
            raise err


def _line(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def _mapping_items(node: yaml.Node, problems: _Problems, job: str | None) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """Key -> (key node, value node) of a YAML mapping; duplicate keys are reported, not silently merged."""
    items: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        key = key_node.value
        if key in items:
            problems.add(_line(key_node), f"'{key}' appears twice; keep one", job=job)
        items[key] = (key_node, value_node)
    return items


def _value(node: yaml.Node) -> Any:
    return yaml.safe_load(yaml.serialize(node))


RAW_TEXT_FIELDS = ("frames",)
"""Fields read as the text written: YAML 1.1 reads an unquoted 30:90 as the base-60 number 1890."""


def _field_value(key: str, node: yaml.Node) -> Any:
    if key in RAW_TEXT_FIELDS and isinstance(node, yaml.ScalarNode) and not node.tag.endswith(":null"):
        return node.value
    return _value(node)


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest; raise `ManifestError` (with `.problems`, one line each) if invalid."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({exc}); save it as UTF-8 text") from None
    problems = _Problems(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        yaml.safe_load(text)  # construct once: refuses tags such as !!python/object up front
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problems.add(line, f"not valid YAML ({getattr(exc, 'problem', None) or exc}); fix the syntax (plain values only, no !!tags)")
        problems.raise_if_any()
    if not isinstance(root, yaml.MappingNode):
        problems.add(_line(root), "a manifest is a mapping with a 'jobs:' list (and optional 'defaults:'); see manifests/demo.yaml")
        problems.raise_if_any()

    top = _mapping_items(root, problems, None)
    for key, (key_node, _) in top.items():
        if key not in TOP_LEVEL_KEYS:
            problems.add(_line(key_node), f"unknown top-level key '{key}'; allowed: {', '.join(TOP_LEVEL_KEYS)}")

    base_dir = path.resolve().parent
    defaults = _parse_defaults(top.get("defaults"), problems, base_dir)

    jobs: list[JobSpec] = []
    if "jobs" not in top:
        problems.add(None, "no 'jobs:' list; add one with at least one job (see manifests/demo.yaml)")
    else:
        jobs_node = top["jobs"][1]
        if not isinstance(jobs_node, yaml.SequenceNode) or not jobs_node.value:
            problems.add(_line(jobs_node), "'jobs' must be a non-empty list of jobs ('- id: ...')")
        else:
            seen: dict[str, int | None] = {}
            for index, job_node in enumerate(jobs_node.value):
                spec = _parse_job(job_node, index, defaults, problems, base_dir, seen)
                if spec is not None:
                    jobs.append(spec)
    problems.raise_if_any()
    return Manifest(path=path, jobs=tuple(jobs))


def _parse_defaults(entry, problems: _Problems, base_dir: Path) -> dict[str, tuple[Any, int | None]]:
    if entry is None:
        return {}
    key_node, node = entry
    if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
        return {}
    if not isinstance(node, yaml.MappingNode):
        problems.add(_line(node), "'defaults' must be a mapping of job fields, e.g. fps: 25")
        return {}
    out: dict[str, tuple[Any, int | None]] = {}
    for key, (k_node, v_node) in _mapping_items(node, problems, None).items():
        if key not in DEFAULTABLE_KEYS:
            problems.add(_line(k_node), f"'defaults' has unknown field '{key}'; allowed: {', '.join(sorted(DEFAULTABLE_KEYS))}")
            continue
        out[key] = (_field_value(key, v_node), _line(v_node))
    return out


def _parse_job(node, index: int, defaults, problems: _Problems, base_dir: Path, seen: dict) -> JobSpec | None:
    label = f"#{index + 1}"
    if not isinstance(node, yaml.MappingNode):
        problems.add(_line(node), f"job {label} must be a mapping like '- id: intro'")
        return None
    items = _mapping_items(node, problems, label)
    job_id = None
    if "id" not in items:
        problems.add(_line(node), f"job {label} has no 'id'; add one, e.g. id: intro")
    else:
        raw = _value(items["id"][1])
        if not isinstance(raw, str) or not JOB_ID_RE.match(raw):
            problems.add(_line(items["id"][1]), f"job {label}: id {raw!r} must be 1-64 of A-Z a-z 0-9 _ - (it names the job's folder)")
        elif raw in seen:
            problems.add(_line(items["id"][1]), f"duplicate job id '{raw}' (first on line {seen[raw]}); ids must be unique")
        else:
            seen[raw] = _line(items["id"][1])
            job_id = raw
    who = job_id or label

    # Defaults first, then the job's own fields: both are checked with the same rules.
    values: dict[str, Any] = {}
    merged = {k: (v, ln, "defaults") for k, (v, ln) in defaults.items()}
    for key, (k_node, v_node) in items.items():
        if key == "id":
            continue
        if key not in JOB_KEYS:
            problems.add(_line(k_node), f"unknown field '{key}'; allowed: {', '.join(sorted(JOB_KEYS))}", job=who)
            continue
        merged[key] = (_field_value(key, v_node), _line(v_node), None)

    ok = True
    for key, (value, line, origin) in merged.items():
        where = " (from defaults)" if origin else ""
        try:
            if key in PATH_FIELDS:
                values[key] = _check_file(value, base_dir, key)
            else:
                values[key] = FIELD_CHECKS[key](value)
        except ValueError as exc:
            problems.add(line, f"{exc}{where}", job=who, key=key)
            ok = False

    kind = values.get("kind", "render")
    has_text, has_audio = "text" in merged, "audio" in merged
    if kind == "edit":
        ok = _check_edit_job(node, items, merged, values, problems, who) and ok
    elif "portrait" not in merged:
        problems.add(_line(node), "no 'portrait'; add the photo's path, e.g. portrait: people/ana.jpg", job=who)
        ok = False
    else:
        for key in EDIT_FIELDS:
            if key in items:
                problems.add(_line(items[key][0]), f"'{key}' only applies to edit jobs; remove it or add kind: edit", job=who)
                ok = False
    if kind == "edit" and has_text and has_audio:
        problems.add(_line(node), "has both 'text' and 'audio'; give at most one for new speech", job=who)
        ok = False
    elif kind != "edit" and has_text == has_audio:
        which = "both 'text' and 'audio'" if has_text else "neither 'text' nor 'audio'"
        problems.add(_line(node), f"has {which}; give exactly one (text: \"...\" to speak, or audio: speech.wav)", job=who)
        ok = False
    if has_audio:
        for key in ("voice", "rate"):
            if key in items:
                problems.add(_line(items[key][0]), f"'{key}' only applies to text jobs; remove it or use text:", job=who)
                ok = False
    if not ok or job_id is None:
        return None
    return JobSpec(id=job_id, **values)


def _check_edit_job(node, items, merged, values, problems: _Problems, who: str) -> bool:
    """An edit job needs a video, no portrait, and at least one edit."""
    ok = True
    if "video" not in merged:
        problems.add(_line(node), "edit job without 'video'; add the clip to edit, e.g. video: clips/talk.mp4", job=who)
        ok = False
    if "portrait" in items:
        problems.add(_line(items["portrait"][0]), "'portrait' only applies to render jobs; edit jobs take 'video'", job=who)
        ok = False
    from vlogger_cli.edit.options import EditOptions, parse_expression, parse_frames

    try:
        options = EditOptions(keep_lips=values.get("keep_lips", False), eyes=values.get("eyes", "source"),
                              expression=parse_expression(values.get("expression", "source")),
                              head=values.get("head", "source"), frames=parse_frames(values.get("frames")),
                              new_speech="text" in merged or "audio" in merged)
    except ValueError:
        return False  # the field itself was reported above
    if ok and not options.edits_anything:
        problems.add(_line(node), "edit job changes nothing; set eyes, expression, head, or text/audio "
                                  "(keep_lips alone keeps what is already there)", job=who)
        ok = False
    return ok


def _check_file(value: Any, base_dir: Path, key: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a file path, got {value!r}")
    path = Path(value).expanduser()
    resolved = path if path.is_absolute() else base_dir / path
    if not resolved.exists():
        raise ValueError(
            f"file not found: {value} (looked at {resolved}); fix the path — relative paths start at the manifest's folder"
        )
    if not resolved.is_file():
        raise ValueError(f"{value} is not a file ({resolved}); point '{key}' at a file")
    return resolved.resolve()
