"""Runs jobs through the pipeline, locally and in-process, one job after another — or, with batched windows
(`render --batch-windows`), a few jobs together: each runs its stages up to the frames stage, the frames stage
runs once for all of them (their windows share denoiser batches), then each runs its remaining stages.

The runner owns the job lifecycle (skip / resume / redo, state transitions, per-job log, batch
summary); the stages only produce artifacts. One failing job never stops the others: a user
error (`VloggerError`) fails the job with its one-line message; anything else is a bug, logged
with its traceback in the job's log.txt, and the job fails while the batch goes on.
"""

from __future__ import annotations

import errno
import logging
import time
import traceback
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from vlogger_cli.errors import VloggerError
from vlogger_cli.io import atomic_write_json
from vlogger_cli.jobs.lock import JobLock
from vlogger_cli.jobs.store import JobDir, config_hash, now_iso, versions
from vlogger_cli.manifest import JobSpec
from vlogger_cli.pipeline import InferenceSettings, Stage, StageContext, final_stage_note, stages_for


@dataclass
class JobResult:
    id: str
    state: str            # done | failed | interrupted | skipped (done before, unchanged) | busy | not-started
    seconds: float = 0.0
    frames: int | None = None
    output: str | None = None
    error: str | None = None
    action: str = "run"   # run | resume | redo | skip | skip-failed | elsewhere | stopped


@dataclass(frozen=True)
class RunOptions:
    device: str = "auto"                 # cpu | cuda | auto (resolved by the stages that use torch)
    force: bool = False                  # redo done jobs
    retry_failed: bool = False           # retry jobs that failed with the same config
    stages: Sequence[Stage] | None = None  # one pipeline for every job; None: by the job's kind (below)
    pipelines: dict[str, Sequence[Stage]] | None = None  # kind -> stages, resolved where the run starts
    remove_when_done: tuple[str, ...] = ()  # job sub-folders deleted once the job is done (--keep-intermediates)
    on_event: Callable[[dict], None] | None = None   # machine-readable progress (render --json)
    inference: InferenceSettings = InferenceSettings()  # --precision, --compile, --batch-windows (not in the job config)

    def stages_for(self, spec: JobSpec) -> Sequence[Stage]:
        """The job's pipeline. Resolved in the process that starts the run and carried in the options, so
        Ray workers (which import the modules afresh) run the very stages the driver chose."""
        if self.stages is not None:
            return self.stages
        if self.pipelines is not None:
            return self.pipelines[spec.kind]
        return stages_for(spec)

    def jobs_together(self) -> int:
        """Jobs the runner brings to a group stage (frames) together: 1 unless windows are batched."""
        from vlogger_cli.pipeline.inference import jobs_per_batch

        return jobs_per_batch(self.inference, self.device)

    def emit(self, **event) -> None:
        if self.on_event is not None:
            self.on_event({"time": now_iso(), **event})


# A failure caused by the machine, not the inputs: the same job can succeed after the fix, so a
# re-run resumes it without --retry-failed (finished stages and windows are kept).
ENVIRONMENT_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                      errno.EROFS: "the output file system is read-only", errno.EACCES: "permission denied",
                      errno.EIO: "an I/O error occurred"}


def plan_action(prev: dict | None, spec_hash: str, force: bool, retry_failed: bool = False) -> str:
    """What a run would do with this job: run (new), skip (done, unchanged), resume (interrupted,
    or failed for a reason outside the inputs), redo (config changed, or --force), or skip-failed
    (failed before with this very config: the same inputs would fail the same way, so only
    --retry-failed tries again). `prev`: the job's saved state (`JobDir.read_state()`)."""
    if prev is None:
        return "run"
    if prev.get("config_hash") != spec_hash or force:
        return "redo"
    if prev.get("state") == "done":
        return "skip"
    if prev.get("state") == "failed" and not (retry_failed or prev.get("retryable")):
        return "skip-failed"
    return "resume"


