"""Jobs run together (`render --batch-windows N`): each job runs its stages up to a group stage (frames), the
group stage runs once for all of them, then each finishes — with the runner's usual bookkeeping: failure
isolation, skip / resume, interruption (jobs/runner.py `run_group`). Small recording stages; the real frames
stage runs in tests/pipeline/test_batch_windows.py."""

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from vlogger_cli.errors import JobError
from vlogger_cli.io import atomic_write_text
from vlogger_cli.jobs.runner import RunOptions, run_jobs
from vlogger_cli.jobs.store import JobDir
from vlogger_cli.manifest import JobSpec
from vlogger_cli.pipeline import InferenceSettings, Stage

ROOT = Path(__file__).resolve().parents[2]


class Group:
    """Stages a (per job), g (a group stage), z (per job); records calls and which jobs g saw together."""

    def __init__(self, fail_before=(), fail_in_group=(), interrupt_group=False):
        self.calls, self.groups = [], []
        self.fail_before, self.fail_in_group, self.interrupt_group = fail_before, fail_in_group, interrupt_group

    def stages(self):
        def per_job(name):
            def run(ctx):
                self.calls.append((name, ctx.spec.id))
                if name == "a" and ctx.spec.id in self.fail_before:
                    raise JobError(f"job '{ctx.spec.id}': no face in the portrait")
                atomic_write_text(ctx.job.path(f"{name}.txt"), name)
            return Stage(name, run, lambda ctx: None, (f"{name}.txt",))

        def alone(ctx):
            [error] = together([ctx])
            if error is not None:
                raise error

        def together(ctxs):
            self.groups.append([c.spec.id for c in ctxs])
            if self.interrupt_group:
                raise KeyboardInterrupt
            errors = []
            for ctx in ctxs:
                if ctx.spec.id in self.fail_in_group:
                    errors.append(JobError(f"job '{ctx.spec.id}': its windows failed"))
                    continue
                atomic_write_text(ctx.job.path("g.txt"), "g")
                errors.append(None)
            return errors

        return [per_job("a"), Stage("g", alone, lambda ctx: None, ("g.txt",), run_group=together), per_job("z")]


@pytest.fixture
def specs(tmp_path):
    portrait = tmp_path / "p.jpg"
    portrait.write_bytes(b"x")
    return [JobSpec(id=i, portrait=portrait, text="hi") for i in ("one", "two", "three", "four", "five")]


def options(group: Group, n, **kw) -> RunOptions:
    return RunOptions(stages=group.stages(), inference=InferenceSettings(batch_windows=n), **kw)


def test_jobs_meet_at_the_group_stage_in_groups_of_n(tmp_path, specs):
    group = Group()
    lines = []
    results = run_jobs(specs, tmp_path, options(group, 2), echo=lines.append)
    assert [r.state for r in results] == ["done"] * 5 and [r.id for r in results] == [s.id for s in specs]
    assert group.groups == [["one", "two"], ["three", "four"], ["five"]]
    # each job ran its stages in order: a before the group, z after it
    assert group.calls[:2] == [("a", "one"), ("a", "two")] and group.calls[2:4] == [("z", "one"), ("z", "two")]
    assert all(JobDir(tmp_path, s.id).read_state()["state"] == "done" for s in specs)
    assert len(lines) == 5
    # job.json says which jobs shared the group stage (its seconds are the group's)
    stages = [JobDir(tmp_path, s.id).read_state()["stages"] for s in specs]
    assert [st["g"].get("together") for st in stages] == [["one", "two"]] * 2 + [["three", "four"]] * 2 + [None]
    assert "together" not in stages[0]["a"]


def test_batch_windows_1_runs_the_stage_per_job_as_before(tmp_path, specs):
    group = Group()
    run_jobs(specs[:2], tmp_path, options(group, 1), echo=lambda s: None)
    assert group.groups == [["one"], ["two"]]  # through Stage.run (which calls the group function alone here)
    assert group.calls == [("a", "one"), ("z", "one"), ("a", "two"), ("z", "two")]


