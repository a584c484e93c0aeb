"""Manifest validation: every problem reported on one line with file, line, job, field and fix."""

from pathlib import Path

import pytest

from vlogger_cli.errors import ManifestError
from vlogger_cli.manifest import JobSpec, load_manifest


@pytest.fixture
def media(tmp_path: Path) -> Path:
    (tmp_path / "ana.jpg").write_bytes(b"not checked here")
    (tmp_path / "talk.wav").write_bytes(b"not checked here")
    (tmp_path / "talk.mp4").write_bytes(b"not checked here")
    return tmp_path


def write(folder: Path, text: str) -> Path:
    path = folder / "m.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    return info.value.problems


def test_valid_manifest_resolves_defaults_and_paths(media):
    path = write(media, """
defaults:
  fps: 30
  seed: 3
jobs:
  - id: intro
    portrait: ana.jpg
    text: "Hello there."
    rate: 150
  - id: talk
    portrait: ana.jpg
    audio: talk.wav
    seed: 9
""")
    manifest = load_manifest(path)
    intro, talk = manifest.jobs
    assert intro == JobSpec(id="intro", portrait=(media / "ana.jpg").resolve(), text="Hello there.", rate=150, fps=30.0, seed=3)
    assert talk.audio == (media / "talk.wav").resolve() and talk.text is None
    assert talk.seed == 9 and talk.fps == 30.0
    assert talk.overlap == 0.5 and talk.renderer == "diffusion"
    assert manifest.select(["talk"]) == (talk,)


def test_paths_resolve_against_manifest_folder_not_cwd(media, tmp_path, monkeypatch):
    sub = media / "sub"
    sub.mkdir()
    (sub / "p.png").write_bytes(b"x")
    path = write(media, "jobs:\n  - id: a\n    portrait: sub/p.png\n    text: hi\n")
    monkeypatch.chdir(sub)
    assert load_manifest(path).jobs[0].portrait == (sub / "p.png").resolve()


def test_errors_name_file_line_job_field_and_fix(media):
    path = write(media, """jobs:
  - id: intro
    portrait: missing.jpg
    text: hi
    colour: red
  - id: intro
    portrait: ana.jpg
    text: hi
    audio: talk.wav
  - id: third
    portrait: ana.jpg
  - id: fourth
    portrait: ana.jpg
    text: hi
    rate: 5000
    resolution: 300
""")
    lines = problems(path)
    text = "\n".join(lines)
    assert f"{path}:3: job 'intro' field 'portrait': file not found: missing.jpg" in text
    assert "relative paths start at the manifest's folder" in text
    assert f"{path}:5: job 'intro': unknown field 'colour'" in text
    assert "duplicate job id 'intro' (first on line 2)" in text
    assert "has both 'text' and 'audio'" in text
    assert "job 'third': has neither 'text' nor 'audio'" in text
    assert f"{path}:15: job 'fourth' field 'rate': must be from 80 to 450, got 5000" in text
    assert "field 'resolution': must be one of 128, 256, 512, got 300" in text
    assert all("\n" not in line for line in lines)


