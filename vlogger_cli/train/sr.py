"""Training the cascaded super-resolution models (`vlogger train sr`): the video trainer's loop and
phases (train/video.py) on an SR preset, whose models read the low-res frames — made by downsampling
each target frame, with Gaussian noise augmentation (`lowres_noise`, Ho et al. 2021 "Cascaded
diffusion models", conditioning augmentation) so the SR model tolerates the base model's artefacts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vlogger_cli.errors import InputError
from vlogger_cli.train.video import TrainVideoConfig, train_video
from vlogger_cli.video.config import VideoModelConfig, preset
from vlogger_cli.video.model import CONFIG_NAME


@dataclass
class TrainSRConfig(TrainVideoConfig):
    """TrainVideoConfig with SR defaults (every field and override works the same)."""

    preset: str = "cpu-demo-sr256"
    lowres_noise: float = 0.1


def model_config(cfg: TrainVideoConfig) -> VideoModelConfig:
    if cfg.init:
        return VideoModelConfig.from_dict(json.loads((Path(cfg.init) / CONFIG_NAME).read_text()))
    return preset(cfg.preset, **cfg.model_overrides)


def train_sr(data, out: str | Path, cfg: TrainSRConfig, *, resume: bool = False,
             log: Callable[[str], None] = print, stop_at: int | None = None) -> dict:
    """Train (or resume) an SR model; the same run folder layout as train_video."""
    try:
        config = model_config(cfg)
    except (ValueError, FileNotFoundError) as err:
        raise InputError(f"SR model config: {err}") from None
    if config.lowres_resolution is None:
        raise InputError(f"preset {cfg.preset!r} / init {cfg.init!r} is not an SR model (no lowres_resolution); "
                         "use an SR preset such as cpu-demo-sr256, or set model_overrides.lowres_resolution")
    return train_video(data, out, cfg, resume=resume, log=log, stop_at=stop_at)