def test_a_job_that_ends_early_makes_room_and_a_failure_in_the_group_is_its_own(tmp_path, specs):
    group = Group(fail_before=("two",), fail_in_group=("three",))
    results = run_jobs(specs, tmp_path, options(group, 2), echo=lambda s: None)
    assert [r.state for r in results] == ["done", "failed", "failed", "done", "done"]
    assert "no face" in results[1].error and "its windows failed" in results[2].error
    assert group.groups == [["one", "three"], ["four", "five"]]  # "two" failed before: "three" took its place
    assert ("z", "three") not in group.calls and ("z", "one") in group.calls
    # done jobs are skipped without taking a place; the failed ones wait for --retry-failed
    group2 = Group()
    again = run_jobs(specs, tmp_path, options(group2, 2, retry_failed=True), echo=lambda s: None)
    assert [r.action for r in again] == ["skip", "resume", "resume", "skip", "skip"]
    assert group2.groups == [["two", "three"]]


def test_an_interrupted_group_marks_every_job_in_it_and_resumes(tmp_path, specs):
    with pytest.raises(KeyboardInterrupt):
        run_jobs(specs[:3], tmp_path, options(Group(interrupt_group=True), 2), echo=lambda s: None)
    states = [JobDir(tmp_path, s.id).read_state() for s in specs[:3]]
    assert [s["state"] for s in states[:2]] == ["interrupted", "interrupted"] and states[2] is None
    assert all("a" in s["stages"] and "g" not in s["stages"] for s in states[:2])
    group = Group()
    results = run_jobs(specs[:3], tmp_path, options(group, 2), echo=lambda s: None)
    assert [r.action for r in results] == ["resume", "resume", "run"] and [r.state for r in results] == ["done"] * 3
    assert ("a", "one") not in group.calls  # finished stages are kept


def test_max_failures_stops_starting_jobs(tmp_path, specs):
    group = Group(fail_before=("one", "two"))
    results = run_jobs(specs, tmp_path, options(group, 2), max_failures=2, echo=lambda s: None)
    assert [r.state for r in results] == ["failed", "failed", "not-started", "not-started", "not-started"]


# ---- --workers N --batch-windows M: each worker takes M jobs at a time and runs them as a group ----

def record_group(ctxs):
    """A group stage (module level: the workers import it) noting which jobs met in which process."""
    for ctx in ctxs:
        ctx.job.path("group.json").write_text(json.dumps({"pid": os.getpid(), "ids": [c.spec.id for c in ctxs]}))
    return [None] * len(ctxs)


def record_alone(ctx):
    record_group([ctx])


def nothing(ctx):
    pass


GROUPED = Stage("grouped", record_alone, nothing, ("group.json",), run_group=record_group)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_workers_take_groups_of_jobs(tmp_path, monkeypatch):
    from vlogger_cli import pipeline
    from vlogger_cli.cli import main

    monkeypatch.setattr(pipeline, "STAGES", (pipeline.STAGES[0], GROUPED))
    shutil.copy(ROOT / "manifests" / "media" / "astronaut.jpg", tmp_path / "face.jpg")
    ids = [f"j{i}" for i in range(4)]
    (tmp_path / "m.yaml").write_text("jobs:\n" + "".join(f"  - id: {i}\n    portrait: face.jpg\n    text: Hi.\n"
                                                        for i in ids))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["render", str(tmp_path / "m.yaml"), "-o", str(out), "--workers", "2",
                                       "--batch-windows", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    seen = {i: json.loads((out / i / "group.json").read_text()) for i in ids}
    assert all(len(s["ids"]) == 2 for s in seen.values())
    assert sorted({tuple(s["ids"]) for s in seen.values()}) == [("j0", "j1"), ("j2", "j3")]
    assert len({s["pid"] for s in seen.values()}) == 2 and all(s["pid"] != os.getpid() for s in seen.values())
