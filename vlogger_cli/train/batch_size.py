"""Batch sizes sized to the card (`batch_size: auto`, issue 5): measure what one training step costs,
then take the largest batch that fits the free device memory.

A step's peak memory is close to linear in its batch: the resident weights, gradients and workspaces
are a fixed cost, the activations kept for the backward pass grow with every item. Two real steps (at
batch 1 and 2) give the line; `largest_batch` solves it for the free memory, less a safety margin for
fragmentation and what the measurement does not see (optimizer temporaries, validation sampling).

The measuring step is a callable `peak_bytes(batch) -> bytes`, so the arithmetic is tested on the
CPU with a fake and `cuda_peak_bytes` supplies the real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from vlogger_cli.errors import InputError

MB = 2 ** 20


@dataclass(frozen=True)
class StepCost:
    """Peak memory of one training step as fixed + per_sample * batch (bytes)."""

    fixed: int       # intercept: what a step needs whatever its batch
    per_sample: int  # slope: what each more item of the batch adds


def largest_batch(free_bytes: int, fixed_bytes: int, per_sample_bytes: int, *, fraction: float = 0.85,
                  cap: int = 256, what: str = "batch") -> int:
    """The largest batch b <= cap with fixed + per_sample * b <= fraction * free; an error when not even 1 fits."""
    if cap < 1 or not 0 < fraction <= 1:
        raise ValueError(f"need cap >= 1 and 0 < fraction <= 1, got cap={cap} fraction={fraction}")
    budget = fraction * free_bytes - fixed_bytes
    one = fixed_bytes + max(per_sample_bytes, 0)
    if budget < max(per_sample_bytes, 0):
        raise InputError(
            f"{what}: one item needs about {one / MB:.0f} MB but only {fraction:.0%} of the free "
            f"{free_bytes / MB:.0f} MB may be used; free the card (other processes), use a smaller model "
            f"preset or fewer clip_frames, or train on the CPU (--device cpu)")
    if per_sample_bytes <= 0:  # no measurable growth (a tiny model): the cap decides
        return cap
    return max(1, min(cap, int(budget // per_sample_bytes)))


def measure_step_cost(peak_bytes: Callable[[int], int], sizes: Sequence[int] = (1, 2)) -> StepCost:
    """Fit peak = fixed + per_sample * batch through `peak_bytes` at `sizes` (least squares; two sizes: the line).

    The first size is also run once before measuring, so one-off allocations (cuBLAS workspaces,
    autotuning) land in the fixed cost of neither point but in the resident memory.
    """
    if len(set(sizes)) < 2:
        raise ValueError(f"need at least two different batch sizes to measure, got {list(sizes)}")
    peak_bytes(sizes[0])  # warm-up
    xs = [float(b) for b in sizes]
    ys = [float(peak_bytes(b)) for b in sizes]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return StepCost(fixed=round(my - slope * mx), per_sample=round(slope))


def cuda_peak_bytes(step: Callable[[int], None], device: torch.device) -> Callable[[int], int]:
    """`peak_bytes` for measure_step_cost: run `step(batch)` (forward + backward) and return its peak allocation."""

    def peak(batch: int) -> int:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step(batch)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)

    return peak


def free_cuda_bytes(device: torch.device) -> tuple[int, int]:
    """(free bytes on the card once torch's cache is returned, bytes this process has allocated now)."""
    torch.cuda.empty_cache()
    free, _total = torch.cuda.mem_get_info(device)
    return free, torch.cuda.memory_allocated(device)


def fit_on_card(step: Callable[[int], None], params: Sequence[torch.nn.Parameter], device: torch.device, *,
                fraction: float = 0.85, cap: int = 256, what: str = "batch") -> dict:
    """Measure `step(batch)` (one forward + backward that frees its gradients) on CUDA and pick the batch.

    Returns {"batch", "free_mb", "per_sample_mb", "fixed_mb"}. The fit's intercept holds the weights
    already resident, which the free memory excludes; AdamW adds two moments per trained parameter
    (allocated at its first step, unseen here) and about one more in foreach temporaries.
    """
    cost = measure_step_cost(cuda_peak_bytes(step, device))
    free, resident = free_cuda_bytes(device)
    fixed = max(0, cost.fixed - resident) + 3 * sum(p.numel() * p.element_size() for p in params)
    batch = largest_batch(free, fixed, cost.per_sample, fraction=fraction, cap=cap, what=what)
    return {"batch": batch, "free_mb": round(free / MB), "per_sample_mb": round(cost.per_sample / MB, 1),
            "fixed_mb": round(fixed / MB)}


def parse_batch_size(value, name: str = "batch_size") -> int | str:
    """'auto' or a positive int (from a config file, `--set` or the command line)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or isinstance(value, bool) or (isinstance(value, float) and value != number):
        raise InputError(f"{name} must be a positive whole number or 'auto', not {value!r}")
    return number
