"""`vlogger render` end to end with the real stages (real TTS speech, real files)."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from vlogger_cli.cli import main

ROOT = Path(__file__).resolve().parents[2]
PORTRAIT = ROOT / "manifests" / "media" / "astronaut.jpg"

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture
def input_stages(monkeypatch):
    """The CLI's bookkeeping (exit codes, skip/redo, selection, reports) does not depend on how many
    stages there are: run only the input stages here; tests/pipeline runs the whole pipeline."""
    from vlogger_cli import pipeline

    monkeypatch.setattr(pipeline, "STAGES", pipeline.STAGES[:2])


@pytest.fixture
def workspace(tmp_path, input_stages):
    shutil.copy(PORTRAIT, tmp_path / "face.jpg")
    # Real speech for the audio job: espeak-ng's own voice, as 24-bit 44.1 kHz stereo.
    subprocess.run(["espeak-ng", "-v", "de", "-w", str(tmp_path / "raw.wav"), "Guten Tag, wie geht es dir heute?"], check=True)
    speech, rate = sf.read(tmp_path / "raw.wav")
    sf.write(tmp_path / "talk.wav", np.stack([speech, speech], 1), rate, subtype="PCM_24")
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00this is not audio at all")
    return tmp_path


def manifest(folder: Path, jobs: str) -> Path:
    path = folder / "m.yaml"
    path.write_text("defaults:\n  fps: 25\njobs:\n" + jobs)
    return path


GOOD_AND_BAD = """
  - id: spoken
    portrait: face.jpg
    text: "Hello, this is a test of the speech stage."
    rate: 160
  - id: broken
    portrait: face.jpg
    audio: broken.wav
  - id: recorded
    portrait: face.jpg
    audio: talk.wav
"""


def test_one_bad_job_fails_alone_and_rerun_skips_done(workspace):
    out = workspace / "out"
    result = CliRunner().invoke(main, ["render", str(manifest(workspace, GOOD_AND_BAD)), "-o", str(out)])
    assert result.exit_code == 1, result.output
    failed = [l for l in result.stdout.splitlines() if l.startswith("FAILED")]
    assert len(failed) == 1 and "broken" in failed[0] and "broken.wav" in failed[0]

    for job_id in ("spoken", "recorded"):
        state = json.loads((out / job_id / "job.json").read_text())
        assert state["state"] == "done"
        assert list(state["stages"]) == state["pipeline"] and state["pipeline"][:2] == ["portrait", "speech"]
        assert state["pipeline_note"] and "ends after stage 'speech'" in state["pipeline_note"]
        assert len(state["config_hash"]) == 16 and state["seed"] == 0 and state["versions"]["vlogger"]
        wav, rate = sf.read(out / job_id / "audio.wav")
        assert rate == 16000 and wav.ndim == 1 and len(wav) > 16000
        assert state["frames"] == round(len(wav) / 16000 * 25)
        assert (out / job_id / "portrait.png").exists() and (out / job_id / "log.txt").exists()
    broken = json.loads((out / "broken" / "job.json").read_text())
    assert broken["state"] == "failed" and "broken.wav" in broken["error"]
    summary = json.loads((out / "summary.json").read_text())
    assert {r["id"]: r["state"] for r in summary["jobs"]} == {"spoken": "done", "broken": "failed", "recorded": "done"}

    before = (out / "spoken" / "audio.wav").stat().st_mtime_ns
    again = CliRunner().invoke(main, ["render", str(manifest(workspace, GOOD_AND_BAD)), "-o", str(out)])
    assert again.exit_code == 1
    assert "skipped spoken" in again.output and "skipped recorded" in again.output
    assert (out / "spoken" / "audio.wav").stat().st_mtime_ns == before


def test_jobs_selection_force_and_dry_run(workspace):
    out = workspace / "out"
    path = manifest(workspace, GOOD_AND_BAD)
    result = CliRunner().invoke(main, ["render", str(path), "-o", str(out), "--jobs", "recorded"])
    assert result.exit_code == 0, result.output
    assert not (out / "spoken").exists()
    dry = CliRunner().invoke(main, ["render", str(path), "-o", str(out), "--dry-run"])
    assert dry.exit_code == 0
    lines = {l.split()[1]: l.split()[0] for l in dry.stdout.splitlines() if l.strip()}
    assert lines == {"spoken": "run", "broken": "run", "recorded": "skip"}
    forced = CliRunner().invoke(main, ["render", str(path), "-o", str(out), "--jobs", "recorded", "--force"])
    assert forced.exit_code == 0 and "done    recorded" in forced.output


def test_invalid_manifest_starts_nothing(workspace):
    out = workspace / "out"
    path = manifest(workspace, "  - id: a\n    portrait: nowhere.jpg\n    text: hi\n")
    result = CliRunner().invoke(main, ["render", str(path), "-o", str(out)])
    assert result.exit_code == 2
    assert f"error: {path}:5: job 'a' field 'portrait': file not found" in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--jobs", "nope"], "unknown job(s) nope"),
        (["--device", "cuda"], "no CUDA device"),
        (["--device", "tpu"], "Invalid value"),
    ],
)
def test_bad_command_lines_exit_2(workspace, args, message):
    import torch

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    path = manifest(workspace, GOOD_AND_BAD)
    result = CliRunner().invoke(main, ["render", str(path), "-o", str(workspace / "out"), *args])
    assert result.exit_code == 2 and message in result.output


def test_unwritable_output_root_is_exit_2(workspace):
    blocker = workspace / "file.txt"
    blocker.write_text("x")
    result = CliRunner().invoke(main, ["render", str(manifest(workspace, GOOD_AND_BAD)), "-o", str(blocker / "out")])
    assert result.exit_code == 2 and "cannot create it" in result.output


def test_corrupt_portrait_fails_that_job_only(workspace):
    (workspace / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    jobs = "  - id: bad\n    portrait: bad.jpg\n    audio: talk.wav\n  - id: ok\n    portrait: face.jpg\n    audio: talk.wav\n"
    result = CliRunner().invoke(main, ["render", str(manifest(workspace, jobs)), "-o", str(workspace / "out")])
    assert result.exit_code == 1
    assert "FAILED  bad: portrait" in result.output and "not a readable image" in result.output
    assert "done    ok" in result.output


def test_json_progress_lines(workspace):
    path = manifest(workspace, "  - id: recorded\n    portrait: face.jpg\n    audio: talk.wav\n")
    result = CliRunner().invoke(main, ["render", str(path), "-o", str(workspace / "out"), "--json"])
    assert result.exit_code == 0
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["event"] == "job_start" and events[-1] == {**events[-1], "event": "job_end", "state": "done"}
    assert "done    recorded" in result.stderr
