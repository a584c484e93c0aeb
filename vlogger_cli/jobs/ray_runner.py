"""Distributed rendering: each job becomes a Ray task (`vlogger render --ray auto|ADDRESS`).

Same job store, same locks, same resume semantics as the local runner — a task simply calls
`run_job` on the worker. One GPU per task when the cluster has GPUs, one CPU otherwise. Ray stays
optional (`pip install 'vlogger[ray]'`).

`--ray auto` joins a running cluster (RAY_ADDRESS or a local head) or, if none, starts a private
local instance whose temporary files live under `OUTPUT/.ray` (Ray otherwise writes into the home
folder and /tmp; see `ray_temp_dir` for long output paths), with token auth off because it listens
on loopback only.

Threads and GPUs (`vlogger_cli/threads.py`): each task asks Ray for `ray_task_cpus` CPUs — one per task on
CPU-only nodes (one job per core), a GPU's share of its node's cores on GPU nodes, cores / N with
`--workers N`, or `--threads` — and runs with that many torch threads; Ray pins its GPU
(CUDA_VISIBLE_DEVICES) through `num_gpus=1`.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from vlogger_cli.errors import ManifestError
from vlogger_cli.jobs.runner import JobResult, RunOptions, format_result, run_job
from vlogger_cli.manifest import JobSpec


def _ray():
    try:
        import ray
    except ImportError:
        raise ManifestError("--ray needs Ray, which is not installed: pip install 'vlogger[ray]' (or: pip install ray)") from None
    return ray


def _remote_job(spec: JobSpec, output_root: str, options: RunOptions, threads: int = 1) -> JobResult:
    from vlogger_cli.threads import process_threads

    with process_threads(threads):  # Ray's worker processes are reused: set it for every task
        return run_job(spec, Path(output_root), options)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Ray retries an unreachable head for minutes; a plain TCP connect says so in seconds."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ManifestError(f"--ray {address}: expected auto or HOST:PORT of the Ray head (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ManifestError(f"--ray {address}: cannot connect ({exc.strerror or exc}); check the address (ray status)") from None


def connect(address: str, output_root: Path):
    """Join or start Ray; returns (ray module, started_here)."""
    ray = _ray()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if address != "auto":
        _check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ManifestError(f"--ray {address}: cannot connect ({exc}); check the address (ray status)") from None
        return ray, False
    try:
        ray.init(address="auto", log_to_driver=False)
        return ray, False
    except (ConnectionError, ValueError, RuntimeError):
        pass
    temp_dir = ray_temp_dir(output_root)
    temp_dir.mkdir(parents=True, exist_ok=True)
    from vlogger_cli.threads import available_cores

    ray.init(num_cpus=available_cores(), include_dashboard=False, log_to_driver=False, _temp_dir=str(temp_dir))
    return ray, True


# Ray puts unix sockets at <temp_dir>/session_<date>_<pid>/sockets/plasma_store: about 70 bytes
# after temp_dir, and AF_UNIX paths are limited to 107 bytes.
_MAX_RAY_TEMP_LEN = 36


def ray_temp_dir(output_root: Path) -> Path:
    """`OUTPUT/.ray` when its path is short enough for Ray's sockets; otherwise a private short
    folder in the system temp dir (only Ray's runtime files; Ray removes the session on shutdown)."""
    preferred = (Path(output_root) / ".ray").resolve()
    if len(str(preferred)) <= _MAX_RAY_TEMP_LEN:
        return preferred
    import tempfile

    return Path(tempfile.gettempdir()) / f"vlogger-ray-{os.getuid()}"


def run_jobs_ray(
    specs: Sequence[JobSpec],
    output_root: Path,
    options: RunOptions,
    *,
    address: str = "auto",
    echo: Callable[[str], None] = print,
    workers: int | None = None,
    threads: int | None = None,
) -> list[JobResult]:
    """workers: jobs at a time per node (default: one per GPU, or one per core); threads: torch threads per task."""
    from vlogger_cli.threads import passive_openmp_env, ray_task_cpus

    output_root = Path(output_root).resolve()
    ray, started_here = connect(address, output_root)
    try:
        has_gpu = ray.cluster_resources().get("GPU", 0) >= 1
        nodes = [(n["Resources"].get("CPU", 0), n["Resources"].get("GPU", 0)) for n in ray.nodes() if n.get("Alive")]
        cpus = ray_task_cpus(nodes, workers, threads)
        # Ray's worker processes load torch before a task runs: the OpenMP wait policy must come with their start.
        task = ray.remote(num_gpus=1 if has_gpu else 0, num_cpus=cpus, max_retries=0,
                          runtime_env={"env_vars": passive_openmp_env()})(_remote_job)
        # Callbacks cannot travel to workers; events are emitted here as results come back.
        remote_options = replace(options, on_event=None, device="cuda" if has_gpu else "cpu")
        pending = {task.remote(spec, str(output_root), remote_options, cpus): spec for spec in specs}
        results: dict[str, JobResult] = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            spec = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - a worker died (OOM, node lost): the job failed, others go on
                result = JobResult(spec.id, "failed", error=f"Ray task failed ({type(exc).__name__}): {str(exc).splitlines()[0]}; re-run to resume")
            echo(format_result(result, output_root))
            options.emit(event="job_end", job=spec.id, state=result.state, action=result.action,
                         seconds=round(result.seconds, 3), frames=result.frames, error=result.error)
            results[spec.id] = result
        return [results[spec.id] for spec in specs]
    finally:
        if started_here:
            ray.shutdown()
