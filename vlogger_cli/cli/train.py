"""`vlogger train …`: training and the repo's own data recipes (thin: the work is in vlogger_cli.train).

torch is imported inside the commands only, so `vlogger --help` stays instant.
Exit codes: 0 done · 1 failed · 2 invalid command line or config.
"""

from __future__ import annotations

from pathlib import Path

import click

from vlogger_cli.cli._config import distributed_options, run_options


@click.group()
def train() -> None:
    """Train models and build the repo's own data sets."""


@train.command("motion")
@click.option("--data", "data", required=True, multiple=True, metavar="DIR[:WEIGHT]",
              help="Motion dataset folder (weights/README.md, 'Motion dataset'); repeat to mix datasets, windows "
                   "drawn in proportion to the weights (default 1), e.g. --data synth --data real:0.3.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: checkpoints, log.jsonl, and the exported weights in OUT/final.")
@run_options("TrainMotionConfig", "--set steps=2000 --set preset=base")
@click.option("--init", type=click.Path(file_okay=False, exists=True),
              help="Fine-tune: start from this motion weights folder (e.g. weights/motion), keeping its "
                   "normalisation.")
@distributed_options
def motion_command(data: tuple[str, ...], out: Path, config_file: Path | None, resume: bool, overrides: tuple[str, ...],
                   steps: int | None, seed: int | None, init: str | None, **runtime) -> None:
    """Train the stage-1 motion denoiser on a motion dataset (several GPUs: run it under torchrun)."""
    from vlogger_cli.cli._config import config_values
    from vlogger_cli.errors import VloggerError
    from vlogger_cli.train.motion import TrainMotionConfig, train_motion

    values = config_values(config_file, overrides, steps=steps, seed=seed, init=init, **runtime)
    try:
        cfg = TrainMotionConfig.from_dict(values)
    except (VloggerError, TypeError) as err:
        raise click.UsageError(str(err)) from None
    try:
        info = train_motion(list(data), out, cfg, resume=resume, log=click.echo)
    except VloggerError as err:
        raise click.ClickException(str(err)) from None
    if info.get("main", True):  # rank 0 of a torchrun job reports
        click.echo(f"done: {info['steps']} steps, validation loss {info['val_loss']}, weights in {out / 'final'}")


@train.command("synth-corpus")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Dataset folder to write.")
@click.option("--hours", type=float, help="About this many hours of speech.")
@click.option("--clips", type=int, help="Exactly this many clips (instead of --hours).")
@click.option("--seed", type=int, default=0, show_default=True, help="Corpus seed: fixes voices, texts, prosody settings and behaviour (espeak-ng adds ms-level jitter).")
@click.option("--fps", type=float, default=25.0, show_default=True, help="Motion frame rate.")
def synth_corpus_command(out: Path, hours: float | None, clips: int | None, seed: int, fps: float) -> None:
    """Speak generated sentences with many espeak-ng voices and derive motion targets from the phoneme timings."""
    from vlogger_cli.errors import VloggerError
    from vlogger_cli.motion.corpus import build_corpus

    if (hours is None) == (clips is None):
        raise click.UsageError("give exactly one of --hours / --clips")

    def progress(i: int, seconds: float) -> None:
        if i % 50 == 0:
            click.echo(f"{i} clips, {seconds / 3600:.2f} h")

    try:
        info = build_corpus(out, clips=clips, hours=hours, seed=seed, fps=fps, progress=progress)
    except VloggerError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"wrote {info['clips']} clips ({info['seconds'] / 3600:.2f} h) to {out}")


@train.command("prepare-videos")
@click.argument("videos", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Motion dataset folder to create or extend (the format `vlogger train motion` reads).")
@click.option("--fps", type=float, default=25.0, show_default=True, help="Motion frame rate.")
@click.option("--max-seconds", type=click.FloatRange(0, min_open=True), default=None,
              help="Use (and track) only the first seconds of each video (the same tracks as "
                   "`train video-data --max-seconds`).")
def prepare_videos_command(videos: tuple[Path, ...], out: Path, fps: float, max_seconds: float | None) -> None:
    """Track talking VIDEOS (with sound) into stage-1 training clips: tracked motion + speech.

    Re-running skips videos already in the dataset; a video without a face or without sound is reported and
    skipped (exit code 1 when any was), the others are still added.
    """
    import sys

    from vlogger_cli.errors import VloggerError
    from vlogger_cli.motion.prepare import prepare_videos

    try:
        report = prepare_videos(list(videos), out, fps=fps, max_seconds=max_seconds, progress=lambda v, msg: click.echo(f"{v}: {msg}"))
    except VloggerError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"added {report['added']}, already there {report['skipped']}, failed {len(report['failed'])} -> {out}")
    for video, error in report["failed"]:
        click.echo(f"error: {error}", err=True)
    sys.exit(1 if report["failed"] else 0)


def _attach_video_commands() -> None:
    """`train video`, `train sr`, `train video-synth`, `train video-data`, `train mouth` live in cli/train_video.py (click only,
    no torch)."""
    try:
        from vlogger_cli.cli.train_video import mouth, sr, video, video_data, video_synth
    except ImportError:
        return
    for command in (video, sr, video_synth, video_data, mouth):
        train.add_command(command)


_attach_video_commands()