@pytest.mark.parametrize(
    "body, expected",
    [
        ("jobs: []\n", "'jobs' must be a non-empty list"),
        ("defaults: {fps: 25}\n", "no 'jobs:' list"),
        ("jobs:\n  - id: a\n    portrait: ana.jpg\n    text: hi\nextra: 1\n", "unknown top-level key 'extra'"),
        ("jobs:\n  - id: 'bad id!'\n    portrait: ana.jpg\n    text: hi\n", "must be 1-64 of A-Z a-z 0-9 _ -"),
        ("jobs:\n  - id: ../up\n    portrait: ana.jpg\n    text: hi\n", "must be 1-64 of"),
        ("jobs:\n  - id: a\n    portrait: ana.jpg\n    text: hi\n    text: again\n", "'text' appears twice"),
        ("jobs:\n  - id: a\n    portrait: ana.jpg\n    audio: talk.wav\n    voice: de\n", "'voice' only applies to text jobs"),
        ("jobs:\n  - id: a\n    portrait: ana.jpg\n    text: '  '\n", "must be non-empty text"),
        ("jobs:\n  - id: a\n    portrait: .\n    text: hi\n", "is not a file"),
        ("jobs:\n  - id: a\n    portrait: ana.jpg\n    text: hi\n    kind: edit\n", "edit job without 'video'"),
        ("jobs:\n  - id: a\n    portrait: ana.jpg\n    text: hi\n    kind: edit\n", "'portrait' only applies to render jobs"),
        ("jobs:\n  - id: a\n    portrait: ana.jpg\n    text: hi\n    eyes: closed\n", "only applies to edit jobs"),
        ("jobs:\n  - id: a\n    kind: edit\n    video: talk.mp4\n", "changes nothing"),
        ("jobs:\n  - id: a\n    kind: edit\n    video: talk.mp4\n    keep_lips: true\n", "changes nothing"),
        ("jobs:\n  - id: a\n    kind: edit\n    video: talk.mp4\n    eyes: shut\n", "must be one of source, closed, open"),
        ("jobs:\n  - id: a\n    kind: edit\n    video: talk.mp4\n    keep_lips: yes please\n", "must be true or false"),
        ("jobs:\n  - id: a\n    kind: edit\n    video: talk.mp4\n    expression: grin\n", "not name=value"),
        ("jobs:\n  - id: a\n    kind: edit\n    video: talk.mp4\n    eyes: closed\n    frames: 9:3\n", "need 0 <= A < B"),
        ("jobs:\n  - id: a\n    kind: edit\n    video: talk.mp4\n    eyes: closed\n    text: hi\n    audio: talk.wav\n",
         "give at most one"),
        ("jobs:\n  - id: a\n    kind: cut\n    video: talk.mp4\n", "must be one of render, edit"),
        ("defaults:\n  fps: 0\njobs:\n  - id: a\n    portrait: ana.jpg\n    text: hi\n", "(from defaults)"),
        ("defaults:\n  id: x\njobs:\n  - id: a\n    portrait: ana.jpg\n    text: hi\n", "'defaults' has unknown field 'id'"),
        ("jobs: [\n", "not valid YAML"),
        ("- just a list\n", "a manifest is a mapping"),
        ("jobs:\n  - id: a\n    portrait: ana.jpg\n    text: hi\n    steps: true\n", "must be a whole number"),
    ],
)
def test_invalid_manifests(media, body, expected):
    assert any(expected in line for line in problems(write(media, body)))


def test_safe_load_refuses_python_objects(media):
    path = write(media, "jobs:\n  - id: a\n    portrait: ana.jpg\n    text: !!python/object/apply:os.system ['echo hacked']\n")
    assert any("not valid YAML" in line for line in problems(path))


def test_missing_manifest_and_unknown_selection(media):
    with pytest.raises(ManifestError, match="manifest not found"):
        load_manifest(media / "nope.yaml")
    manifest = load_manifest(write(media, "jobs:\n  - id: a\n    portrait: ana.jpg\n    text: hi\n"))
    with pytest.raises(ManifestError, match="unknown job"):
        manifest.select(["a", "zzz"])


def test_demo_manifest_is_valid():
    root = Path(__file__).resolve().parent.parent
    manifest = load_manifest(root / "manifests" / "demo.yaml")
    kinds = {("text" if j.text else "audio") for j in manifest.jobs}
    assert kinds == {"text", "audio"}


def test_edit_jobs(media):
    from vlogger_cli.jobs.store import config_hash

    path = write(media, """
defaults:
  seed: 3
jobs:
  - id: dub
    kind: edit
    video: talk.mp4
    keep_lips: true
    eyes: closed
    expression: "browInnerUp=0.5, mouthSmileLeft=0.2"
    frames: "10:"
  - id: redub
    kind: edit
    video: talk.mp4
    text: "New words."
    head: generate
  - id: intro
    portrait: ana.jpg
    text: "Hi."
""")
    dub, redub, intro = load_manifest(path).jobs
    assert dub.kind == "edit" and dub.video == (media / "talk.mp4").resolve() and dub.portrait is None
    assert dub.keep_lips and dub.eyes == "closed" and dub.frames == "10:" and dub.fps is None
    assert dub.expression == "browInnerUp=0.5,mouthSmileLeft=0.2" and dub.seed == 3
    assert redub.text == "New words." and redub.head == "generate" and redub.eyes == "source"
    assert intro.fps == 25.0 and "eyes" not in intro.config() and "portrait" not in dub.config()
    # the video's content is part of the hash: a replaced clip redoes the edit
    before = config_hash(dub)
    (media / "talk.mp4").write_bytes(b"another clip")
    assert config_hash(dub) != before


def test_render_job_hash_has_no_edit_fields(media):
    """Adding edit jobs must not change the hash (and done state) of render jobs made before."""
    spec = JobSpec(id="a", portrait=media / "ana.jpg", text="hi")
    assert set(spec.config()) == {"id", "portrait", "text", "audio", "kind", "voice", "rate", "seed", "fps",
                                  "resolution", "overlap", "steps", "best_of", "renderer", "max_audio_seconds"}
