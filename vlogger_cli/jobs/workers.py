"""Several renderers on one machine: `vlogger render --workers N`.

N worker processes, each a fresh interpreter (spawned, so its GPU pinning and thread count hold from its
first torch call), take jobs one at a time from this driver and run `run_job` — the same store, locks
and resume rules as the in-process runner and the Ray tasks. The driver hands a job to a worker only
when that worker is idle, so each job runs once per command (with --force too) and --max-failures stops
new jobs as in the local runner. Worker i gets GPU i (round robin over the visible GPUs; none on a CPU
run) and its share of the cores as torch threads (`vlogger_cli/threads.py`).

With batched windows (`--batch-windows`, runner.py) a worker takes a group of jobs at a time and renders their
windows together on its GPU. A worker that dies (killed, out of memory) fails the jobs it held, with a one-line
error; the others go on.
Ctrl-C or SIGTERM stops every worker; their jobs in flight are saved as interrupted and resume on a re-run.
"""

from __future__ import annotations

import queue
import signal
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from vlogger_cli.jobs.runner import JobResult, RunOptions, format_result, run_group, run_job
from vlogger_cli.manifest import JobSpec
from vlogger_cli.threads import environment, process_threads, worker_env

STOP_GRACE_S = 60.0   # how long stopped workers get to save their job as interrupted


def _interrupt(signum, frame) -> None:
    """The first SIGTERM/SIGINT stops the job in flight (saved as interrupted); later ones must not
    interrupt that save."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _worker(index: int, threads: int, output_root: str, options: RunOptions, events: bool, tasks, results) -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    if events:
        options = replace(options, on_event=lambda event: results.put(("event", index, event)))
    try:
        with process_threads(threads):
            while (specs := tasks.get()) is not None:  # one job, or a group whose windows are batched
                if len(specs) == 1:
                    results.put(("result", index, run_job(specs[0], Path(output_root), options)))
                else:
                    run_group(deque(specs), Path(output_root), options, len(specs),
                              lambda result: results.put(("result", index, result)))
    except KeyboardInterrupt:  # run_job / run_group saved the jobs in flight as interrupted
        return


def run_jobs_workers(
    specs: Sequence[JobSpec],
    output_root: Path,
    options: RunOptions,
    *,
    workers: int,
    threads: int,
    gpus: Sequence[str] = (),
    max_failures: int | None = None,
    echo: Callable[[str], None] = print,
) -> list[JobResult]:
    """Run `specs` on `workers` local processes of `threads` torch threads each, pinned to `gpus` round robin."""
    import multiprocessing

    output_root = Path(output_root).resolve()
    output_root.mkdir(parents=True, exist_ok=True)
    mp = multiprocessing.get_context("spawn")
    results_q = mp.Queue()
    envs = [worker_env(i, gpus, threads) for i in range(max(1, min(workers, len(specs))))]
    tasks = [mp.Queue() for _ in envs]
    # Callbacks cannot travel to workers: they send events back, emitted here.
    remote = replace(options, on_event=None)
    procs = [mp.Process(target=_worker, name=f"vlogger-worker-{i}", args=(i, threads, str(output_root), remote,
                                                                          options.on_event is not None, tasks[i], results_q))
             for i in range(len(envs))]
    pending, in_flight, results = deque(specs), {}, {}  # in_flight: worker -> its jobs not yet reported
    together = options.jobs_together()

    def report(result: JobResult, i: int | None) -> None:
        results[result.id] = result
        echo(format_result(result, output_root))
        where = {} if i is None else {"worker": i, "gpu": envs[i].get("CUDA_VISIBLE_DEVICES"), "threads": threads}
        options.emit(event="job_end", job=result.id, state=result.state, action=result.action,
                     seconds=round(result.seconds, 3), frames=result.frames, error=result.error, **where)

    def finish(i: int, result: JobResult) -> bool:
        """Report a result of worker i; True when the worker has reported all the jobs it was given."""
        in_flight[i] = [s for s in in_flight[i] if s.id != result.id]
        report(result, i)
        if not in_flight[i]:
            in_flight.pop(i)
            return True
        return False

    def dispatch(i: int) -> None:
        failures = sum(r.state == "failed" and r.action != "skip-failed" for r in results.values())
        if pending and not (max_failures is not None and failures >= max_failures):
            in_flight[i] = [pending.popleft() for _ in range(min(together, len(pending)))]
            tasks[i].put(in_flight[i])
        else:
            tasks[i].put(None)

    try:
        for i, proc in enumerate(procs):
            with environment(envs[i]):  # inherited by the worker before it imports anything
                proc.start()
            dispatch(i)
        while in_flight:
            try:
                kind, i, payload = results_q.get(timeout=1.0)
            except queue.Empty:  # no news for a second: has a worker died holding a job?
                for dead in [i for i in in_flight if not procs[i].is_alive()]:
                    for spec in list(in_flight[dead]):
                        finish(dead, JobResult(spec.id, "failed", error=f"worker {dead} died (exit code "
                                               f"{procs[dead].exitcode}) while rendering it; re-run to resume"))
                continue
            if kind == "event":
                options.on_event({**payload, "worker": i})
            elif finish(i, payload):
                dispatch(i)
    except BaseException:  # Ctrl-C, SIGTERM (KeyboardInterrupt, see cli/render.py) or a bug here
        _stop(procs)
        raise
    finally:
        for proc in [p for p in procs if p.pid is not None]:
            proc.join(timeout=STOP_GRACE_S)
            if proc.is_alive():
                proc.kill()
                proc.join()
    # Left over: --max-failures was reached, or every worker died.
    reason = (f"--max-failures {max_failures} reached" if any(p.exitcode == 0 for p in procs) else "every worker died")
    for spec in pending:
        report(JobResult(spec.id, "not-started", action="stopped", error=f"not started: {reason}"), None)
    return [results[spec.id] for spec in specs]


def _stop(procs) -> None:
    """SIGTERM every live worker: each saves its job as interrupted (the first signal only; see `_interrupt`)."""
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
