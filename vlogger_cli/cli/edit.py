"""`vlogger edit VIDEO -o OUT.mp4 [edits]`: edit one talking video (one `kind: edit` job, run like render's).

The job's folder (every artifact: the track, tracked and edited motion, masks, chunks; the resume points)
is `--work DIR`, by default `OUT.vlogger/` next to the output: running the same command again resumes an
interrupted edit, and does nothing when it is done. The finished video is copied to OUT atomically.
"""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import click

from vlogger_cli.cli.render import EXIT_INVALID, EXIT_JOBS_FAILED, EXIT_OK, _resolve_device, _sigterm_to_interrupt

JOB_ID = "edit"


def _option(parse):
    def callback(ctx, param, value):
        if value is None:
            return None
        try:
            parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        return value

    return callback


def _expression(value):
    from vlogger_cli.edit.options import parse_expression

    return parse_expression(value)


def _frames(value):
    from vlogger_cli.edit.options import parse_frames

    return parse_frames(value)


@click.command()
@click.argument("video", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The edited video (MP4).")
@click.option("--keep-lips", is_flag=True, help="Keep the mouth exactly as filmed (pixels and lip motion).")
@click.option("--eyes", type=click.Choice(["source", "closed", "open"]), default="source", show_default=True)
@click.option("--expression", default="source", show_default=True, callback=_option(_expression),
              metavar="source|neutral|smile|NAME=V,..", help="Face expression; ARKit names with values 0..1.")
@click.option("--head", type=click.Choice(["source", "still", "generate"]), default="source", show_default=True,
              help="Head motion: as filmed, held at the first frame's pose, or new from the speech (stage 1).")
@click.option("--audio", type=click.Path(dir_okay=False, path_type=Path), help="New speech (re-drives the lips).")
@click.option("--text", help="New speech spoken by the local TTS (re-drives the lips).")
@click.option("--voice", default="gmw/en-us", show_default=True, help="TTS voice for --text.")
@click.option("--frames", callback=_option(_frames), metavar="A:B", help="Edit frames A..B-1 only.")
@click.option("--renderer", type=click.Choice(["diffusion", "warp"]), default="diffusion", show_default=True,
              help="Edited regions by stage-2 inpainting, or by the fast warp of the source frame.")
@click.option("--resolution", type=click.Choice(["128", "256", "512"]), default="256", show_default=True,
              help="Side of the square the edit is generated at (pasted back at the video's own size).")
@click.option("--steps", type=click.IntRange(1, 1000), default=10, show_default=True, help="Stage-2 sampling steps.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--fps", type=click.FloatRange(1, 60), help="Output frame rate (default: the source's).")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the job's artifacts and resume points (default: OUT.vlogger/).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--force", is_flag=True, help="Redo the edit even if it is done.")
@click.option("--threads", type=click.IntRange(min=1), metavar="N",
              help="torch CPU threads [default: OMP_NUM_THREADS if set, else the cores this process may use]. "
                   "Beside other renders on one machine: cores / processes.")
def edit(video: Path, out: Path, keep_lips: bool, eyes: str, expression: str, head: str, audio: Path | None,
         text: str | None, voice: str, frames: str | None, renderer: str, resolution: str, steps: int, seed: int,
         fps: float | None, work: Path | None, device: str, force: bool, threads: int | None) -> None:
    """Edit the talking video VIDEO into OUT: close the eyes, change the expression or the head motion,
    or dub it with new speech, keeping the lips as filmed with --keep-lips.

    Exit code: 0 done, 1 the edit failed (the message names the file and the fix), 2 invalid arguments.

    \b
    Examples:
      vlogger edit talk.mp4 -o closed.mp4 --keep-lips --eyes closed
      vlogger edit talk.mp4 -o dub.mp4 --text "Hello again" --head generate
      vlogger edit talk.mp4 -o smile.mp4 --expression smile --frames 50:120 --renderer warp
    """
    from vlogger_cli.errors import ManifestError
    from vlogger_cli.manifest import JobSpec
    from vlogger_cli.threads import prefer_passive_openmp

    prefer_passive_openmp()  # before anything loads torch (vlogger_cli/threads.py says why)
    try:
        spec = _spec(video, out, keep_lips=keep_lips, eyes=eyes, expression=expression, head=head, audio=audio,
                     text=text, voice=voice, frames=frames, renderer=renderer, resolution=int(resolution),
                     steps=steps, seed=seed, fps=fps)
        device = _resolve_device(device)
        if renderer == "diffusion":
            _check_cascade(int(resolution))
        work = (work or out.with_name(out.name + ".vlogger")).resolve()
        _check_paths(video, out, work)
    except (ManifestError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    assert isinstance(spec, JobSpec)

    from vlogger_cli.jobs.runner import RunOptions, format_result, run_job
    from vlogger_cli.threads import available_cores, process_threads, render_threads

    signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    try:
        with process_threads(render_threads(available_cores(), 1, threads)):
            result = run_job(spec, work, RunOptions(device=device, force=force, retry_failed=True))
    except KeyboardInterrupt:
        click.echo("interrupted: re-run the same command to resume", err=True)
        sys.exit(130)
    if result.state not in ("done", "skipped"):
        click.echo(f"error: {result.error}", err=True)
        sys.exit(EXIT_JOBS_FAILED)
    click.echo(format_result(result, work), err=True)
    _deliver(work / JOB_ID / f"{JOB_ID}.mp4", out)
    click.echo(f"wrote {out}")
    sys.exit(EXIT_OK)


def _spec(video: Path, out: Path, *, keep_lips, eyes, expression, head, audio, text, voice, frames, renderer,
          resolution, steps, seed, fps):
    from vlogger_cli.edit.options import EditOptions, parse_expression, parse_frames
    from vlogger_cli.errors import ManifestError
    from vlogger_cli.manifest import JobSpec

    if not video.is_file():
        raise ManifestError(f"{video}: video not found; check the path")
    if audio is not None and text is not None:
        raise ManifestError("give --audio or --text, not both")
    if audio is not None and not audio.is_file():
        raise ManifestError(f"--audio {audio}: file not found; check the path")
    if text is not None and not text.strip():
        raise ManifestError("--text is empty; give the words to speak")
    if out.suffix.lower() != ".mp4":
        raise ManifestError(f"-o {out}: the output is an MP4 video; name it like {out.with_suffix('.mp4').name}")
    options = EditOptions(keep_lips=keep_lips, eyes=eyes, expression=parse_expression(expression), head=head,
                          frames=parse_frames(frames), new_speech=audio is not None or text is not None)
    if not options.edits_anything:
        raise ManifestError("nothing to edit: give --eyes, --expression, --head, --audio or --text "
                            "(--keep-lips alone keeps what is already there)")
    return JobSpec(id=JOB_ID, kind="edit", video=video.resolve(), audio=audio.resolve() if audio else None,
                   text=text.strip() if text else None, voice=voice, keep_lips=keep_lips, eyes=eyes,
                   expression=str(options.expression), head=head,
                   frames=frames if frames is None else _normal_frames(frames), renderer=renderer,
                   resolution=resolution, steps=steps, seed=seed, fps=fps)


def _check_cascade(resolution: int) -> None:
    """Stage 2's models for this resolution exist: say so before the (long) tracking, not after it."""
    from vlogger_cli.errors import JobError, ManifestError
    from vlogger_cli.paths import weights_dir
    from vlogger_cli.video.render import cascade_folders

    try:
        cascade_folders(weights_dir(), resolution)
    except JobError as err:
        raise ManifestError(f"--renderer diffusion --resolution {resolution}: {err}; or use --renderer warp") from None


def _normal_frames(frames: str) -> str:
    from vlogger_cli.edit.options import format_frames, parse_frames

    return format_frames(parse_frames(frames))


def _check_paths(video: Path, out: Path, work: Path) -> None:
    from vlogger_cli.errors import ManifestError

    if out.resolve() == video.resolve():
        raise ManifestError(f"-o {out} is the input video; write the edit to another file")
    if not re.fullmatch(r"[^\x00]+", str(out)):
        raise ManifestError(f"-o {out}: not a usable file name")
    for folder in (out.resolve().parent, work):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ManifestError(f"{folder}: cannot create it ({exc.strerror}); choose a writable folder") from None


def _deliver(produced: Path, out: Path) -> None:
    """Copy the job's video to OUT atomically (a reader never sees half a file)."""
    import shutil

    from vlogger_cli.io import atomic_path

    with atomic_path(out) as tmp:
        shutil.copyfile(produced, tmp)
