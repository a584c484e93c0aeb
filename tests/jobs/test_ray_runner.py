"""The batch through a local Ray instance gives the same outputs as the local runner."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from vlogger_cli.cli import main

ROOT = Path(__file__).resolve().parents[2]

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def test_ray_batch_matches_local_batch(tmp_path, monkeypatch):
    # The stage list travels to the workers with the run options: the input stages keep this quick.
    from vlogger_cli import pipeline

    monkeypatch.setattr(pipeline, "STAGES", pipeline.STAGES[:2])
    shutil.copy(ROOT / "manifests" / "media" / "astronaut.jpg", tmp_path / "face.jpg")
    shutil.copy(ROOT / "manifests" / "media" / "welcome.mp3", tmp_path / "speech.mp3")
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    (tmp_path / "m.yaml").write_text(
        "jobs:\n"
        "  - id: said\n    portrait: face.jpg\n    text: Ray runs this job.\n"
        "  - id: heard\n    portrait: face.jpg\n    audio: speech.mp3\n"
        "  - id: bad\n    portrait: face.jpg\n    audio: bad.wav\n"
    )
    local = CliRunner().invoke(main, ["render", str(tmp_path / "m.yaml"), "-o", str(tmp_path / "local")])
    remote = CliRunner().invoke(main, ["render", str(tmp_path / "m.yaml"), "-o", str(tmp_path / "ray"), "--ray", "auto"])
    assert local.exit_code == remote.exit_code == 1, (remote.output, remote.exception)
    for job in ("said", "heard"):
        a, b = (json.loads((tmp_path / o / job / "job.json").read_text()) for o in ("local", "ray"))
        assert a["state"] == b["state"] == "done" and a["config_hash"] == b["config_hash"]
        assert (tmp_path / "local" / job / "audio.wav").read_bytes() == (tmp_path / "ray" / job / "audio.wav").read_bytes()
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert {r["id"]: r["state"] for r in summary["jobs"]} == {"said": "done", "heard": "done", "bad": "failed"}
    assert "FAILED  bad" in remote.stdout


def test_ray_temp_dir_is_inside_output_root_when_short_enough(tmp_path):
    from vlogger_cli.jobs.ray_runner import ray_temp_dir

    assert ray_temp_dir(Path("/srv/o")) == Path("/srv/o/.ray")
    long_dir = ray_temp_dir(tmp_path / ("x" * 80))
    assert len(str(long_dir)) + 70 < 107


def test_ray_address_that_does_not_answer_is_exit_2(tmp_path):
    shutil.copy(ROOT / "manifests" / "media" / "astronaut.jpg", tmp_path / "face.jpg")
    (tmp_path / "m.yaml").write_text("jobs:\n  - id: a\n    portrait: face.jpg\n    text: hi there\n")
    result = CliRunner().invoke(main, ["render", str(tmp_path / "m.yaml"), "-o", str(tmp_path / "o"), "--ray", "127.0.0.1:1"])
    assert result.exit_code == 2 and "--ray 127.0.0.1:1: cannot connect" in result.output
