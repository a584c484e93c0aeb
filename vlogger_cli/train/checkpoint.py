"""Training checkpoints shared by every trainer (motion now; video and SR later).

    RUN/checkpoints/step_00001000/  <name>.safetensors per module (model, ema, ...)
                                    optimizer.pt   optimizer + LR-scheduler state and torch RNG states
                                                   (plain tensors and numbers: loaded with weights_only=True)
                                    state.json     step, metrics, numpy RNG state, anything JSON
    RUN/latest.json                 {"step": N, "path": "checkpoints/step_0000N"} — the resume pointer

A checkpoint folder is written under a temporary name and renamed into place, then latest.json is
replaced atomically, so a kill at any moment leaves the previous checkpoint usable. Old checkpoints
beyond `keep` are deleted only after the new pointer is durable.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vlogger_cli.io import atomic_write_json

LATEST = "latest.json"
# Config fields about where and how a run computes, not what it computes: a resumed run takes them from the
# new command line (e.g. resumed on another machine, with another GPU count and accumulation).
RUNTIME_FIELDS = ("device", "threads", "grad_accum", "mixed_precision")


def rng_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, torch.Tensor]:
    """The global torch RNG and the named generators, as uint8 tensors."""
    states = {"torch": torch.get_rng_state()}
    for name, gen in (generators or {}).items():
        states[name] = gen.get_state()
    return states


def set_rng_state(states: dict[str, torch.Tensor], generators: dict[str, torch.Generator] | None = None) -> None:
    torch.set_rng_state(states["torch"])
    for name, gen in (generators or {}).items():
        gen.set_state(states[name])


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    *,
    modules: dict[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    lr_scheduler=None,
    generators: dict[str, torch.Generator] | None = None,
    state: dict[str, Any] | None = None,
    keep: int = 3,
) -> Path:
    """Write checkpoint `step` into RUN/checkpoints and point latest.json at it; return its folder."""
    run_dir = Path(run_dir)
    name = f"step_{step:08d}"
    final = run_dir / "checkpoints" / name
    tmp = run_dir / "checkpoints" / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for key, module in modules.items():
        tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
        save_file(tensors, str(tmp / f"{key}.safetensors"))
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "lr_scheduler": lr_scheduler.state_dict() if lr_scheduler is not None else None,
            "rng": rng_state(generators),
        },
        tmp / "optimizer.pt",
    )
    (tmp / "state.json").write_text(json.dumps({"step": step, **(state or {})}, indent=2, default=str))
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():  # re-saving the same step (e.g. after a resume): replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_json(run_dir / LATEST, {"step": step, "path": f"checkpoints/{name}"})
    _prune(run_dir / "checkpoints", keep, protect=final)
    return final


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The folder latest.json points at, or None for a fresh run."""
    pointer = Path(run_dir) / LATEST
    if not pointer.is_file():
        return None
    path = Path(run_dir) / json.loads(pointer.read_text())["path"]
    return path if path.is_dir() else None


def load_checkpoint(
    path: str | os.PathLike,
    *,
    modules: dict[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer | None = None,
    lr_scheduler=None,
    generators: dict[str, torch.Generator] | None = None,
) -> dict[str, Any]:
    """Restore modules (and optimizer, LR scheduler, RNG) from a checkpoint folder; return state.json."""
    path = Path(path)
    for key, module in modules.items():
        module.load_state_dict(load_file(str(path / f"{key}.safetensors")))
    blob = torch.load(path / "optimizer.pt", weights_only=True)
    if optimizer is not None:
        optimizer.load_state_dict(blob["optimizer"])
    if lr_scheduler is not None and blob["lr_scheduler"] is not None:
        lr_scheduler.load_state_dict(blob["lr_scheduler"])
    set_rng_state(blob["rng"], generators)
    return json.loads((path / "state.json").read_text())


def open_run(run_dir: str | os.PathLike, config, *, resume: bool, log=print):
    """(config to use, checkpoint to resume from or None) for a run folder, shared by the trainers.

    A folder that already holds a run needs `resume`; a resumed run keeps the config it was started
    with (dataclass `config` is compared field by field with RUN/config.json), except RUNTIME_FIELDS.
    """
    import dataclasses

    from vlogger_cli.errors import InputError

    run_dir = Path(run_dir)
    pointer = latest_checkpoint(run_dir)
    if pointer is not None and not resume:
        raise InputError(f"{run_dir} already holds a training run: pass --resume to continue it, or choose a new --out")
    if pointer is not None:
        current = dataclasses.asdict(config)
        saved = {**json.loads((run_dir / "config.json").read_text()),
                 **{k: v for k, v in current.items() if k in RUNTIME_FIELDS}}
        if saved != current:
            log("note: the config differs from the saved run's; continuing with the saved one")
            config = type(config).from_dict(saved)
    return config, pointer


def _prune(folder: Path, keep: int, protect: Path) -> None:
    done = sorted(p for p in folder.glob("step_*") if p.is_dir())
    for old in done[:-keep] if keep > 0 else []:
        if old != protect:
            shutil.rmtree(old, ignore_errors=True)


__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "open_run", "rng_state", "set_rng_state"]
