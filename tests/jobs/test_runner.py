"""Runner lifecycle: skip / resume / redo, failure isolation, interruption.

These use small stages that record their calls so the bookkeeping is checked exactly; the real
stages run end to end in tests/cli/test_render.py.
"""

import json

import pytest

from vlogger_cli.errors import JobError
from vlogger_cli.io import atomic_write_text
from vlogger_cli.jobs.runner import RunOptions, plan_action, run_job, run_jobs, write_summary
from vlogger_cli.jobs.store import JobDir, config_hash
from vlogger_cli.manifest import JobSpec
from vlogger_cli.pipeline import Stage


class Recorder:
    def __init__(self, fail_on=None, interrupt_on=None):
        self.calls = []
        self.fail_on, self.interrupt_on = fail_on, interrupt_on

    def stage(self, name):
        def run(ctx):
            self.calls.append(("run", ctx.spec.id, name))
            if self.fail_on == (ctx.spec.id, name):
                raise JobError(f"portrait {ctx.spec.portrait} has no face; use another photo")
            if self.interrupt_on == (ctx.spec.id, name):
                raise KeyboardInterrupt
            if self.interrupt_on == (ctx.spec.id, "import") and name == "b":
                try:  # what a SIGTERM landing while a C extension initialises turns into
                    raise KeyboardInterrupt
                except KeyboardInterrupt as exc:
                    raise ImportError("initialization failed") from exc
            if self.fail_on == (ctx.spec.id, "bug") and name == "b":
                raise ZeroDivisionError("oops")
            atomic_write_text(ctx.job.path(f"{name}.txt"), name)

        def load(ctx):
            self.calls.append(("load", ctx.spec.id, name))

        return Stage(name, run, load, (f"{name}.txt",))

    def stages(self):
        return [self.stage("a"), self.stage("b")]


@pytest.fixture
def specs(tmp_path):
    portrait = tmp_path / "p.jpg"
    portrait.write_bytes(b"x")
    return [JobSpec(id=i, portrait=portrait, text="hi") for i in ("one", "two", "three")]


def test_failure_is_isolated_and_summarised(tmp_path, specs):
    rec = Recorder(fail_on=("two", "a"))
    out = tmp_path / "out"
    results = run_jobs(specs, out, RunOptions(stages=rec.stages()), echo=lambda s: None)
    assert [r.state for r in results] == ["done", "failed", "done"]
    assert "has no face" in results[1].error and "\n" not in results[1].error
    state = JobDir(out, "two").read_state()
    assert state["state"] == "failed" and "has no face" in state["error"]
    summary = json.loads(write_summary(out, specs, results).read_text())
    assert [row["state"] for row in summary["jobs"]] == ["done", "failed", "done"]


def test_bug_fails_job_with_traceback_in_log(tmp_path, specs):
    rec = Recorder(fail_on=("one", "bug"))
    result = run_job(specs[0], tmp_path, RunOptions(stages=rec.stages()))
    assert result.state == "failed" and "internal error (ZeroDivisionError: oops)" in result.error
    assert "Traceback" in JobDir(tmp_path, "one").path("log.txt").read_text()


def test_done_job_is_skipped_and_force_or_change_redoes(tmp_path, specs):
    rec = Recorder()
    assert run_job(specs[0], tmp_path, RunOptions(stages=rec.stages())).state == "done"
    rec.calls.clear()
    assert run_job(specs[0], tmp_path, RunOptions(stages=rec.stages())).state == "skipped"
    assert rec.calls == []
    assert run_job(specs[0], tmp_path, RunOptions(stages=rec.stages(), force=True)).action == "redo"
    assert [c[0] for c in rec.calls] == ["run", "load", "run", "load"]
    changed = JobSpec(id="one", portrait=specs[0].portrait, text="something else")
    assert plan_action(JobDir(tmp_path, "one").read_state(), config_hash(changed), False) == "redo"


def test_interrupted_job_resumes_after_last_finished_stage(tmp_path, specs):
    rec = Recorder(interrupt_on=("one", "b"))
    with pytest.raises(KeyboardInterrupt):
        run_job(specs[0], tmp_path, RunOptions(stages=rec.stages()))
    state = JobDir(tmp_path, "one").read_state()
    assert state["state"] == "interrupted" and list(state["stages"]) == ["a"]
    rec2 = Recorder()
    result = run_job(specs[0], tmp_path, RunOptions(stages=rec2.stages()))
    assert result.state == "done" and result.action == "resume"
    assert rec2.calls == [("load", "one", "a"), ("run", "one", "b"), ("load", "one", "b")]


