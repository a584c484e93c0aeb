"""`vlogger eval VIDEO... | OUTPUT_ROOT`: measure talking videos (identity, sharpness, lip sync, motion,
file facts; against a reference video when given): a table on the terminal, JSON, per-frame plots.

A render's output folder as argument scores each finished job with the job's own portrait and speech and
writes `eval.json` and `eval.png` into the job's folder. A video that cannot be measured (no face, not a
video) is one error line; the others are still measured (exit 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vlogger_cli.cli.render import EXIT_INVALID, EXIT_JOBS_FAILED, EXIT_OK


@click.command(name="eval")
@click.argument("inputs", nargs=-1, required=True, metavar="VIDEO... | OUTPUT_ROOT",
                type=click.Path(exists=True, path_type=Path))
@click.option("--portrait", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The photo the video should look like (identity to portrait).")
@click.option("--audio", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The speech the lips should follow (default: the video's own audio track).")
@click.option("--reference-video", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Ground truth to compare frame by frame (face PSNR, SSIM, landmark error).")
@click.option("--control", "controls", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Unrelated speech for the lip-sync specificity test (added to the shipped controls; repeatable).")
@click.option("--identity-frames", type=click.IntRange(1), metavar="N",
              help="Measure identity on N frames evenly spread (default: every frame; ~0.08 s a frame).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results as a JSON list, one object per video ('-': to stdout).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Write per-frame curves as PNG (several videos: OUT-<video name>.png each).")
def eval_(inputs: tuple[Path, ...], portrait: Path | None, audio: Path | None, reference_video: Path | None,
          controls: tuple[Path, ...], identity_frames: int | None, json_out: Path | None,
          plot: Path | None) -> None:
    """Measure talking videos: identity against the portrait, face sharpness (CPBD), lip sync against the
    speech (with its offset in ms and a specificity test), landmark jitter, head motion, blinks, file facts.

    Exit code: 0 all measured, 1 some video could not be measured, 2 invalid arguments.

    \b
    Examples:
      vlogger eval talk.mp4 --portrait me.jpg --json talk.json --plot talk.png
      vlogger eval out/demo                      # every finished job; eval.json + eval.png per job
      vlogger eval render.mp4 --reference-video real.mp4
    """
    from vlogger_cli.eval.job_folders import is_output_root

    videos = [p for p in inputs if not is_output_root(p)]
    if any(p.is_dir() for p in videos):
        folder = next(p for p in videos if p.is_dir())
        _invalid(f"{folder}: a folder without job folders; pass video files or a render's output folder")
    if len(videos) > 1 and (audio or reference_video or portrait):
        _invalid("--portrait, --audio and --reference-video belong to one video: pass one video with them")
    if json_out is not None and str(json_out) != "-" and json_out.suffix.lower() != ".json":
        _invalid(f"--json {json_out}: name a .json file (or '-' for stdout)")

    from vlogger_cli.errors import VloggerError
    from vlogger_cli.eval import report
    from vlogger_cli.eval.job_folders import EVAL_JSON, EVAL_PNG, finished_jobs
    from vlogger_cli.eval.measure import evaluate_video

    # (video, portrait, audio, reference, job folder or None)
    tasks = [(v, portrait, audio, reference_video, None) for v in videos]
    for root in (p for p in inputs if is_output_root(p)):
        jobs, skipped = finished_jobs(root)
        for line in skipped:
            click.echo(f"skipped {line}", err=True)
        tasks += [(job.video, job.portrait, job.audio, None, job.folder) for job in jobs]
    if not tasks:
        click.echo("error: no finished job to measure; render first (vlogger render)", err=True)
        sys.exit(EXIT_JOBS_FAILED)

    out = sys.stderr if json_out is not None and str(json_out) == "-" else sys.stdout
    results, failed = [], 0
    for video, task_portrait, task_audio, reference, folder in tasks:
        try:
            result = evaluate_video(video, portrait=task_portrait, audio=task_audio, reference_video=reference,
                                    controls=controls, identity_frames=identity_frames,
                                    progress=sys.stderr.isatty())
        except VloggerError as err:
            click.echo(f"error: {err}", err=True)
            results.append({"video": str(video), "error": str(err)})
            failed += 1
            continue
        results.append(result)
        click.echo(report.video_table(result), file=out)
        if folder is not None:
            report.write_json(folder / EVAL_JSON, result)
            report.write_plot(result, folder / EVAL_PNG)
            click.echo(f"  wrote {folder / EVAL_JSON}, {folder / EVAL_PNG}", file=out)
        if plot is not None:
            target = plot if len(tasks) == 1 else plot.with_name(f"{plot.stem}-{video.stem}{plot.suffix or '.png'}")
            report.write_plot(result, target)
            click.echo(f"  wrote {target}", file=out)
    if len(tasks) > 1 or len(videos) < len(inputs):  # several videos, or a render's jobs: one row each
        click.echo("\n" + report.summary_table(results), file=out)
    if json_out is not None:
        if str(json_out) == "-":
            click.echo(report.dumps(results))
        else:
            report.write_json(json_out, results)
            click.echo(f"wrote {json_out}", file=out)
    sys.exit(EXIT_JOBS_FAILED if failed else EXIT_OK)


def _invalid(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_INVALID)