def run_jobs(
    specs: Sequence[JobSpec],
    output_root: Path,
    options: RunOptions = RunOptions(),
    *,
    max_failures: int | None = None,
    echo: Callable[[str], None] = print,
) -> list[JobResult]:
    """Run `specs` one after another. With `max_failures`, stop starting new jobs once that many
    have failed in this run (the rest are reported as not started). With batched windows
    (`options.jobs_together()` > 1) up to that many jobs run together: each runs its stages up to the
    frames stage, their frames stage runs as one (`Stage.run_group`), then each finishes (`run_group`)."""
    output_root = Path(output_root)
    output_root.mkdir(parents=True, exist_ok=True)
    results: list[JobResult] = []

    def report(result: JobResult) -> None:
        echo(format_result(result, output_root))
        options.emit(event="job_end", job=result.id, state=result.state, action=result.action,
                     seconds=round(result.seconds, 3), frames=result.frames, error=result.error)
        results.append(result)

    def stopped() -> bool:
        failures = sum(r.state == "failed" and r.action != "skip-failed" for r in results)
        return max_failures is not None and failures >= max_failures

    pending, together = deque(specs), options.jobs_together()
    while pending:
        if stopped():
            spec = pending.popleft()
            report(JobResult(spec.id, "not-started", action="stopped",
                             error=f"not started: --max-failures {max_failures} reached"))
        elif together > 1:
            run_group(pending, output_root, options, together, report, stopped)
        else:
            report(run_job(pending.popleft(), output_root, options))
    order = {spec.id: i for i, spec in enumerate(specs)}
    return sorted(results, key=lambda r: order[r.id])


def run_job(spec: JobSpec, output_root: Path, options: RunOptions = RunOptions()) -> JobResult:
    """Run one job under its lock; a job another process is rendering is reported `busy`."""
    job = JobDir(output_root, spec.id)
    with JobLock(job.root) as lock:
        if not lock.acquired:
            return _busy(spec, job, lock)
        return _run_alone(_job_steps(spec, job, options))


def run_group(pending: deque, output_root: Path, options: RunOptions, size: int,
              report: Callable[[JobResult], None], stopped: Callable[[], bool] = lambda: False) -> None:
    """Take jobs from `pending` until `size` of them wait at a group stage (or none are left), run that stage
    for them together, then let each finish; `report` gets each job's result as it ends. A job that ends before
    reaching the group stage (skipped, failed, busy) makes room for the next. Each job holds its lock until
    it ends. Ctrl-C (KeyboardInterrupt) marks every job in flight interrupted, as the one-job runner does."""
    with ExitStack() as locks:
        waiting: list[tuple] = []  # (steps, stage, ctx) of jobs suspended before a group stage
        try:
            while len(waiting) < size and pending and not stopped():
                spec = pending.popleft()
                job = JobDir(output_root, spec.id)
                lock = locks.enter_context(JobLock(job.root))
                if not lock.acquired:
                    report(_busy(spec, job, lock))
                    continue
                steps = _job_steps(spec, job, options)
                _wait_or_report(steps, _advance(steps), waiting, report)
            while waiting:
                stage = waiting[0][1]
                members = [w for w in waiting if w[1] is stage]  # stay in `waiting` (in flight) until advanced
                t0 = time.monotonic()
                try:
                    errors = stage.run_group([ctx for _, _, ctx in members])
                except Exception as err:  # noqa: BLE001 - a bug in the group itself: every job in it fails
                    errors = [err] * len(members)
                ran = {"together": [ctx.spec.id for _, _, ctx in members], "seconds": time.monotonic() - t0}
                for member, error in zip(members, errors):
                    waiting = [w for w in waiting if w is not member]
                    _wait_or_report(member[0], _advance(member[0], error, ran), waiting, report)
        except BaseException as stop:
            for steps, _, _ in waiting:  # each saves itself as interrupted (or failed, for a bug here)
                try:
                    _advance(steps, stop)
                except BaseException:  # noqa: BLE001 - re-raised by the job once its state is saved
                    pass
            raise


def _wait_or_report(steps, got, waiting: list, report) -> None:
    if isinstance(got, JobResult):
        report(got)
    else:
        waiting.append((steps, *got))