def test_an_interrupt_wrapped_by_an_import_still_interrupts(tmp_path, specs):
    """Ctrl-C / SIGTERM during an extension module's initialisation surfaces as ImportError raised from the
    KeyboardInterrupt: the job is interrupted (resumable), not failed as an internal error."""
    rec = Recorder(interrupt_on=("one", "import"))
    with pytest.raises(KeyboardInterrupt):
        run_job(specs[0], tmp_path, RunOptions(stages=rec.stages()))
    state = JobDir(tmp_path, "one").read_state()
    assert state["state"] == "interrupted" and list(state["stages"]) == ["a"]


def test_stage_with_missing_artifact_is_rerun(tmp_path, specs):
    rec = Recorder()
    run_job(specs[0], tmp_path, RunOptions(stages=rec.stages()))
    job = JobDir(tmp_path, "one")
    state = job.read_state()
    state["state"] = "interrupted"
    job.write_state(state)
    job.path("a.txt").unlink()
    rec.calls.clear()
    run_job(specs[0], tmp_path, RunOptions(stages=rec.stages()))
    # "b" depends on "a": once "a" is recomputed, "b" is too.
    assert rec.calls == [("run", "one", "a"), ("load", "one", "a"), ("run", "one", "b"), ("load", "one", "b")]


def test_failed_job_is_not_retried_unless_asked(tmp_path, specs):
    run_job(specs[0], tmp_path, RunOptions(stages=Recorder(fail_on=("one", "a")).stages()))
    rec = Recorder()
    again = run_job(specs[0], tmp_path, RunOptions(stages=rec.stages()))
    assert again.state == "failed" and again.action == "skip-failed" and rec.calls == []
    retried = run_job(specs[0], tmp_path, RunOptions(stages=rec.stages(), retry_failed=True))
    assert retried.state == "done" and retried.action == "resume"


def test_max_failures_stops_starting_jobs(tmp_path, specs):
    rec = Recorder(fail_on=("one", "a"))
    results = run_jobs(specs, tmp_path, RunOptions(stages=rec.stages()), max_failures=1, echo=lambda s: None)
    assert [r.state for r in results] == ["failed", "not-started", "not-started"]
    assert not (tmp_path / "two").exists()


def test_job_locked_by_another_owner_is_left_alone(tmp_path, specs):
    from vlogger_cli.jobs.lock import JobLock

    rec = Recorder()
    with JobLock(tmp_path / "one") as held:
        assert held.acquired
        result = run_job(specs[0], tmp_path, RunOptions(stages=rec.stages()))
    assert result.state == "busy" and "being rendered by pid" in result.error and rec.calls == []
    assert run_job(specs[0], tmp_path, RunOptions(stages=rec.stages())).state == "done"


def test_disk_full_is_a_clear_retryable_failure_that_resumes(tmp_path, specs, monkeypatch):
    import errno

    rec = Recorder()
    stages = rec.stages()

    def full(ctx):
        raise OSError(errno.ENOSPC, "No space left on device", str(ctx.job.path("b.txt")))

    broken = [stages[0], Stage("b", full, stages[1].load, stages[1].outputs)]
    result = run_job(specs[0], tmp_path, RunOptions(stages=broken))
    assert result.state == "failed"
    assert result.error.startswith("the disk is full while writing") and "resumes" in result.error
    assert "Traceback" not in JobDir(tmp_path, "one").path("log.txt").read_text()
    assert (tmp_path / "one" / "a.txt").exists()  # finished work is kept
    rec.calls.clear()
    again = run_job(specs[0], tmp_path, RunOptions(stages=stages))  # no --retry-failed needed
    assert again.state == "done" and again.action == "resume"
    assert rec.calls == [("load", "one", "a"), ("run", "one", "b"), ("load", "one", "b")]


def test_events_for_machine_readable_progress(tmp_path, specs):
    events = []
    run_jobs(specs[:1], tmp_path, RunOptions(stages=Recorder().stages(), on_event=events.append), echo=lambda s: None)
    kinds = [(e["event"], e.get("stage")) for e in events]
    assert kinds == [("job_start", None), ("stage_done", "a"), ("stage_done", "b"), ("job_end", None)]
    assert events[-1]["state"] == "done" and all("time" in e for e in events)


