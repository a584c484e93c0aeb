"""`torch.compile` for the stage-2 denoiser, opt-in (`vlogger render --compile`, or VLOGGER_COMPILE=1).

What is compiled: `VideoDiffusionModel.denoise`, the tensor work of one denoiser call (control branch + base
UNet with its temporal layers), in place on the model object, once: a model compiled with a backend is left
alone when asked again (the renderer keeps its loaded cascade per process, pipeline/render.py, so a batch of
jobs compiles each model once). The call counters and the temporal layers' frame count stay in Python outside
the compiled code (model.py `forward`), so graphs are not guarded on values that change every call; a new
window length or batch recompiles once (the last, shorter window; a batch of several jobs' windows).

Compilation happens on the first call, not in `torch.compile` itself, so that is where it can fail (no C
compiler for inductor, an operator the backend cannot trace): the first failure prints ONE warning line and
the model runs eagerly from then on. A failure that also happens eagerly (a real error) is raised by the eager
call, so nothing is hidden. `backend`: any torch.compile backend name ("inductor": the fast one on GPU and CPU;
"aot_eager" / "eager": no code generation, for tests) or a backend callable.
"""

from __future__ import annotations

import os
from typing import Callable

import torch

DEFAULT_BACKEND = "inductor"
ENV = "VLOGGER_COMPILE"
_OFF = {"", "0", "false", "no", "off"}


def backend_from_env(environ=os.environ) -> str | None:
    """VLOGGER_COMPILE: unset/0/false/off: None (eager); 1/true/yes/on: inductor; anything else: that backend."""
    value = environ.get(ENV, "").strip()
    if value.lower() in _OFF:
        return None
    return DEFAULT_BACKEND if value.lower() in {"1", "true", "yes", "on"} else value


def compile_denoiser(model, backend, warn: Callable[[str], None] = print, *, dynamic: bool | None = None):
    """Compile `model.denoise` with `backend` (in place; returns the model). None: leave it eager."""
    if backend is None:
        return model
    name = backend if isinstance(backend, str) else getattr(backend, "__name__", "custom")
    if model.__dict__.get("_vlogger_compile") == name:  # compiled once per model object
        return model
    eager = type(model).denoise.__get__(model)
    try:
        compiled = torch.compile(eager, backend=backend, dynamic=dynamic)
    except Exception as err:  # noqa: BLE001 - an unknown backend name, a platform torch.compile does not support
        warn(f"warning: torch.compile (backend {name}) is not available ({_one_line(err)}); running eagerly")
        model.__dict__["_vlogger_compile"] = f"failed:{name}"
        return model
    state = {"failed": False}

    def denoise(*args, **kwargs):
        if state["failed"]:
            return eager(*args, **kwargs)
        try:
            return compiled(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - compilation happens here, at the first call
            state["failed"] = True
            model.__dict__["_vlogger_compile"] = f"failed:{name}"
            warn(f"warning: torch.compile (backend {name}) failed ({_one_line(err)}); running eagerly")
            return eager(*args, **kwargs)

    model.denoise = denoise  # an instance attribute: forward's self.denoise(...) finds it first
    model.__dict__["_vlogger_compile"] = name
    return model


def compiled_backend(model) -> str | None:
    """The backend `model` runs compiled with, "failed:<backend>" after a fallback, or None (eager)."""
    return model.__dict__.get("_vlogger_compile")


def _one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    first = text.splitlines()[0] if text else type(err).__name__
    return first if len(first) <= 200 else first[:197] + "..."