def _advance(steps, error: BaseException | None = None, ran: dict | None = None):
    """Resume a job's steps (raising `error` in it at the group stage it waits on, else telling it how the
    stage ran: {"together": job ids, "seconds": the stage's time}): the (stage, ctx) it waits on next, or its
    JobResult."""
    try:
        return steps.throw(error) if error is not None else steps.send(ran)
    except StopIteration as done:
        return done.value


def _run_alone(steps) -> JobResult:
    """Drive one job's steps by itself: a group stage it waits on runs for this job alone."""
    got = _advance(steps)
    while not isinstance(got, JobResult):
        stage, ctx = got
        try:
            [error] = stage.run_group([ctx])
        except BaseException as err:  # noqa: BLE001 - handed to the job: it fails, or saves itself as interrupted
            error = err
        got = _advance(steps, error)
    return got


def _busy(spec: JobSpec, job: JobDir, lock: JobLock) -> JobResult:
    owner = lock.owner() or {}
    return JobResult(spec.id, "busy", output=str(job.root), action="elsewhere",
                     error=f"being rendered by pid {owner.get('pid', '?')} on {owner.get('host', '?')}")


def _job_steps(spec: JobSpec, job: JobDir, options: RunOptions):
    """One job's run (the caller holds its lock), as a generator: it yields (stage, ctx) where it waits for a
    group stage to be run for it (`run_group`, or alone by `_run_alone`), takes that stage's error back through
    `throw`, and returns its JobResult. Without batched windows it never yields."""
    t0 = time.monotonic()
    try:
        spec_hash = config_hash(spec)
    except OSError as exc:  # an input vanished or became unreadable since validation
        return JobResult(spec.id, "failed", error=f"job '{spec.id}': cannot read its input files ({exc}); fix them and re-run")
    prev = job.read_state()
    action = plan_action(prev, spec_hash, options.force, options.retry_failed)
    if action == "skip":
        return JobResult(spec.id, "skipped", frames=prev.get("frames"), output=str(job.root), action="skip")
    if action == "skip-failed":
        return JobResult(spec.id, "failed", output=str(job.root), action="skip-failed", error=prev.get("error"))

    job.remove_stale_temps()  # safe: we hold the job's lock, nobody else writes here
    done_stages = prev.get("stages", {}) if (prev and action == "resume") else {}
    state = {
        "id": spec.id,
        "state": "running",
        "error": None,
        "config": spec.config(),
        "config_hash": spec_hash,
        "seed": spec.seed,
        "versions": versions(),
        "started_at": now_iso(),
        "stages": dict(done_stages),
        "pipeline": [s.name for s in options.stages_for(spec)],
        "pipeline_note": final_stage_note(options.stages_for(spec)),
        "frames": prev.get("frames") if done_stages else None,
    }
    try:
        job.write_state(state)
        log, handler = _job_logger(job)
    except OSError as exc:
        return JobResult(spec.id, "failed", output=str(job.root), action=action,
                         error=_environment_message(exc, job) or f"cannot write into {job.root} ({exc})")
    log.info("job %s: %s (config %s)", spec.id, action, spec_hash)
    options.emit(event="job_start", job=spec.id, action=action)
    ctx = StageContext(spec=spec, job=job, device=options.device, log=log, config_hash=spec_hash,
                       inference=options.inference)
    try:
        yield from _run_stages(ctx, state, options, resuming=action == "resume")
        state.update(state="done", finished_at=now_iso())
        job.write_state(state)
        _remove_intermediates(job, state, options.remove_when_done, log)
        return JobResult(spec.id, "done", time.monotonic() - t0, state.get("frames"), str(job.root), action=action)
    except VloggerError as exc:
        return _fail(job, state, log, str(exc), t0, action)
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM turned into KeyboardInterrupt by the CLI
        _mark_interrupted(job, state, log)
        raise
    except Exception as exc:  # a bug, or the machine: keep the batch going
        if _interrupt_behind(exc):  # the interrupt landed while an extension module initialised: still one
            _mark_interrupted(job, state, log)
            raise KeyboardInterrupt from exc
        message = _environment_message(exc, job)
        if message is None:
            log.error("internal error:\n%s", traceback.format_exc())
            message = f"internal error ({type(exc).__name__}: {exc}); traceback in {job.path('log.txt')}"
        return _fail(job, state, log, message, t0, action, retryable=_is_environment_error(exc))
    finally:
        log.removeHandler(handler)
        handler.close()


