"""`vlogger train video`, `vlogger train sr`, `vlogger train video-synth` and `vlogger train video-data`
(thin: the work is in vlogger_cli.train.video / .sr / .video_data / .video_recipe). The `train` group attaches these commands.

torch is imported inside the commands only, so `vlogger --help` stays instant.
Exit codes: 0 done · 1 failed · 2 invalid command line or config.
"""

from __future__ import annotations

from pathlib import Path

import click

from vlogger_cli.cli._config import config_values, distributed_options, run_options


def _csv(kind):
    def convert(ctx, param, value):
        if value is None:
            return None
        try:
            return [kind(v.strip()) for v in value.split(",") if v.strip()]
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a comma-separated list") from None
    return convert


def _options(fn):
    for decorator in reversed([
        click.option("--data", "data", required=True, multiple=True, metavar="DIR[:WEIGHT]",
                     help="Video dataset folder (weights/README.md, 'Video dataset'); repeat to mix datasets, "
                          "clips drawn in proportion to the weights (default 1), e.g. --data real --data gen:0.5."),
        click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="Run folder: checkpoints, log.jsonl, val/ PNG grids, phase_*/ and OUT/final (a model folder)."),
        click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                     help="YAML or JSON file with TrainVideoConfig fields."),
        click.option("--resume", is_flag=True, help="Continue the run in --out from its latest checkpoint."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override one config field (repeatable), e.g. --set batch_size=32 --set lr=1e-4."),
        click.option("--preset", help="Model size preset (video.config.PRESETS), e.g. cpu-demo, gpu-base."),
        click.option("--init", type=click.Path(file_okay=False, exists=True),
                     help="Start from this video model folder (e.g. an earlier run's final/)."),
        click.option("--base", type=click.Path(file_okay=False, exists=True),
                     help="The frozen pretrained base: a diffusers UNet2DConditionModel folder, or a Stable Diffusion "
                          "1.5 / 2.1 folder (unet/, vae/, scheduler/); the exported model names it in base.json."),
        click.option("--vae", type=click.Path(file_okay=False, exists=True),
                     help="Its VAE (an AutoencoderKL folder or a Stable Diffusion folder): a latent-space model "
                          "(default: the --base folder's vae/ when it has one)."),
        click.option("--phases", callback=_csv(str), help="Phases in order, e.g. control,temporal."),
        click.option("--steps", "phase_steps", callback=_csv(int), help="Steps per phase, e.g. 3000,1500."),
        click.option("--batch-size", metavar="auto|N",
                     help="Frames per step in phases base and control; auto: the largest that fits the CUDA card "
                          "(measured), on the CPU the default 16."),
        click.option("--clip-batch-size", metavar="auto|N",
                     help="Clips per step in phase temporal; auto as for --batch-size (CPU default 2)."),
        click.option("--seed", type=int, help="Shortcut for --set seed=N."),
    ]):
        fn = decorator(fn)
    return distributed_options(fn)  # --device, --precision, --grad-accum


def _config_and_data(config_class, data, config_file, overrides, **shortcuts):
    """(config, [(dataset folder, weight)]) from the command line; a bad field or a missing folder is a usage
    error (exit 2) before any work starts."""
    from vlogger_cli.errors import VloggerError
    from vlogger_cli.train.video_mix import data_specs

    try:
        cfg = config_class.from_dict(config_values(config_file, overrides, **shortcuts))
        specs = data_specs(list(data))
    except (VloggerError, TypeError, ValueError) as err:
        raise click.UsageError(str(err)) from None
    for path, _weight in specs:
        if not path.is_dir():
            raise click.UsageError(f"--data {path}: no such folder; pass a video dataset folder")
    return cfg, specs


