"""Several videos' windows in one denoiser batch (`vlogger render --batch-windows N|auto`).

Which windows are independent. Within one video, none: every stage outpaints (outpaint.py) — window k+1 holds
window k's last N - N' frames fixed and draws its noise from the RNG state window k left — and that holds for
the SR stages too (sr.py: an SR window is conditioned on the finished frames of the stage below AND on the
previous SR window's overlap, which is what keeps SR windows temporally consistent). So a job's windows stay
sequential in every stage, and what can share a batch is window k of several jobs: same model, same window
length and known frames, each with its own conditioning, known latents and RNG. `render_together` advances a
set of videos in lockstep, one window each per round, and samples the windows of a round that can share a call
(`sampling.batch_key`: equal length, known frames, conditioning kinds, and settings) in `sampling.sample_windows`.

What stays exactly as one at a time: each window's noise comes from its own video's generator in its own order,
the solver works elementwise, and every finished window goes into its video's frame store as soon as its batch
is done, with the state that resumes it. What does not: a batched convolution may sum in another order, so the
frames agree with a one-at-a-time render to float tolerance, not bit for bit (the tests bound it). Batching
never changes what a resumed render continues from; a job resumed alone continues its batched windows.

How many windows per call. An explicit N, or `auto`: on CUDA, one denoiser call of one window (the stage's
real shapes, guidance halves included) is measured with torch.cuda.max_memory_allocated above what is already
allocated; the limit is AUTO_MEMORY_FRACTION of the memory the process can still get (the driver's free memory
plus what PyTorch's allocator holds unused) over that peak — activations grow linearly with the batch while the
weights are shared, so this errs on the safe side. On the CPU `auto` is 1: a CPU forward is already
compute-bound at one window, and one at a time keeps CPU renders bit-reproducible. A batch that still runs out
of memory is split in two and retried (each window's RNG restored first), and the smaller limit is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from vlogger_cli.frame_store import FrameStore
from vlogger_cli.video.outpaint import Outpainter, WindowState
from vlogger_cli.video.sampling import WindowRequest, batch_key, sample_windows

AUTO_MEMORY_FRACTION = 0.85   # `auto`: share of the obtainable CUDA memory a batch of windows may take
AUTO_MAX_WINDOWS = 64        # `auto`: never more windows per call than this
AUTO = "auto"


def parse_batch_windows(value) -> int | str:
    """'auto' or a whole number >= 1 (from the command line, an environment variable or a config)."""
    text = str(value).strip().lower()
    if text == AUTO:
        return AUTO
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"batch windows must be 'auto' or a whole number >= 1, not {value!r}")
    return int(text)


@dataclass
class StageTask:
    """One video's part of a stage rendered together with others: its outpainting, where its windows go, what
    to tell about each, and the error that stopped it (the other videos go on)."""

    run: Outpainter
    store: FrameStore
    on_window: Callable[[WindowState], None] | None = None
    error: BaseException | None = None
    windows: int = 0            # windows finished here


@dataclass
class WindowLimit:
    """Windows per denoiser call: a number, or None until `auto` has measured the stage's window."""

    value: int | None
    auto: bool = False
    measured: dict = field(default_factory=dict)   # what `auto` measured (bytes per window, obtainable bytes)


def window_limit(batch, device) -> WindowLimit:
    """The limit for `batch` (N or 'auto') on `device`: auto is 1 off CUDA, measured on CUDA."""
    if batch == AUTO:
        return WindowLimit(None, auto=True) if torch.device(device).type == "cuda" else WindowLimit(1)
    return WindowLimit(int(batch))


def _run_key(run: Outpainter, request: WindowRequest) -> tuple:
    return (batch_key(request, run.sampler), run.sampler, run.steps, run.guidance_scale, run.autocast,
            str(run.device), run.dtype)


