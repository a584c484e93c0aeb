"""What every stage is: `run` writes artifacts and leaves hand-offs in `ctx.results`; `load`
restores those hand-offs from the artifacts when a resumed run finds the stage already done."""

from __future__ import annotations

import contextlib
import logging
import os
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


@contextlib.contextmanager
def small_op_threads():
    """torch CPU threads for stages made of many small ops (anny forward/backward in the fit, the body
    model per window). Measured on the 2-core machine: the astronaut fit takes 1.7 s with 1 thread and
    10-20 s with 2 (the threads spin against each other on (V, 3) sized ops). Override with
    VLOGGER_TORCH_THREADS."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("VLOGGER_TORCH_THREADS", "1")))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
