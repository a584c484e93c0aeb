"""A pretrained Stable-Diffusion-family base for stage 2: finding its folders, fitting a config to it, and the
record a trained model keeps of it (paper §3.2: the base stays frozen; only the control branch, the temporal
layers and the reference tokens are trained, so a trained model folder need not copy the multi-GB base).

Layouts accepted for `--base DIR` / `--vae DIR` (diffusers format, loaded with local_files_only=True):
    DIR/unet/ + DIR/vae/ [+ DIR/scheduler/]   a Stable Diffusion 1.5 / 2.1 pipeline folder
    DIR/config.json                           a bare UNet2DConditionModel / AutoencoderKL / AutoencoderTiny folder
A trained model folder without `unet/` names its base in `base.json`:
    {"unet": "/models/sd15/unet", "vae": "/models/sd15/vae"}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vlogger_cli.errors import InputError
from vlogger_cli.io import atomic_write_json

BASE_RECORD = "base.json"
UNET_CLASSES = ("UNet2DConditionModel",)
VAE_CLASSES = ("AutoencoderKL", "AutoencoderTiny")
UNET_FIELDS = ("block_out_channels", "down_block_types", "up_block_types", "cross_attention_dim")
SCHEDULE_FIELDS = ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "prediction_type")


def _component(folder: Path, sub: str, classes: tuple[str, ...], what: str) -> Path:
    """FOLDER/sub or FOLDER itself, whichever is a diffusers folder of one of `classes`."""
    for candidate in (folder / sub, folder):
        config = candidate / "config.json"
        if config.is_file():
            name = json.loads(config.read_text()).get("_class_name")
            if name in classes:
                return candidate
            if candidate == folder:
                raise InputError(f"{what} {folder}: {config} describes a {name}, not a {' / '.join(classes)}")
    raise InputError(f"{what} {folder}: no diffusers {' / '.join(classes)} there (neither {folder / sub}/config.json "
                     f"nor {folder}/config.json); pass a Stable Diffusion folder or its {sub}/ folder")


def base_folders(base: str | os.PathLike | None, vae: str | os.PathLike | None) -> tuple[Path | None, Path | None]:
    """(UNet folder, VAE folder) from `--base` and `--vae` (each may be a pipeline folder or the component's own);
    the VAE defaults to the base pipeline's vae/ when it has one."""
    unet_dir = vae_dir = None
    if base is not None:
        if not Path(base).is_dir():
            raise InputError(f"--base {base}: no such folder")
        unet_dir = _component(Path(base), "unet", UNET_CLASSES, "--base")
        if vae is None and (unet_dir.parent / "vae" / "config.json").is_file():
            vae = unet_dir.parent
    if vae is not None:
        if not Path(vae).is_dir():
            raise InputError(f"--vae {vae}: no such folder")
        vae_dir = _component(Path(vae), "vae", VAE_CLASSES, "--vae")
    return unet_dir, vae_dir


def fit_config(config, unet_dir: Path | None, vae_dir: Path | None):
    """`config` adapted to the base: latent space at the VAE's factor and channels when there is a VAE, and
    the noise schedule the base was trained on (its pipeline's scheduler/ config) — a frozen base only
    denoises well on its own schedule and prediction target."""
    changes = {}
    if vae_dir is not None:
        vae = json.loads((vae_dir / "config.json").read_text())
        blocks = vae.get("block_out_channels") or vae.get("encoder_block_out_channels")
        changes.update(space="latent", vae_channels=int(vae.get("latent_channels", 4)),
                       vae_factor=2 ** (len(blocks) - 1))  # every block but the last halves the frame
    elif config.space == "latent":
        raise InputError("a latent-space preset needs a VAE: pass --vae DIR (an AutoencoderKL folder) or a --base "
                         "Stable Diffusion folder with vae/")
    if unet_dir is not None:
        unet = json.loads((unet_dir / "config.json").read_text())  # recorded in video_model.json for readers
        changes.update({k: tuple(unet[k]) if isinstance(unet[k], list) else unet[k] for k in UNET_FIELDS if k in unet})
        schedule = unet_dir.parent / "scheduler" / "scheduler_config.json"
        if schedule.is_file():
            values = json.loads(schedule.read_text())
            changes.update({k: values[k] for k in SCHEDULE_FIELDS if k in values})
    return config.replace(**changes) if changes else config


def write_base_record(folder: str | os.PathLike, unet_dir: str | os.PathLike | None,
                      vae_dir: str | os.PathLike | None) -> None:
    atomic_write_json(Path(folder) / BASE_RECORD, {"unet": str(Path(unet_dir).resolve()) if unet_dir else None,
                                                   "vae": str(Path(vae_dir).resolve()) if vae_dir else None})


def recorded_base(folder: str | os.PathLike) -> tuple[Path | None, Path | None]:
    """(UNet folder, VAE folder) a trained model folder without unet/ needs (its base.json), checked to exist."""
    folder = Path(folder)
    record = folder / BASE_RECORD
    if not record.is_file():
        raise InputError(f"video model {folder} has neither unet/ nor {BASE_RECORD}: copy its base UNet into "
                         f"{folder / 'unet'} or re-export it")
    named = json.loads(record.read_text())
    found = []
    for part in ("unet", "vae"):
        path = Path(named[part]) if named.get(part) else None
        if path is not None and not (path / "config.json").is_file():
            raise InputError(f"video model {folder} needs its frozen base {part} in {path} (recorded in "
                             f"{record}), which is missing: put the Stable-Diffusion folder back there or edit "
                             f"{record}")
        found.append(path)
    return found[0], found[1]


__all__ = ["BASE_RECORD", "base_folders", "fit_config", "write_base_record", "recorded_base"]
