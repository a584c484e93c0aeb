"""What every stage is: `run` writes artifacts and leaves hand-offs in `ctx.results`; `load`
restores those hand-offs from the artifacts when a resumed run finds the stage already done."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from vlogger_cli.jobs.store import JobDir
from vlogger_cli.manifest import JobSpec


@dataclass
class StageContext:
    spec: JobSpec
    job: JobDir
    device: str                      # "cpu", "cuda" or "auto" (see `torch_device`)
    log: logging.Logger
    config_hash: str = ""            # the job's config hash: resume states made under another are refused
    results: dict[str, Any] = field(default_factory=dict)

    def torch_device(self) -> str:
        """The device for torch work: "auto" becomes "cuda" when a GPU is visible."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[StageContext], None]
    load: Callable[[StageContext], None]
    outputs: tuple[str, ...]         # artifacts, relative to the job folder, that a finished stage leaves