def _mark_interrupted(job: JobDir, state: dict, log) -> None:
    state.update(state="interrupted", error="interrupted; re-run the same command to resume")
    _write_state_quietly(job, state, log)
    log.warning("interrupted")


def _interrupt_behind(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt (Ctrl-C, or SIGTERM as the CLI raises it) caused `exc`: one that lands
    while a C extension module initialises comes back as "ImportError: initialization failed", raised from
    it, and must stop the run as an interrupt, not fail the job as a bug."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _run_stages(ctx: StageContext, state: dict, options: RunOptions, resuming: bool = False):
    """The job's stages in order (a generator: it yields at a group stage, see `_job_steps`).

    resuming: the job's last run had this config, so the first stage to run again may continue the windows
    it left in its `resumes` folders. Every other stage run starts them empty: a redo's old windows, or those
    of a stage whose inputs were just made again, belong to other inputs (a changed text or --eyes would
    otherwise keep the old motion's controls and frames wherever a window of them was on disk)."""
    from tqdm import tqdm

    # disable=None: progress bars on a terminal only, not in nightly logs.
    bar = tqdm(options.stages_for(ctx.spec), desc=ctx.spec.id, unit="stage", leave=False, dynamic_ncols=True, disable=None)
    upstream_rerun = False  # once a stage runs again, everything after it depends on new results
    for stage in bar:
        bar.set_postfix_str(stage.name)
        record = state["stages"].get(stage.name)
        finished = record is not None and all(ctx.job.path(p).exists() for p in stage.outputs)
        if finished and not upstream_rerun:
            ctx.log.info("%s: already done, loading its artifacts", stage.name)
            stage.load(ctx)
            continue
        if upstream_rerun or not resuming:
            _clear_folders(ctx, stage)
        upstream_rerun = True
        state["stages"].pop(stage.name, None)
        t0 = time.monotonic()
        ran = None
        if stage.run_group is not None and options.jobs_together() > 1:
            # the group runs it for this job and others (their windows batched): an error comes back, thrown
            # here; else which jobs it ran with and its time (not this job's wait for the others to arrive)
            ran = yield stage, ctx
        else:
            stage.run(ctx)
        seconds = ran["seconds"] if ran else time.monotonic() - t0
        # Later stages always get the hand-off as saved (e.g. 16-bit audio, float32 fit), so a resumed
        # run, which loads it from disk, sees bit for bit what an uninterrupted run saw.
        stage.load(ctx)
        state["stages"][stage.name] = {"seconds": round(seconds, 3), "finished_at": now_iso()}
        if ran and len(ran["together"]) > 1:  # its seconds are the group's (shared), not this job's alone
            state["stages"][stage.name]["together"] = list(ran["together"])
        if ctx.results.features is not None:
            state["frames"] = ctx.results.features.num_frames
        ctx.job.write_state(state)
        ctx.log.info("%s: done in %.2f s", stage.name, state["stages"][stage.name]["seconds"])
        options.emit(event="stage_done", job=ctx.spec.id, stage=stage.name, seconds=state["stages"][stage.name]["seconds"])
    bar.close()


def _clear_folders(ctx: StageContext, stage: Stage) -> None:
    """Empty the folders `stage` would continue from (`_run_stages` says when)."""
    import shutil

    for name in stage.resumes:
        folder = ctx.job.path(name)
        if folder.is_dir() and any(folder.iterdir()):
            shutil.rmtree(folder)
            ctx.log.info("%s: cleared %s (made for other inputs)", stage.name, name)


def _remove_intermediates(job: JobDir, state: dict, folders: tuple[str, ...], log: logging.Logger) -> None:
    """Delete bulky intermediates of a done job (after its state says done, so a crash in between
    leaves a done job with extra files, never a half-deleted unfinished one)."""
    import shutil

    removed = [name for name in folders if job.path(name).is_dir()]
    for name in removed:
        shutil.rmtree(job.path(name))
    if removed:
        state["removed_intermediates"] = removed
        job.write_state(state)
        log.info("removed intermediates: %s", ", ".join(removed))


def _is_environment_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS


def _environment_message(exc: BaseException, job: JobDir) -> str | None:
    if not _is_environment_error(exc):
        return None
    where = exc.filename or job.root
    return (f"{ENVIRONMENT_ERRNOS[exc.errno]} while writing {where}; fix it and re-run: "
            "finished stages are kept and the job resumes")


def _write_state_quietly(job: JobDir, state: dict, log: logging.Logger) -> None:
    """Recording a failure must not itself fail the batch (e.g. the disk is still full)."""
    try:
        job.write_state(state)
    except OSError as exc:
        log.error("could not record the job state: %s", exc)


def _fail(job: JobDir, state: dict, log: logging.Logger, message: str, t0: float, action: str,
          retryable: bool = False) -> JobResult:
    state.update(state="failed", error=message, retryable=retryable, finished_at=now_iso())
    _write_state_quietly(job, state, log)
    log.error("failed: %s", message)
    return JobResult(state["id"], "failed", time.monotonic() - t0, error=message, output=str(job.root), action=action)


def _job_logger(job: JobDir) -> tuple[logging.Logger, logging.Handler]:
    log = logging.getLogger(f"vlogger.job.{job.root.name}")
    log.setLevel(logging.INFO)
    log.propagate = False
    # log.txt is append-only history across runs (not an artifact that is replaced).
    handler = logging.FileHandler(job.path("log.txt"), encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    return log, handler


def format_result(result: JobResult, output_root: Path) -> str:
    if result.action == "skip-failed":
        return f"FAILED  {result.id}: (before, same config; --retry-failed tries again) {result.error}"
    if result.state == "failed":
        return f"FAILED  {result.id}: {result.error}"
    if result.state in ("busy", "not-started"):
        return f"{result.state:7s} {result.id}: {result.error}"
    if result.state == "skipped":
        return f"skipped {result.id}: already done with the same config ({Path(result.output)}; --force redoes it)"
    return f"done    {result.id} in {result.seconds:.1f} s -> {result.output}"


def write_summary(output_root: Path, all_specs: Sequence[JobSpec], results: Sequence[JobResult]) -> Path:
    """`OUTPUT/summary.json`: every job of the manifest, from this run or from its saved state."""
    by_id = {r.id: r for r in results}
    rows = []
    for spec in all_specs:
        job = JobDir(output_root, spec.id)
        saved = job.read_state() or {}
        r = by_id.get(spec.id)
        rows.append(
            {
                "id": spec.id,
                "state": saved.get("state", "pending"),
                "this_run": r.action if r else "not selected",
                "seconds": round(r.seconds, 3) if r else None,
                "frames": saved.get("frames"),
                "output": str(job.root) if job.root.exists() else None,
                "error": saved.get("error") if saved.get("state") == "failed" else None,
            }
        )
    path = Path(output_root) / "summary.json"
    atomic_write_json(path, {"jobs": rows, "written_at": now_iso()})
    return path


def summary_table(summary_path: Path) -> str:
    """The batch report for the terminal: job, state, duration, frames, output, error."""
    import json

    rows = json.loads(Path(summary_path).read_text())["jobs"]
    header = ("job", "state", "seconds", "frames", "output", "error")
    cells = [
        (r["id"], r["state"], "" if r["seconds"] is None else f"{r['seconds']:.1f}",
         "" if r["frames"] is None else str(r["frames"]), r["output"] or "", r["error"] or "")
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header[:-1])]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  error"]
    lines += [("  ".join(v.ljust(w) for v, w in zip(c, widths)) + "  " + c[-1]).rstrip() for c in cells]
    return "\n".join(lines)
