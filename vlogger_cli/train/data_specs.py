"""`--data A --data B:WEIGHT`: the dataset list of a training command (`vlogger train motion|video|sr`).

Shared by the stage-2 mixing (video_mix.py) and the stage-1 one (motion_mix.py): a folder, optionally with the
weight of its share of every batch after a ':'.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlogger_cli.errors import InputError


def parse_data(value) -> tuple[Path, float]:
    """"PATH" or "PATH:WEIGHT" -> (path, weight); default weight 1. A path that itself holds ':' is taken
    whole when it exists."""
    if isinstance(value, (tuple, list)):
        path, weight = value
        return Path(path), float(weight)
    text = str(value)
    path, sep, weight = text.rpartition(":")
    if not sep or Path(text).exists():
        return Path(text), 1.0
    try:
        w = float(weight)
    except ValueError:
        raise InputError(f"--data {text}: the weight after ':' must be a number, e.g. {path}:0.5") from None
    if not w > 0 or not np.isfinite(w):
        raise InputError(f"--data {text}: the weight must be positive")
    return Path(path), w


def data_specs(data) -> list[tuple[Path, float]]:
    """A dataset folder or "PATH:WEIGHT", or a list of them (or of (path, weight) pairs) -> [(path, weight)]."""
    specs = [parse_data(d) for d in ([data] if isinstance(data, (str, Path)) else data)]
    if not specs:
        raise InputError("no --data given; pass at least one dataset folder")
    return specs
