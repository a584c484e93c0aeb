"""`vlogger render --workers N`: N local processes share one manifest; each job runs once, as the
in-process runner would run it (vlogger_cli/jobs/workers.py)."""

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from vlogger_cli.cli import main
from vlogger_cli.pipeline import Stage

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def record_worker(ctx):
    """A stage that notes which process ran the job and what it was sized to (module level: workers import it)."""
    import torch

    ctx.job.path("worker.json").write_text(json.dumps({"pid": os.getpid(), "threads": torch.get_num_threads(),
                                                       "omp": os.environ.get("OMP_NUM_THREADS"),
                                                       "wait": os.environ.get("OMP_WAIT_POLICY")}))


def die(ctx):
    if ctx.spec.id == "doomed":
        os._exit(9)  # a worker killed mid-job (out of memory, kill -9)


def nothing(ctx):
    pass


RECORD = Stage("record", record_worker, nothing, ("worker.json",))
DIE = Stage("die", die, nothing, ())


GOOD = "".join(f"  - id: heard{i}\n    portrait: face.jpg\n    text: Job {i}.\n" for i in range(3))
BAD = "  - id: bad\n    portrait: bad.jpg\n    text: Job.\n"


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    from vlogger_cli import pipeline

    # The runner's bookkeeping does not depend on the stages: the portrait stage (real) and a recorder keep
    # the workers' start-up (a fresh interpreter each) the main cost.
    monkeypatch.setattr(pipeline, "STAGES", (pipeline.STAGES[0], RECORD))
    shutil.copy(ROOT / "manifests" / "media" / "astronaut.jpg", tmp_path / "face.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "m.yaml").write_text("jobs:\n" + GOOD + BAD)
    return tmp_path


def events(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_two_workers_run_each_job_once_like_the_local_runner(workspace):
    m, out = str(workspace / "m.yaml"), workspace / "out"
    result = CliRunner().invoke(main, ["render", m, "-o", str(out), "--workers", "2", "--json", "--device", "cpu"])
    assert result.exit_code == 1, (result.output, result.exception)  # `bad` fails, the others are done
    ends = [e for e in events(result.stdout) if e["event"] == "job_end"]
    assert sorted(e["job"] for e in ends) == ["bad", "heard0", "heard1", "heard2"]
    assert {e["job"]: e["state"] for e in ends} == {"bad": "failed", "heard0": "done", "heard1": "done", "heard2": "done"}
    assert {e["worker"] for e in ends} == {0, 1} and all(e["threads"] >= 1 and e["gpu"] is None for e in ends)
    starts = [e for e in events(result.stdout) if e["event"] == "job_start"]
    assert sorted(e["job"] for e in starts) == ["bad", "heard0", "heard1", "heard2"]  # workers' events come back
    ran = [json.loads((out / f"heard{i}" / "worker.json").read_text()) for i in range(3)]
    assert len({r["pid"] for r in ran}) == 2 and os.getpid() not in {r["pid"] for r in ran}
    threads = ends[0]["threads"]
    assert all(r["threads"] == threads and r["omp"] == str(threads) and r["wait"] == "PASSIVE" for r in ran)
    summary = json.loads((out / "summary.json").read_text())
    assert {r["id"]: r["state"] for r in summary["jobs"]} == {"heard0": "done", "heard1": "done", "heard2": "done",
                                                              "bad": "failed"}

    # --force with several workers still redoes each job exactly once; --threads sizes every worker.
    again = CliRunner().invoke(main, ["render", m, "-o", str(out), "--workers", "2", "--json", "--force",
                                      "--threads", "3", "--jobs", "heard0,heard1,heard2"])
    assert "2 workers, 3 torch thread(s) each (--threads)" in again.stderr
    actions = sorted((e["job"], e["action"]) for e in events(again.stdout) if e["event"] == "job_end")
    assert actions == [("heard0", "redo"), ("heard1", "redo"), ("heard2", "redo")], again.output
    assert all(json.loads((out / f"heard{i}" / "worker.json").read_text())["threads"] == 3 for i in range(3))


def test_a_worker_that_dies_fails_its_job_and_the_others_go_on(workspace, monkeypatch):
    from vlogger_cli import pipeline

    monkeypatch.setattr(pipeline, "STAGES", (pipeline.STAGES[0], DIE, RECORD))
    text = (workspace / "m.yaml").read_text().replace("id: heard1", "id: doomed")
    (workspace / "m.yaml").write_text(text)
    result = CliRunner().invoke(main, ["render", str(workspace / "m.yaml"), "-o", str(workspace / "out"),
                                       "--workers", "2", "--jobs", "doomed,heard0,heard2"])
    assert result.exit_code == 1, result.output
    assert "FAILED  doomed: worker " in result.output and "died (exit code 9) while rendering it" in result.output
    assert all((workspace / "out" / j / "worker.json").exists() for j in ("heard0", "heard2"))


def test_max_failures_stops_handing_out_jobs(workspace):
    (workspace / "m.yaml").write_text("jobs:\n" + BAD + BAD.replace("id: bad", "id: worse") + GOOD)
    result = CliRunner().invoke(main, ["render", str(workspace / "m.yaml"), "-o", str(workspace / "out"),
                                       "--workers", "2", "--max-failures", "1", "--json"])
    assert result.exit_code == 1, result.output
    ends = {e["job"]: e for e in events(result.stdout) if e["event"] == "job_end"}
    # The two bad jobs were handed out together; once one had failed, no worker was given another job.
    assert {j: e["state"] for j, e in ends.items()} == {"bad": "failed", "worse": "failed", "heard0": "not-started",
                                                        "heard1": "not-started", "heard2": "not-started"}
    assert ends["heard1"]["error"] == "not started: --max-failures 1 reached"


def test_one_process_render_uses_threads_and_gives_them_back(workspace):
    import torch

    before = torch.get_num_threads()
    wanted = 2 if before == 1 else 1
    result = CliRunner().invoke(main, ["render", str(workspace / "m.yaml"), "-o", str(workspace / "out"),
                                       "--jobs", "heard0", "--threads", str(wanted)])
    assert result.exit_code == 0, result.output
    ran = json.loads((workspace / "out" / "heard0" / "worker.json").read_text())
    assert ran == {"pid": os.getpid(), "threads": wanted, "omp": str(wanted), "wait": "PASSIVE"}
    assert torch.get_num_threads() == before  # an in-process caller keeps its own setting
