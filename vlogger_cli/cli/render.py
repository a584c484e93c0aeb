"""`vlogger render MANIFEST`: validate the whole manifest, then run each job through every stage."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

EXIT_OK, EXIT_JOBS_FAILED, EXIT_INVALID = 0, 1, 2


def _batch_windows(ctx, param, value: str) -> int | str:
    """'auto' or a whole number >= 1 (parsed here, without importing torch: see prefer_passive_openmp)."""
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if not text.isdigit() or int(text) < 1:
        raise click.BadParameter(f"give a whole number >= 1 or auto, not {value!r}")
    return int(text)


def _compile_backend(flag: bool, backend: str | None) -> str | None:
    """--compile-backend NAME, --compile (inductor), or VLOGGER_COMPILE (1 / a backend name); None: eager."""
    from vlogger_cli.video.compile import DEFAULT_BACKEND, backend_from_env

    if backend:
        return backend
    return DEFAULT_BACKEND if flag else backend_from_env()


def _split_ids(ctx, param, value: str | None) -> list[str] | None:
    if value is None:
        return None
    ids = [v.strip() for v in value.split(",") if v.strip()]
    if not ids:
        raise click.BadParameter("give job ids separated by commas, e.g. --jobs intro,dub")
    return ids


@click.command()
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("out"),
              show_default=True, help="Output root; each job writes into OUTPUT/<job id>/.")
@click.option("--jobs", "job_ids", callback=_split_ids, metavar="ID[,ID..]", help="Run only these jobs.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where the models run; auto takes CUDA when present.")
@click.option("--force", is_flag=True, help="Redo jobs that are already done.")
@click.option("--dry-run", is_flag=True, help="Validate and show what would run, resume or be skipped.")
@click.option("--retry-failed", is_flag=True, help="Try again jobs that failed before with the same config.")
@click.option("--max-failures", type=click.IntRange(min=1), metavar="N", help="Start no new job after N failures.")
@click.option("--ray", "ray_address", metavar="auto|ADDRESS",
              help="Run jobs as Ray tasks: 'auto' joins a running cluster or starts a local one; or a cluster address.")
@click.option("--keep-intermediates", type=click.Choice(["all", "chunks", "none"]), default="all", show_default=True,
              help="What stays in a finished job's folder: all; chunks (drop controls/); none (drop controls/ and chunks/).")
@click.option("--json", "json_lines", is_flag=True,
              help="Machine-readable progress: one JSON object per line on stdout (human lines go to stderr).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="Render N jobs at a time in N local processes, one GPU each (round robin) and cores / N torch "
                   "threads each. With --ray: N jobs per node.")
@click.option("--threads", type=click.IntRange(min=1), metavar="N",
              help="torch CPU threads per renderer process [default: OMP_NUM_THREADS if set, else the cores this "
                   "process may use / --workers]. Several renders started by hand on one machine: cores / renders each.")
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp32"]), default="auto", show_default=True,
              help="The stage-2 denoiser's arithmetic: auto = bf16 on CUDA, fp32 on the CPU (as train --precision); "
                   "fp32 renders are bit-reproducible.")
@click.option("--batch-windows", default="1", show_default=True, metavar="N|auto", callback=_batch_windows,
              help="Denoise the windows of up to N jobs in one batch (one GPU, throughput): jobs run their stages up "
                   "to frames, render their windows together, then finish. auto: up to 8 jobs on CUDA, as many "
                   "windows per batch as fit in free GPU memory; 1 on the CPU. Frames agree with one-at-a-time "
                   "renders to float tolerance; every window is still saved as it finishes (resumable).")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile the stage-2 denoiser once per process (also VLOGGER_COMPILE=1); falls back to "
                   "eager with one warning where it cannot compile.")
@click.option("--compile-backend", metavar="NAME",
              help="torch.compile backend for --compile (implies it) [default: inductor; VLOGGER_COMPILE=NAME].")
def render(manifest: Path, output: Path, job_ids: list[str] | None, device: str, force: bool, dry_run: bool,
           retry_failed: bool, max_failures: int | None, ray_address: str | None, keep_intermediates: str,
           json_lines: bool, workers: int, threads: int | None, precision: str, batch_windows: int | str,
           compile_: bool, compile_backend: str | None) -> None:
    """Render the jobs of MANIFEST (YAML) into OUTPUT/<job id>/.

    The manifest is validated completely before anything starts. Finished jobs with an unchanged
    config are skipped; interrupted ones resume. Exit code: 0 all done, 1 some job failed,
    2 invalid manifest or command line.

    \b
    Example:
      vlogger render manifests/demo.yaml --output out/demo --jobs hello
    """
    from vlogger_cli.errors import ManifestError
    from vlogger_cli.manifest import load_manifest
    from vlogger_cli.threads import prefer_passive_openmp

    prefer_passive_openmp()  # before anything loads torch (vlogger_cli/threads.py says why)
    try:
        parsed = load_manifest(manifest)
        specs = parsed.select(job_ids) if job_ids else parsed.jobs
        device = _resolve_device(device)
        _check_output_root(output)
    except ManifestError as exc:
        for line in getattr(exc, "problems", [str(exc)]):
            click.echo(f"error: {line}", err=True)
        sys.exit(EXIT_INVALID)

    from vlogger_cli.jobs.runner import RunOptions, plan_action, run_jobs, summary_table, write_summary
    from vlogger_cli.jobs.store import JobDir, config_hash

    if dry_run:
        for spec in specs:
            action = plan_action(JobDir(output, spec.id).read_state(), config_hash(spec), force, retry_failed)
            click.echo(f"{action:11s} {spec.id}  ({describe_job(spec)}; renderer {spec.renderer})")
        sys.exit(EXIT_OK)

    import json

    def echo(line: str) -> None:
        click.echo(line, err=json_lines)

    def on_event(event: dict) -> None:
        click.echo(json.dumps(event, sort_keys=True))

    from vlogger_cli import pipeline

    inference = pipeline.InferenceSettings(precision=precision, compile=_compile_backend(compile_, compile_backend),
                                           batch_windows=batch_windows)
    options = RunOptions(device=device, force=force, retry_failed=retry_failed,
                         pipelines={"render": pipeline.STAGES, "edit": pipeline.EDIT_STAGES},
                         remove_when_done=pipeline.INTERMEDIATES[keep_intermediates],
                         on_event=on_event if json_lines else None, inference=inference)
    if batch_windows != 1 and ray_address:
        echo("note: --ray runs one job per task, so --batch-windows batches nothing across jobs there")
    from vlogger_cli.threads import available_cores, process_threads, render_threads, thread_choice

    signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    try:
        if ray_address:
            from vlogger_cli.jobs.ray_runner import run_jobs_ray

            results = run_jobs_ray(specs, output, options, address=ray_address, echo=echo,
                                   workers=workers if workers > 1 else None, threads=threads)
        elif workers > 1:
            from vlogger_cli.jobs.workers import run_jobs_workers

            workers = min(workers, len(specs))  # no idle processes
            per_worker, why = thread_choice(available_cores(), workers, threads)
            gpus = _gpus_for_workers(device)
            echo(f"{workers} workers, {per_worker} torch thread(s) each ({why})"
                 + (f", GPUs {','.join(gpus)} round robin" if gpus else ""))
            results = run_jobs_workers(specs, output, options, workers=workers, threads=per_worker, gpus=gpus,
                                       max_failures=max_failures, echo=echo)
        else:
            with process_threads(render_threads(available_cores(), 1, threads)):
                results = run_jobs(specs, output, options, max_failures=max_failures, echo=echo)
    except ManifestError as exc:  # e.g. --ray without Ray installed
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    except KeyboardInterrupt:
        click.echo("interrupted: the job in flight is marked interrupted; re-run the same command to resume", err=True)
        sys.exit(130)
    summary = write_summary(output, parsed.jobs, results)
    failed = [r for r in results if r.state == "failed"]
    echo("\n" + summary_table(summary))
    done = sum(r.state in ("done", "skipped") for r in results)
    echo(f"\n{done} of {len(results)} job(s) done; summary: {summary}")
    sys.exit(EXIT_JOBS_FAILED if failed else EXIT_OK)


def describe_job(spec) -> str:
    """One line about a job's inputs for --dry-run."""
    if spec.kind == "edit":
        return f"edit {spec.video.name}" + (f" + new speech {'text' if spec.text else spec.audio.name}"
                                            if (spec.text or spec.audio) else "")
    return "text" if spec.text else str(spec.audio)


