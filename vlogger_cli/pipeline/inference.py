"""Stage 2's models for a job, and the render settings that are not part of a job (pipeline/base.py
`InferenceSettings`: --precision, --compile, --batch-windows).

The cascade a job needs is loaded once per process and kept (the last CACHED_CASCADES of them, by weight folder,
resolution and device, re-read when a file in a model folder changes): a batch of jobs, or the jobs of a
`vlogger render` in one process, loads the weights once, and `--compile` compiles each model once
(video/compile.py) instead of once per job. `jobs_per_batch` is how many jobs the runner brings to the frames
stage together when windows are batched.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from pathlib import Path

from vlogger_cli.errors import JobError
from vlogger_cli.pipeline.base import InferenceSettings, StageContext

CACHED_CASCADES = 2     # e.g. a manifest mixing 256² and 512² jobs keeps both cascades
AUTO_JOBS = 8           # `--batch-windows auto` on CUDA: jobs brought to the frames stage together
_LOADED: OrderedDict = OrderedDict()


def jobs_per_batch(settings: InferenceSettings, device: str) -> int:
    """Jobs rendered together by the runner: N for --batch-windows N; for auto AUTO_JOBS on CUDA (the frames
    stage then measures how many of their windows fit one call, video/batching.py), 1 on the CPU."""
    if settings.batch_windows != "auto":
        return int(settings.batch_windows)
    if device == "cpu":
        return 1
    import torch

    return AUTO_JOBS if torch.cuda.is_available() and device in ("auto", "cuda") else 1


def job_cascade(ctx: StageContext, device: str, *, suggestion: str = "or set renderer: warp for the fast preview"):
    """The job's stage-2 cascade on `device` (cached per process), compiled when the settings ask."""
    from vlogger_cli.paths import weights_dir
    from vlogger_cli.video.compile import compile_denoiser
    from vlogger_cli.video.render import cascade_folders, load_cascade

    spec = ctx.spec
    try:
        weights = weights_dir()
        folders = cascade_folders(weights, spec.resolution)
        key = (tuple(str(f.resolve()) for f in folders), str(device), tuple(_stamp(f) for f in folders))
        models = _cached(key, lambda: load_cascade(weights, spec.resolution, device), CACHED_CASCADES)
    except JobError as err:
        raise JobError(f"job '{spec.id}': renderer 'diffusion': {err}; {suggestion}") from None
    for model in models:
        compile_denoiser(model, ctx.inference.compile, warn=lambda line: _warn(ctx, line))
    return models


def job_mouth(device: str):
    """The mouth stage in the weights folder (video/mouth.py) on `device`, or None when it has none (cached per
    process like the cascades, re-read when its files change)."""
    from vlogger_cli.paths import weights_dir
    from vlogger_cli.video.mouth import CONFIG_NAME, load_mouth

    folder = Path(weights_dir()) / "mouth"
    if not (folder / CONFIG_NAME).is_file():
        return None
    key = ("mouth", str(folder.resolve()), str(device), _stamp(folder))
    return _cached(key, lambda: load_mouth(folder.parent).to(device), CACHED_CASCADES + 1)


def _cached(key: tuple, load, limit: int):
    """_LOADED[key], loaded on first use; the least recently used entries go once there are more than `limit`."""
    if key not in _LOADED:
        _LOADED[key] = load()
        while len(_LOADED) > limit:
            _LOADED.popitem(last=False)
    _LOADED.move_to_end(key)
    return _LOADED[key]


def _stamp(folder: Path) -> tuple:
    """What changes when a model folder's files do: (relative path, size, mtime) of each."""
    return tuple((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                 for p in sorted(folder.rglob("*")) if p.is_file())


def _warn(ctx: StageContext, line: str) -> None:
    """One line in the job's log and on stderr (a compile fallback happens once per process)."""
    ctx.log.warning(line)
    print(line, file=sys.stderr)


def clear_cache() -> None:
    _LOADED.clear()