def test_intermediates_are_removed_only_once_done(tmp_path, specs):
    def make_folder(ctx):
        (ctx.job.path("controls")).mkdir(exist_ok=True)
        atomic_write_text(ctx.job.path("controls/0.npz"), "x")
        atomic_write_text(ctx.job.path("b.txt"), "b")

    rec = Recorder()
    stages = [rec.stage("a"), Stage("b", make_folder, lambda ctx: None, ("b.txt",))]
    result = run_job(specs[0], tmp_path, RunOptions(stages=stages, remove_when_done=("controls", "chunks")))
    assert result.state == "done"
    assert not (tmp_path / "one" / "controls").exists() and (tmp_path / "one" / "b.txt").exists()
    assert JobDir(tmp_path, "one").read_state()["removed_intermediates"] == ["controls"]


class WindowStage:
    """A stage that continues the windows it finds in its folder (as controls and frames do): each window
    holds the job's text, so a window made for other inputs shows in the result."""

    def __init__(self, name, windows=3, interrupt_after=None):
        self.name, self.windows, self.interrupt_after = name, windows, interrupt_after

    def run(self, ctx):
        folder = ctx.job.path(self.name)
        folder.mkdir(exist_ok=True)
        for i in range(self.windows):
            window = folder / f"w{i}.txt"
            if not window.exists():
                atomic_write_text(window, ctx.spec.text)
            if self.interrupt_after == i:
                raise KeyboardInterrupt
        atomic_write_text(ctx.job.path(f"{self.name}.txt"),
                          "".join((folder / f"w{i}.txt").read_text() for i in range(self.windows)))

    def stage(self):
        return Stage(self.name, self.run, lambda ctx: None, (f"{self.name}.txt",), resumes=(self.name,))


def test_a_redo_never_continues_windows_made_for_other_inputs(tmp_path, specs):
    """Windows on disk are continued only by a resume of the same config: a changed job (redo) starts its
    windowed stages empty, even where the old run stopped half-way through them."""
    first, second = WindowStage("controls"), WindowStage("frames", interrupt_after=1)
    with pytest.raises(KeyboardInterrupt):  # "hi": controls done, frames stopped after 2 windows
        run_job(specs[0], tmp_path, RunOptions(stages=[first.stage(), second.stage()]))
    changed = JobSpec(id="one", portrait=specs[0].portrait, text="yo")
    stages = [WindowStage("controls").stage(), WindowStage("frames").stage()]
    result = run_job(changed, tmp_path, RunOptions(stages=stages))
    assert result.action == "redo"
    job = JobDir(tmp_path, "one")
    assert job.path("controls.txt").read_text() == "yoyoyo"
    assert job.path("frames.txt").read_text() == "yoyoyo"
    assert "cleared frames" in job.path("log.txt").read_text()


def test_a_resume_continues_its_windows_and_restarts_those_after_a_stage_that_ran_again(tmp_path, specs):
    job = JobDir(tmp_path, "one")
    stages = [WindowStage("controls").stage(), WindowStage("frames", interrupt_after=1).stage()]
    with pytest.raises(KeyboardInterrupt):
        run_job(specs[0], tmp_path, RunOptions(stages=stages))
    atomic_write_text(job.path("frames/w0.txt"), "kept")  # marks a window the resume must not redo
    resumed = run_job(specs[0], tmp_path, RunOptions(stages=[WindowStage("controls").stage(),
                                                             WindowStage("frames").stage()]))
    assert resumed.action == "resume" and job.path("frames.txt").read_text() == "kepthihi"

    # controls' artifact lost: it runs again (continuing its own windows), and frames, downstream of it, restarts
    state = job.read_state()
    state["state"] = "interrupted"
    job.write_state(state)
    job.path("controls.txt").unlink()
    atomic_write_text(job.path("controls/w2.txt"), "old")
    run_job(specs[0], tmp_path, RunOptions(stages=[WindowStage("controls").stage(), WindowStage("frames").stage()]))
    assert job.path("controls.txt").read_text() == "hihiold"
    assert job.path("frames.txt").read_text() == "hihihi"