def render_together(model, tasks: list[StageTask], *, limit: WindowLimit,
                    log: Callable[[str], None] | None = None) -> list[StageTask]:
    """Finish every task's stage, window k of each task in one batch per compatible group. A task whose inputs,
    decoding or saving fails gets `error` and drops out; a failed batch fails the tasks in it. Returns tasks."""
    active = [t for t in tasks if t.error is None and not t.run.done]
    while active:
        groups: dict[tuple, list[tuple[StageTask, WindowRequest]]] = {}
        for task in active:
            try:
                request = task.run.request()
            except Exception as err:  # noqa: BLE001 - this video's inputs: it fails alone
                task.error = err
                continue
            groups.setdefault(_run_key(task.run, request), []).append((task, request))
        for members in groups.values():
            if limit.value is None and len(members) > 1:  # `auto`: measured once, when there is a choice
                limit.value = _measure_limit(model, members[0], limit, log)
            lo = 0
            while lo < len(members):  # the limit may shrink on the way (out of memory)
                step = limit.value or 1
                _sample_group(model, members[lo:lo + step], limit, log)
                lo += step
        active = [t for t in active if t.error is None and not t.run.done]
    return tasks


def _sample_group(model, members: list[tuple[StageTask, WindowRequest]], limit: WindowLimit, log) -> None:
    run = members[0][0].run
    saved = [request.generator.get_state() for _, request in members]
    try:
        latents = sample_windows(model, [r for _, r in members], sampler=run.sampler, steps=run.steps,
                                 guidance_scale=run.guidance_scale, autocast=run.autocast)
    except torch.cuda.OutOfMemoryError as err:
        if len(members) == 1:  # one window alone does not fit: this video fails, the others go on
            members[0][0].error = err
            return
        for (_, request), state in zip(members, saved):  # as if these windows had not been started
            request.generator.set_state(state)
        torch.cuda.empty_cache()
        half = (len(members) + 1) // 2
        limit.value = min(limit.value or half, half)
        if log:
            log(f"batch of {len(members)} windows ran out of GPU memory; {half} at a time from now on")
        _sample_group(model, members[:half], limit, log)
        _sample_group(model, members[half:], limit, log)
        return
    except Exception as err:  # noqa: BLE001 - the batch failed: every video in it fails (the rest go on)
        for task, _ in members:
            task.error = err
        return
    for (task, _), lat in zip(members, latents):
        try:
            state = task.run.finish(lat)
            task.store.save(state)
            task.windows += 1
            if task.on_window is not None:
                task.on_window(state)
        except Exception as err:  # noqa: BLE001 - decoding or saving this video's window (a full disk)
            task.error = err


def _measure_limit(model, member: tuple[StageTask, WindowRequest], limit: WindowLimit, log) -> int:
    """`auto` on CUDA: how many windows like `member`'s one call can take (1 .. AUTO_MAX_WINDOWS)."""
    run, request = member[0].run, member[1]
    per_window, obtainable = measure_window_bytes(model, request, guided=run.guidance_scale != 1,
                                                  autocast=run.autocast)
    n = max(1, min(AUTO_MAX_WINDOWS, int(AUTO_MEMORY_FRACTION * obtainable // max(per_window, 1))))
    limit.measured = {"bytes_per_window": per_window, "obtainable_bytes": obtainable, "windows": n}
    if log:
        log(f"batch windows auto: {per_window / 2**20:.0f} MiB per window of {request.num_frames} frames, "
            f"{obtainable / 2**30:.1f} GiB obtainable -> up to {n} window(s) per call")
    return n


@torch.no_grad()
def measure_window_bytes(model, request: WindowRequest, *, guided: bool, autocast: bool | None) -> tuple[int, int]:
    """(peak CUDA bytes of one denoiser call on `request`'s window above what was allocated before, bytes this
    process can still allocate). The call runs on zeros of the window's shapes; the model's counters are
    left as they were."""
    cond = request.cond
    device = cond.reference_tokens.device
    cfg = model.config
    x = torch.zeros(request.rows, request.num_frames, cfg.sample_channels, cfg.grid, cfg.grid, device=device,
                    dtype=cond.reference_tokens.dtype)
    tokens, controls, lowres = cond.reference_tokens, cond.controls, cond.lowres
    if guided:
        x, tokens = torch.cat([x, x]), torch.cat([cond.null_tokens, tokens])
        controls = None if controls is None else torch.cat([controls, controls])
        lowres = None if lowres is None else torch.cat([lowres, lowres])
    calls, evaluations = model.calls, model.frame_evaluations
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    amp = device.type == "cuda" if autocast is None else autocast
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        model(x, torch.tensor(0, device=device), tokens, controls, lowres)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    model.calls, model.frame_evaluations = calls, evaluations
    free, _ = torch.cuda.mem_get_info(device)
    obtainable = free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(peak), int(obtainable)
