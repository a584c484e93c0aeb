"""Training configs from the command line: a YAML/JSON file, then `--set KEY=VALUE`, then shortcuts."""

from __future__ import annotations

import json
from pathlib import Path

import click


def config_values(config_file: Path | None, overrides: tuple[str, ...], **shortcuts) -> dict:
    """Config fields from a YAML/JSON file, then `--set KEY=VALUE` (VALUE parsed as JSON when it is), then shortcuts."""
    import yaml

    values: dict = {}
    if config_file is not None:
        loaded = yaml.safe_load(config_file.read_text()) or {}
        if not isinstance(loaded, dict):
            raise click.BadParameter(f"{config_file} must hold a mapping of config fields", param_hint="--config")
        values.update(loaded)
    for item in overrides:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        key, text = item.split("=", 1)
        try:
            values[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            values[key.strip()] = text
    values.update({k: v for k, v in shortcuts.items() if v is not None})
    return values


def run_options(config_class: str, set_example: str):
    """--config, --resume, --set, --steps, --seed: what a training run computes and whether it continues
    (`train motion`, `train mouth`; `train video|sr` read --steps as steps per phase)."""
    def attach(fn):
        for decorator in reversed([
            click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                         help=f"YAML or JSON file with {config_class} fields."),
            click.option("--resume", is_flag=True, help="Continue the run in --out from its latest checkpoint."),
            click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                         help=f"Override one config field (repeatable), e.g. {set_example}."),
            click.option("--steps", type=int, help="Shortcut for --set steps=N."),
            click.option("--seed", type=int, help="Shortcut for --set seed=N."),
        ]):
            fn = decorator(fn)
        return fn
    return attach


def distributed_options(fn):
    """--device, --precision, --grad-accum: how a training run computes (a resumed run may change them)."""
    for decorator in reversed([
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]),
                     help="Where to train (default auto). Under torchrun / accelerate launch: one GPU per process."),
        click.option("--precision", "mixed_precision", type=click.Choice(["auto", "bf16", "fp32"]),
                     help="bf16 autocast or fp32 (default auto: bf16 on CUDA, fp32 on the CPU)."),
        click.option("--grad-accum", "grad_accum", type=click.IntRange(min=1),
                     help="Split each process's share of a step's batch into K micro-batches (less memory, same result)."),
    ]):
        fn = decorator(fn)
    return fn
