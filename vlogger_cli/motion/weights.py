"""A motion weights folder: what `vlogger train motion` exports and `generate_motion` loads.

    DIR/config.json                          MotionDenoiser constructor arguments (diffusers config)
    DIR/diffusion_pytorch_model.safetensors  the (EMA) weights
    DIR/normalization.safetensors            per-channel mean / std of the training motion (+ channel names)
    DIR/scheduler_config.json                the training noise schedule (documentation; samplers derive from it)
    DIR/train_info.json                      how it was made: steps, validation loss, config, data

Loading never touches the network (`local_files_only=True`) and never unpickles anything.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

from vlogger_cli.errors import JobError
from vlogger_cli.io import atomic_write_json
from vlogger_cli.motion.representation import Normalization
from vlogger_cli.paths import weights_dir

NORMALIZATION = "normalization.safetensors"


def default_weights_dir() -> Path:
    return weights_dir() / "motion"


def export_weights(dest: str | os.PathLike, model, norm: Normalization, info: dict) -> Path:
    """Write a complete weights folder to `dest` (built beside it, then renamed into place)."""
    from vlogger_cli.motion.diffusion import make_scheduler

    dest = Path(dest)
    tmp = dest.parent / f".{dest.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    norm.save(tmp / NORMALIZATION)
    make_scheduler("ddpm").save_pretrained(tmp)
    atomic_write_json(tmp / "train_info.json", info)
    if dest.exists():
        old = dest.parent / f".{dest.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)
    return dest


def is_weights_folder(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / NORMALIZATION).is_file()


def read_weights(path: str | os.PathLike):
    """(a fresh MotionDenoiser, Normalization) of a weights folder, uncached: a copy of its own (e.g. to train)."""
    from vlogger_cli.motion.denoiser import MotionDenoiser

    model = MotionDenoiser.from_pretrained(path, local_files_only=True, low_cpu_mem_usage=False)
    return model, Normalization.load(Path(path) / NORMALIZATION)


@functools.lru_cache(maxsize=4)
def _load(path: str, device: str):
    model, norm = read_weights(path)
    return model.to(device).eval(), norm


def load_weights(path: str | os.PathLike | None = None, device: str = "cpu"):
    """(MotionDenoiser in eval mode, Normalization) from a weights folder; cached per (path, device)."""
    path = Path(path) if path is not None else default_weights_dir()
    if not is_weights_folder(path):
        raise JobError(
            f"no motion weights in {path}: train them with `vlogger train motion --data DIR --out RUN` "
            f"and point weights_dir at RUN/final (weights/README.md)"
        )
    return _load(str(path.resolve()), str(device))
