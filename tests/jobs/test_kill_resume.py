"""Issue 6: a render killed with SIGKILL at any moment resumes and produces the same video and
artifacts as an uninterrupted run; two renderers on one manifest share the jobs."""

import hashlib
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vlogger_cli.media import read_frames

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def write_manifest(folder: Path, ids=("talk",)) -> Path:
    shutil.copy(ROOT / "manifests" / "media" / "astronaut.jpg", folder / "face.jpg")
    jobs = "".join(
        f"  - id: {i}\n    portrait: face.jpg\n    text: \"Job {i} says a few words, then stops.\"\n" for i in ids
    )
    path = folder / "m.yaml"
    path.write_text("defaults:\n  resolution: 128\n  renderer: warp\n  seed: 5\njobs:\n" + jobs)
    return path


def render_cmd(manifest: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "vlogger_cli", "render", str(manifest), "-o", str(out)]


def content(path: Path):
    """A comparable view of an artifact: tensors and metadata for safetensors (whose header order is
    not stable across processes), arrays for npz, JSON without wall-clock timings, else the bytes."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "np") as f:
            return f.metadata(), {k: hashlib.sha256(f.get_tensor(k).tobytes()).hexdigest() for k in f.keys()}
    if path.suffix == ".npz":
        with np.load(path) as data:
            return {k: hashlib.sha256(data[k].tobytes()).hexdigest() for k in data.files}
    if path.suffix == ".json":
        def drop_timings(node):
            if isinstance(node, dict):
                return {k: drop_timings(v) for k, v in node.items() if k not in ("seconds", "cpu_seconds")}
            return node

        return drop_timings(json.loads(path.read_text()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def artifacts(job: Path) -> dict:
    """Everything a job leaves except its log, state and lock (timestamps) and the PNG/MP4 renders
    of the data (compared separately as decoded frames)."""
    skip = {"log.txt", "job.json", ".lock"}
    return {str(p.relative_to(job)): content(p) for p in sorted(job.rglob("*"))
            if p.is_file() and p.name not in skip and p.suffix not in (".png", ".mp4")}


def test_sigkill_at_random_moments_then_resume_gives_identical_output(tmp_path):
    manifest = write_manifest(tmp_path)
    t0 = time.monotonic()
    subprocess.run(render_cmd(manifest, tmp_path / "clean"), check=True, capture_output=True)
    full = time.monotonic() - t0

    out = tmp_path / "killed"
    rng = random.Random(0)
    kills = sorted(rng.uniform(0.1, 0.9) * full for _ in range(4))
    for delay in kills:
        proc = subprocess.Popen(render_cmd(manifest, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = subprocess.run(render_cmd(manifest, out), capture_output=True, text=True)
    assert final.returncode == 0, final.stdout + final.stderr

    clean, killed = tmp_path / "clean" / "talk", out / "talk"
    assert json.loads((killed / "job.json").read_text())["state"] == "done"
    assert artifacts(killed) == artifacts(clean)
    a = np.stack(list(read_frames(clean / "talk.mp4")))
    b = np.stack(list(read_frames(killed / "talk.mp4")))
    assert a.shape == b.shape and np.array_equal(a, b)
    assert not [p for p in killed.rglob(".*.tmp*")]  # no temporary file survives


def test_sigterm_marks_the_job_interrupted_and_it_resumes(tmp_path):
    manifest = write_manifest(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen(render_cmd(manifest, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120

    def speech_done() -> bool:
        try:
            return "speech" in json.loads((out / "talk" / "job.json").read_text())["stages"]
        except (OSError, ValueError, KeyError):
            return False

    while not speech_done():  # stop it mid-job, once the speech stage is recorded
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "re-run the same command to resume" in err, (proc.returncode, err[-2000:])
    state = json.loads((out / "talk" / "job.json").read_text())
    assert state["state"] == "interrupted" and "speech" in state["stages"]
    again = subprocess.run(render_cmd(manifest, out), capture_output=True, text=True)
    assert again.returncode == 0
    assert "speech: already done" in (out / "talk" / "log.txt").read_text()


def test_two_renderers_share_one_manifest(tmp_path):
    ids = ("one", "two", "three")
    manifest = write_manifest(tmp_path, ids)
    out = tmp_path / "out"
    procs = [subprocess.Popen(render_cmd(manifest, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    for job_id in ids:
        state = json.loads((out / job_id / "job.json").read_text())
        assert state["state"] == "done"
        log = (out / job_id / "log.txt").read_text()
        assert log.count(f"job {job_id}: run") == 1  # rendered by exactly one of the two
        assert (out / job_id / f"{job_id}.mp4").stat().st_size > 0


def test_sigterm_waits_for_an_import_to_finish(monkeypatch):
    """A SIGTERM that lands inside an import is not raised there (it would come back as an ImportError, or
    make the interpreter exit by SIGINT): it is retried by a short timer; elsewhere it interrupts at once."""
    from types import SimpleNamespace

    from vlogger_cli.cli import render as cli_render

    def frame(filename, back=None):
        return SimpleNamespace(f_code=SimpleNamespace(co_filename=filename), f_back=back)

    inside = frame("<string>", frame("/x/torch/__init__.py", frame("<frozen importlib._bootstrap>", frame("a.py"))))
    timers = []
    monkeypatch.setattr(cli_render.signal, "signal", lambda sig, handler: None)
    monkeypatch.setattr(cli_render.signal, "setitimer", lambda which, seconds: timers.append(seconds))
    cli_render._sigterm_to_interrupt(signal.SIGTERM, inside)  # deferred: no KeyboardInterrupt
    assert timers == [cli_render.INTERRUPT_RETRY]
    with pytest.raises(KeyboardInterrupt):
        cli_render._sigterm_to_interrupt(signal.SIGALRM, frame("vlogger_cli/pipeline/fit.py", frame("a.py")))