def _sigterm_to_interrupt(signum, frame) -> None:
    """SIGTERM (pre-emption, `kill`) stops like Ctrl-C: the job in flight is saved as interrupted.

    Not in the middle of an import: a KeyboardInterrupt raised while an extension module initialises comes
    back as "ImportError: initialization failed", and one raised inside Python code an extension runs through
    PyRun (pybind11) makes the interpreter exit by SIGINT whatever exit code the CLI then asks for (-2, not
    130). The interrupt is tried again every INTERRUPT_RETRY seconds until the import is over."""
    if _importing(frame) and hasattr(signal, "setitimer"):
        signal.signal(signal.SIGALRM, _sigterm_to_interrupt)
        signal.setitimer(signal.ITIMER_REAL, INTERRUPT_RETRY)
        return
    raise KeyboardInterrupt


INTERRUPT_RETRY = 0.05


def _importing(frame) -> bool:
    """Whether the interrupted Python frame runs inside an import (importlib's frames are on its stack)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _check_output_root(output: Path) -> None:
    """An output root we cannot create or write to is a command-line error: nothing starts."""
    import os

    from vlogger_cli.errors import ManifestError

    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ManifestError(f"--output {output}: cannot create it ({exc.strerror}); choose a writable folder") from None
    if not os.access(output, os.W_OK | os.X_OK):
        raise ManifestError(f"--output {output}: not writable; choose a writable folder or fix its permissions")


def _gpus_for_workers(device: str) -> list[str]:
    """The GPUs local workers are pinned to: none for --device cpu, else the visible CUDA devices."""
    if device == "cpu":
        return []
    import os

    import torch

    from vlogger_cli.threads import visible_gpus

    return visible_gpus(os.environ, torch.cuda.device_count())


def _resolve_device(device: str) -> str:
    """'auto' stays symbolic until a stage needs torch; an explicit 'cuda' is checked now."""
    if device != "cuda":
        return device
    import torch

    from vlogger_cli.errors import ManifestError

    if not torch.cuda.is_available():
        raise ManifestError("--device cuda: no CUDA device is visible; use --device cpu or --device auto")
    return device