def _run(kind: str, data, out, config_file, resume, overrides, **shortcuts) -> None:
    from vlogger_cli.errors import VloggerError

    if kind == "sr":
        from vlogger_cli.train.sr import TrainSRConfig as Config, train_sr as train
    else:
        from vlogger_cli.train.video import TrainVideoConfig as Config, train_video as train

    cfg, data = _config_and_data(Config, data, config_file, overrides, **shortcuts)
    try:
        info = train(data, out, cfg, resume=resume, log=click.echo)
    except VloggerError as err:
        raise click.ClickException(str(err)) from None
    if not info.get("main", True):  # other ranks of a torchrun job: rank 0 reports
        return
    last = next((r["val_loss"] for r in reversed(info["history"]) if "val_loss" in r), None)
    click.echo(f"done: {info['steps']} steps, validation loss {last}, model folder {out / 'final'}")


@click.command("video")
@_options
def video(data, out, config_file, resume, overrides, **shortcuts) -> None:
    """Train the stage-2 video model: base, control branch (frame by frame), temporal layers (clips)."""
    _run("video", data, out, config_file, resume, overrides, **shortcuts)


@click.command("sr")
@_options
def sr(data, out, config_file, resume, overrides, **shortcuts) -> None:
    """Train a cascaded super-resolution model (default preset cpu-demo-sr256: 128 -> 256)."""
    _run("sr", data, out, config_file, resume, overrides, **shortcuts)


@click.command("mouth")
@click.option("--data", "data", required=True, multiple=True, metavar="DIR[:WEIGHT]",
              help="Real-video dataset folder (`vlogger train video-data --videos`); its train clips only. "
                   "Repeat to mix, samples drawn in proportion to the weights (default 1).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: the cascade's renders of the clips (cascade/), checkpoints and OUT/final "
                   "(a weights/mouth folder).")
@click.option("--weights", "weights", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The weights folder whose stage-2 cascade (video/, sr/) the mouth stage corrects "
                   "(default: the repo's weights/).")
@click.option("--cascade-cache", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the cascade's renders to reuse across runs (default OUT/cascade).")
@run_options("TrainMouthConfig", "--set steps=2000 --set lr=5e-4")
def mouth(data, out, weights, cascade_cache, config_file, resume, overrides, steps, seed) -> None:
    """Train the mouth stage (video/mouth.py): the mouth redrawn at its own scale after the stage-2 cascade,
    learned from real talking video against what the cascade renders of it."""
    from vlogger_cli.errors import VloggerError
    from vlogger_cli.paths import weights_dir
    from vlogger_cli.train.mouth import TrainMouthConfig, train_mouth

    cfg, specs = _config_and_data(TrainMouthConfig, data, config_file, overrides, steps=steps, seed=seed)
    try:
        final = train_mouth(specs, out, cfg, weights=weights or weights_dir(), cache=cascade_cache, resume=resume,
                            log=click.echo)
    except VloggerError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"done: mouth stage in {final}; copy it to WEIGHTS/mouth to render with it")


@click.command("video-synth")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Dataset folder to write.")
@click.option("--clips", type=int, default=8, show_default=True)
@click.option("--frames", type=int, default=24, show_default=True, help="Frames per clip.")
@click.option("--size", type=int, default=128, show_default=True, help="Frame size in pixels.")
@click.option("--seed", type=int, default=0, show_default=True)
def video_synth(out: Path, clips: int, frames: int, size: int, seed: int) -> None:
    """Write the toy video dataset (moving textured shapes with exact controls) for smoke runs."""
    from vlogger_cli.train.video_data import write_synthetic_dataset

    info = write_synthetic_dataset(out, clips=clips, frames=frames, size=size, seed=seed)
    click.echo(f"wrote {info['clips']} clips ({info['frames']} frames) to {out}")


@click.command("video-data")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Dataset folder to write.")
@click.option("--videos", "videos", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="Real talking videos (files or folders; repeatable): build the dataset from their frames "
                   "(train/video_real.py) instead of the generated recipe.")
@click.option("--holdout", callback=_csv(str), metavar="NAME,..",
              help="--videos: hold these videos out (file name or stem): split val, never trained on.")
@click.option("--holdout-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.0,
              help="--videos: hold out this fraction of the videos too (drawn with --seed).")
@click.option("--fps", type=float, default=25.0, show_default=True, help="--videos: frame rate to track and sample at.")
@click.option("--max-seconds", type=click.FloatRange(0, min_open=True), default=None,
              help="--videos: use (and track) only the first seconds of each video: a minute of one person adds "
                   "little variety per CPU-hour of tracking.")
@click.option("--clips", type=int, default=240, show_default=True, help="Generated recipe: number of clips.")
@click.option("--frames", type=int, default=16, show_default=True, help="Frames per clip.")
@click.option("--size", type=int, default=256, show_default=True,
              help="Frame and control-map size (the largest any model trains on: 256 for the 128 base + 128->256 SR).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--val-clips", type=int, default=4, show_default=True, help="Generated recipe: clips of the validation split.")
@click.option("--photo-variants", type=int, default=6, show_default=True,
              help="Generated recipe: fitted flips / crops of the photo (each is fitted once).")
@click.pass_context
def video_data(ctx: click.Context, out: Path, videos: tuple[Path, ...], holdout: list[str] | None,
               holdout_fraction: float, fps: float, max_seconds: float | None, clips: int, frames: int, size: int, seed: int, val_clips: int,
               photo_variants: int) -> None:
    """Write a stage-2 video dataset. Default: the demo recipe (train/video_recipe.py), self-supervised clips
    from the astronaut photo (still, warped along corpus motion, restored from a perturbed-pose warp) and anny
    avatars over real photographic backgrounds. With --videos: clips of real talking videos, each frame's
    controls rendered from its tracked body and a reference frame from another time of the same video; one
    report line per video. Re-running the same command continues an interrupted build."""
    if videos:
        recipe_only = [f"--{n.replace('_', '-')}" for n in ("clips", "val_clips", "photo_variants")
                       if ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE]
        if recipe_only:
            raise click.UsageError(f"{', '.join(recipe_only)}: options of the generated recipe, not of --videos")
        _real_video_data(out, list(videos), holdout, holdout_fraction, fps, frames, size, seed, max_seconds)
        return
    if holdout or holdout_fraction or max_seconds is not None:
        raise click.UsageError("--holdout / --holdout-fraction / --max-seconds are options of --videos; give --videos")
    from vlogger_cli.train.video_recipe import write_recipe_dataset

    if clips < 1 or frames < 1 or not 0 <= val_clips < clips:
        raise click.UsageError("need --clips >= 1, --frames >= 1 and 0 <= --val-clips < --clips")
    info = write_recipe_dataset(out, clips=clips, frames=frames, size=size, seed=seed, val_clips=val_clips,
                                photo_variants=photo_variants, log=click.echo)
    kinds = ", ".join(f"{k} {v}" for k, v in info["kinds"].items())
    click.echo(f"wrote {info['clips']} clips ({info['frames']} frames; {kinds}) to {out} in {info['seconds']} s")


def _real_video_data(out, videos, holdout, holdout_fraction, fps, frames, size, seed, max_seconds) -> None:
    import sys

    from vlogger_cli.errors import ManifestError, VloggerError
    from vlogger_cli.train.video_real import build_real_dataset

    if frames < 2 or size < 16 or fps <= 0:
        raise click.UsageError("need --frames >= 2, --size >= 16 and --fps > 0")
    try:
        info = build_real_dataset(videos, out, fps=fps, frames=frames, size=size, seed=seed, holdout=holdout,
                                  holdout_fraction=holdout_fraction, max_seconds=max_seconds, log=click.echo)
    except ManifestError as err:  # a still image, an unknown --holdout name: nothing was built
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    except VloggerError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"wrote {info['clips']} clips ({info['frames']} frames) of {info['videos']} videos to {out}; "
               f"held out: {', '.join(info['holdout']) or 'none'}")
    for video, error in info["failed"]:
        click.echo(f"error: {error}", err=True)
    sys.exit(1 if info["failed"] else 0)
